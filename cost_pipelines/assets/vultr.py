"""Vultr costs per customer (billing invoices and pending charges). Declared with its defaults;
the collector plugs in here by setting `fetch` (and a client resource) on the spec."""

from __future__ import annotations

from cost_pipelines.assets.collection import ProviderSpec

VULTR = ProviderSpec(
    provider="vultr",
    title="Vultr",
    description=(
        "Daily Vultr costs of one customer in FOCUS shape from invoices and pending charges; "
        "re-collects the current and the previous invoice period. Fails with 'not configured' "
        "for customers without providers.vultr."
    ),
    kinds=frozenset({"vultr"}),
)
