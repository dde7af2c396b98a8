"""The customers file as a Dagster resource: who to collect for, read fresh at every use."""

from __future__ import annotations

from dagster import ConfigurableResource

from cost_pipelines.customers import CustomerBook, load_customers, load_customers_from_env


class CustomersResource(ConfigurableResource):  # type: ignore[type-arg]
    """The customers file; empty path = the CUSTOMERS_FILE environment variable."""

    path: str | None = None

    def load(self) -> CustomerBook:
        return load_customers(self.path) if self.path else load_customers_from_env()
