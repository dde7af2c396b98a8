"""Azure costs per customer (Cost Management Query API). Declared with its defaults; the
collector plugs in here by setting `fetch` (and a client resource) on the spec."""

from __future__ import annotations

from cost_pipelines.assets.collection import ProviderSpec

AZURE = ProviderSpec(
    provider="azure",
    title="Azure",
    description=(
        "Daily Azure costs of one customer in FOCUS shape from the Cost Management Query API; "
        "re-collects 5 trailing days (usage lands up to 72 h late) and the previous month until "
        "the 5th. Fails with 'not configured' for customers without providers.azure."
    ),
    kinds=frozenset({"azure"}),
)
