"""Each provider's service names mapped to FOCUS ServiceCategory, from `service_categories.csv`.

The table is seeded from the categories the providers' own FOCUS exports assign to their services
(AWS Data Exports FOCUS 1.2, Azure Cost Management FocusCost, the GCP FOCUS BigQuery export) and
Vultr's product families. A name the table does not know is `Other`, never empty; the collection's
conformance check lists such names so the table can be extended."""

from __future__ import annotations

import csv
from functools import cache
from importlib import resources

from cost_pipelines.focus import OTHER, SERVICE_CATEGORIES
from cost_pipelines.providers import PROVIDERS


@cache
def service_categories() -> dict[str, dict[str, str]]:
    """provider -> lower-cased service name -> ServiceCategory (checked against FOCUS values)."""
    table: dict[str, dict[str, str]] = {provider: {} for provider in PROVIDERS}
    text = resources.files(__package__).joinpath("service_categories.csv").read_text("utf-8")
    for number, row in enumerate(
        csv.DictReader(line for line in text.splitlines() if not line.startswith("#")), 2
    ):
        provider, name, category = row["provider"], row["service_name"], row["service_category"]
        if provider not in table or category not in SERVICE_CATEGORIES:
            raise ValueError(f"service_categories.csv line {number}: {provider!r}, {category!r}")
        table[provider][name.strip().lower()] = category
    return table


def service_category(provider: str, service_name: str) -> str:
    """The FOCUS ServiceCategory of one of the provider's services; `Other` when unknown."""
    return service_categories()[provider].get(service_name.strip().lower(), OTHER)
