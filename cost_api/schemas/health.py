"""What /health answers: the API, the warehouse and Dagster, each up or down."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class ComponentHealth(BaseModel):
    status: Literal["up", "down"]
    latency_ms: float | None = None
    version: str | None = None
    detail: str | None = None


class SupervisedProcess(BaseModel):
    """One process of `make run` as its supervisor sees it (restarted with backoff if it exits)."""

    state: Literal["new", "starting", "up", "backoff", "failed", "stopped"]
    restarts: int
    last_exit_code: int | None = None


class Health(BaseModel):
    """Up only when the API, the warehouse and Dagster all answer."""

    status: Literal["up", "down"]
    api: ComponentHealth
    warehouse: ComponentHealth
    dagster: ComponentHealth
    processes: dict[str, SupervisedProcess] | None = Field(
        default=None, description="Under `make run`: its supervisor's view of each process"
    )
