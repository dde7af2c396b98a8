"""What /health answers: the API, the warehouse and Dagster, each up or down."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class ComponentHealth(BaseModel):
    status: Literal["up", "down"]
    latency_ms: float | None = None
    version: str | None = None
    detail: str | None = None


class Health(BaseModel):
    """Up only when the API, the warehouse and Dagster all answer."""

    status: Literal["up", "down"]
    api: ComponentHealth
    warehouse: ComponentHealth
    dagster: ComponentHealth
