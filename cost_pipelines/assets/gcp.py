"""GCP costs per customer (the BigQuery billing export). Declared with its defaults; the
collector plugs in here by setting `fetch` (and a client resource) on the spec."""

from __future__ import annotations

from cost_pipelines.assets.collection import ProviderSpec

GCP = ProviderSpec(
    provider="gcp",
    title="GCP",
    description=(
        "Daily GCP costs of one customer in FOCUS shape from the BigQuery billing export; "
        "re-collects 5 trailing days (the export backfills up to 5 days). Fails with "
        "'not configured' for customers without providers.gcp."
    ),
    kinds=frozenset({"gcp", "bigquery"}),
)
