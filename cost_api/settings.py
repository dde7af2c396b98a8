"""Settings of the REST service, from the environment: read once, by the app's lifespan."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ApiSettings(BaseSettings):
    """Where the API finds its keys and Dagster; the warehouse comes from WarehouseSettings."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    api_keys_file: Path = Field(
        default=Path(".data/api_keys.yaml"),
        description="YAML list of {name, sha256, customers} entries; keys are stored as hashes",
    )
    dagster_graphql_url: str = "http://127.0.0.1:3000/graphql"
    dagster_ui_url: str = "http://127.0.0.1:3000"
    dagster_location_name: str = "cost_pipelines"
    dagster_timeout_s: float = 10.0
    customers_file: Path | None = Field(
        default=None, description="The customers file the collectors use (CUSTOMERS_FILE)"
    )
    max_period_days: int = 400
    cost_api_rate_basis: Literal["day", "month"] = Field(
        default="day",
        description="COST_API_RATE_BASIS: convert each charge day at the newest rate published "
        "on or before it (day), or at the mean of its month's published rates (month)",
    )
    cost_api_rate_max_age_days: int = Field(
        default=7,
        ge=0,
        le=31,
        description="COST_API_RATE_MAX_AGE_DAYS: basis=day uses a rate at most this many days "
        "older than the charge day (ECB: none on weekends and holidays, at most 4 days apart)",
    )
    cost_api_rate_base: str = Field(
        default="EUR",
        pattern=r"^[A-Z]{3}$",
        description="COST_API_RATE_BASE: the currency exchange_rates are quoted against",
    )
    cost_api_checks_ttl_s: float = Field(
        default=60.0,
        gt=0,
        description="COST_API_CHECKS_TTL_S: how long cost reads reuse Dagster's check results",
    )
    cost_api_checks_timeout_s: float = Field(
        default=0.5,
        gt=0,
        description="COST_API_CHECKS_TIMEOUT_S: how long a cost read waits for them at most",
    )
