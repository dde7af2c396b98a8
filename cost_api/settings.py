"""Settings of the REST service, from the environment: read once, by the app's lifespan."""

from __future__ import annotations

from pathlib import Path

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
