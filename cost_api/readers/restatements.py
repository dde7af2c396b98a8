"""The restatement ledger of one customer and provider (or all): what window replaces changed
in a charge period, when and by how much, per currency (`cost_restatements`, written by the
write path as it publishes each load; see cost_pipelines/warehouse/ledger.py)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from clickhouse_connect.driver.client import Client

from cost_api.params import Period, ProviderChoice, provider_members
from cost_api.readers.clickhouse_reader import ClickHouseReader
from cost_api.readers.completeness import utc
from cost_api.schemas.costs import PeriodPublic
from cost_api.schemas.restatements import (
    CostAmounts,
    ReplaceTotal,
    RestatementChange,
    Restatements,
)
from cost_pipelines.warehouse.ledger import COST_COLUMNS, READ_COLUMNS, from_row

_SCOPE = """customer_id = {customer_id:String} AND provider IN {providers:Array(String)}
  AND charge_date >= {start:Date} AND charge_date < {end:Date}"""

CHANGES_SQL = f"""
SELECT {", ".join(READ_COLUMNS)}, count() OVER () AS total
FROM cost_restatements
WHERE {_SCOPE}
ORDER BY recorded_at, provider, BillingAccountId, charge_date, ServiceName, ChargeCategory,
         BillingCurrency
LIMIT {{limit:UInt32}}
"""  # noqa: S608 (constant column names; every value is bound)

REPLACES_SQL = f"""
SELECT recorded_at, collection_run_id, provider, BillingAccountId, BillingCurrency, count(),
       {", ".join(f"sum(delta_{column})" for column in COST_COLUMNS)}
FROM cost_restatements
WHERE {_SCOPE}
GROUP BY recorded_at, collection_run_id, provider, BillingAccountId, BillingCurrency
ORDER BY recorded_at, provider, BillingAccountId, BillingCurrency
"""  # noqa: S608 (constant column names; every value is bound)


def _amounts(values: dict[str, Decimal | None] | Sequence[Any]) -> CostAmounts:
    if not isinstance(values, dict):
        values = dict(zip(COST_COLUMNS, values, strict=True))
    billed = values["BilledCost"]
    return CostAmounts(
        billed_cost=billed if billed is not None else Decimal(0),
        effective_cost=values["EffectiveCost"],
        list_cost=values["ListCost"],
        contracted_cost=values["ContractedCost"],
    )


class RestatementReader(ClickHouseReader):
    def __init__(
        self,
        client: Client,
        customer_id: str,
        provider: ProviderChoice,
        as_of: datetime | None = None,
    ) -> None:
        super().__init__(client, as_of)
        self.customer_id = customer_id
        self.provider = provider

    def restatements(self, period: Period, *, limit: int) -> Restatements:
        values = {
            "customer_id": self.customer_id,
            "providers": provider_members(self.provider),
            "start": period.start,
            "end": period.end,
            "limit": limit,
        }
        rows = self.rows(CHANGES_SQL, values)
        changes = []
        for row in rows:
            item = from_row(row[:-1])
            changes.append(
                RestatementChange(
                    recorded_at=utc(item.recorded_at),
                    collection_run_id=item.collection_run_id,
                    provider=item.provider,
                    billing_account_id=item.billing_account_id,
                    charge_date=item.charge_date,
                    service_name=item.service_name,
                    charge_category=item.charge_category,
                    currency=item.currency,
                    lines_before=item.previous_lines,
                    lines_after=item.new_lines,
                    previous=_amounts(item.previous),
                    new=_amounts(item.new),
                    delta=_amounts(item.delta),
                    day_had_ended=item.day_had_ended,
                )
            )
        replaces = [
            ReplaceTotal(
                recorded_at=utc(at),
                collection_run_id=run_id,
                provider=provider,
                billing_account_id=account,
                currency=currency,
                changes=int(count),
                delta=_amounts(deltas),
            )
            for at, run_id, provider, account, currency, count, *deltas in self.rows(
                REPLACES_SQL, values
            )
        ]
        return Restatements(
            customer_id=self.customer_id,
            provider=self.provider,
            period=PeriodPublic.of(period),
            as_of=self.as_of,
            replaces=replaces,
            changes=changes,
            count=int(rows[0][-1]) if rows else 0,
        )
