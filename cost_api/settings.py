"""Settings of the REST service, from the environment: read once, by the app's lifespan."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from cost_api.limits import DEFAULT_MAX_BODY_BYTES


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
    public_base_url: str = Field(
        default="http://127.0.0.1:8000",
        pattern=r"^https?://[^/?#\s]+(/[^?#\s]*)?$",
        description="The API's address as clients reach it (behind a proxy: the proxy's), for "
        "the status_url of collection tasks; never taken from a request's Host header "
        "(PUBLIC_BASE_URL)",
    )
    read_deadline_s: float = Field(
        default=10.0,
        gt=0,
        description="A cost read that has no answer from the warehouse after this long gets 503 "
        "with Retry-After (READ_DEADLINE_S)",
    )
    warehouse_concurrency: int = Field(
        default=8,
        ge=1,
        description="Warehouse reads in flight at once; they run on a pool of their own, so a "
        "hung warehouse never starves the other routes (WAREHOUSE_CONCURRENCY)",
    )
    max_body_bytes: int = Field(
        default=DEFAULT_MAX_BODY_BYTES,
        ge=1,
        description="Larger request bodies get 413 (MAX_BODY_BYTES)",
    )
    rate_limit_per_minute: int = Field(
        default=1200,
        ge=1,
        description="Requests a minute one API key may make on average; more get 429 with "
        "Retry-After (RATE_LIMIT_PER_MINUTE, per API process)",
    )
    rate_limit_burst: int = Field(
        default=300, ge=1, description="Requests one key may make at once (RATE_LIMIT_BURST)"
    )
    stack_status_file: Path | None = Field(
        default=None,
        description="Where `make run`'s supervisor writes each component's state and restarts; "
        "/health shows it (STACK_STATUS_FILE, set by make run)",
    )
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
    metrics_require_key: bool = Field(
        default=False,
        description="METRICS_REQUIRE_KEY: /metrics answers only with a valid API key (any "
        "customer scope); off by default, as Prometheus scrapes without one: the metrics are "
        "aggregate counts and latencies by route template, with no customer, key or amount",
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
