"""A recommendation as it is stored: what to buy or stop, where, the estimated monthly saving in
the source's currency (exact), and the evidence behind it (the provider's own figures, or our
stored lines). Provider figures arrive as strings or JSON numbers and stay exact Decimals."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from clickhouse_connect.driver.client import Client

from cost_pipelines.assets.analytics.series import QUANTUM
from cost_pipelines.assets.analytics.store import publish
from cost_pipelines.warehouse.schema import RECOMMENDATIONS_TABLE

PROVIDER_ASSET = "provider_recommendations"
OWN_ASSET = "cost_recommendations"
COLUMNS = (
    "asset",
    "key",
    "provider",
    "kind",
    "source",
    "source_id",
    "scope",
    "resource_id",
    "term",
    "payment_option",
    "lookback",
    "currency",
    "monthly_saving",
    "upfront_cost",
    "break_even_months",
    "valid",
    "fetched_at",
    "evidence",
)
# Cost Explorer bills every request of these APIs like GetCostAndUsage.
CE_REQUEST_USD = Decimal("0.01")


@dataclass(frozen=True)
class Recommendation:
    """One recommendation. `key` names it across runs (its kind, scope and what it is about, not
    the provider's per-generation id), so its first sighting can be found again."""

    key: str
    provider: str
    kind: str
    source: str
    source_id: str
    scope: str
    currency: str
    monthly_saving: Decimal
    evidence: Mapping[str, Any] | Sequence[Any]
    resource_id: str = ""
    term: str = ""
    payment_option: str = ""
    lookback: str = ""
    upfront_cost: Decimal | None = None
    break_even_months: Decimal | None = None
    valid: bool = True
    fetched_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def row(self, asset: str) -> list[Any]:
        return [
            asset,
            self.key,
            self.provider,
            self.kind,
            self.source,
            self.source_id,
            self.scope,
            self.resource_id,
            self.term,
            self.payment_option,
            self.lookback,
            self.currency,
            stored(self.monthly_saving),
            None if self.upfront_cost is None else stored(self.upfront_cost),
            None if self.break_even_months is None else stored(self.break_even_months),
            self.valid,
            self.fetched_at,
            evidence_json(self.evidence),
        ]


def stored(value: Decimal) -> Decimal:
    """Rounded half-even to the warehouse's 12 decimals (provider figures rarely have more)."""
    return value.quantize(QUANTUM)


def amount(value: Any, what: str) -> Decimal:
    """A provider figure (a string like "12.345" or a JSON number) as an exact Decimal."""
    try:
        return Decimal(str(value)) if value not in (None, "") else Decimal(0)
    except InvalidOperation:
        raise ValueError(f"{what} is not a number: {str(value)[:40]!r}") from None


def evidence_json(evidence: Any) -> str:
    """JSON text with Decimals written exactly (as strings, like the API's amounts)."""
    return json.dumps(evidence, default=_exact, sort_keys=True, separators=(",", ":"))


def _exact(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def publish_recommendations(
    client: Client,
    *,
    asset: str,
    customer_id: str,
    as_of: Any,
    found: Sequence[Recommendation],
) -> str:
    """Store one result under a new run and point `asset` (a provider's or ours) at it."""
    return publish(
        client,
        table=RECOMMENDATIONS_TABLE,
        asset=asset,
        customer_id=customer_id,
        as_of=as_of,
        columns=COLUMNS,
        rows=[r.row(asset) for r in found],
    )
