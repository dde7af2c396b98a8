"""Asset checks every provider asset carries, evaluated on the window its run just wrote:
FOCUS conformance of the stored lines, and reconciliation of the stored totals with an independent
total the provider gave in the same run. A failing check names customer, provider, account, day
and what is wrong; the Dagster UI and `collectors/status` show it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from clickhouse_connect.driver.client import Client
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    MetadataValue,
    PartitionsDefinition,
)

from cost_pipelines.focus import CHARGE_CATEGORIES, CHARGE_CLASSES, SERVICE_CATEGORIES
from cost_pipelines.runs import CONFORMANCE, RECONCILIATION

MAX_FINDINGS = 20  # per check, in its metadata; the count says how many there were

# The columns that identify one line: a collector that emits the same key twice (a page read
# twice, a join that fans out) double-counts it.
LINE_KEY = (
    "BillingAccountId",
    "toDate(ChargePeriodStart)",
    "SubAccountId",
    "ServiceName",
    "ResourceId",
    "RegionId",
    "SkuId",
    "ChargeCategory",
    "ChargeClass",
    "x_ChargeType",
    "BillingCurrency",
    "PricingUnit",
    "ChargeDescription",
    "BillingPeriodStart",  # one day's charge can be invoiced in two months (GCP late usage)
    "Tags",
)
_WINDOW = """
FROM costs_current(customer_id = {customer_id:String})
WHERE provider = {provider:String} AND BillingAccountId IN {accounts:Array(String)}
  AND ChargePeriodStart >= {start:DateTime('UTC')} AND ChargePeriodStart < {end:DateTime('UTC')}
"""
_KEY_HASH = f"cityHash64(tuple({', '.join(LINE_KEY)}))"  # a tuple hashes NULL apart from ''
# One pass over the window's lines, narrowed at once to a row per (account, source, day and
# combination of problems): the null-cost rule needs a whole source's counts, which are then
# summed over those few rows, not over the lines. Line keys that appear twice are found by
# their 64-bit hash first, then confirmed on the key's own columns (a hash collision is never a
# finding), so the exact grouping only holds the candidates.
_CONFORMANCE_SQL = f"""
SELECT BillingAccountId, day, problem, sum(lines) AS lines
FROM (
    SELECT BillingAccountId, day, lines, arrayJoin(arrayFilter(p -> p != '', arrayConcat(
        problems,
        [if(no_list AND listed > 0,
            'ListCost is null on a line of a source that supplies it', ''),
         if(no_contracted AND contracted > 0,
            'ContractedCost is null on a line of a source that supplies it', '')]
    ))) AS problem
    FROM (
        SELECT *,
            sumIf(lines, NOT no_list) OVER (PARTITION BY BillingAccountId, source) AS listed,
            sumIf(lines, NOT no_contracted) OVER (PARTITION BY BillingAccountId, source)
                AS contracted
        FROM (
            SELECT BillingAccountId, source, toDate(ChargePeriodStart) AS day,
                arrayFilter(p -> p != '', [
                    if(ChargeCategory NOT IN {{categories:Array(String)}},
                       concat('ChargeCategory "', ChargeCategory, '" is not a FOCUS value'), ''),
                    if(ServiceCategory NOT IN {{service_categories:Array(String)}},
                       concat('ServiceCategory "', ServiceCategory, '" is not a FOCUS value'),
                       ''),
                    if(ChargeClass IS NOT NULL AND ChargeClass NOT IN {{classes:Array(String)}},
                       concat('ChargeClass "', ChargeClass, '" is not a FOCUS value'), ''),
                    if(length(BillingCurrency) != 3, 'BillingCurrency is missing', ''),
                    if(ChargePeriodStart >= {{now:DateTime('UTC')}},
                       'charge period starts in the future', ''),
                    if(ChargeCategory = 'Usage' AND ListCost < ContractedCost,
                       'ListCost is below ContractedCost on a usage line', '')
                ]) AS problems,
                -- FOCUS never has a null List or Contracted cost: a source that supplies them
                -- (not every source does: Cost Explorer has none) supplies them on every line.
                isNull(ListCost) AS no_list,
                isNull(ContractedCost) AS no_contracted,
                count() AS lines
            {_WINDOW}
            GROUP BY BillingAccountId, source, day, problems, no_list, no_contracted
        )
    )
    UNION ALL
    SELECT BillingAccountId, toDate(any(ChargePeriodStart)), 1,
        'the same line key appears more than once'
    {_WINDOW}
      AND {_KEY_HASH} IN (
        SELECT {_KEY_HASH} AS key {_WINDOW} GROUP BY key HAVING count() > 1
      )
    GROUP BY {", ".join(LINE_KEY)}
    HAVING count() > 1
)
GROUP BY BillingAccountId, day, problem
ORDER BY day, BillingAccountId, problem
"""  # noqa: S608 (the key columns are constants; every value is bound)
_TOTALS_SQL = f"""
SELECT BillingAccountId, toDate(ChargePeriodStart) AS day, BillingCurrency, sum(BilledCost)
{_WINDOW}
GROUP BY BillingAccountId, day, BillingCurrency
"""


# (billing account, charge day, currency) -> BilledCost
DayTotals = Mapping[tuple[str, date, str], Decimal]


@dataclass(frozen=True)
class WrittenWindow:
    """What one run wrote: the days [start, end) of these accounts of one customer and provider."""

    customer_id: str
    provider: str
    accounts: tuple[str, ...]
    start: date
    end: date

    def parameters(self) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id,
            "provider": self.provider,
            "accounts": list(self.accounts),
            "start": datetime.combine(self.start, datetime.min.time()),
            "end": datetime.combine(self.end, datetime.min.time()),
        }


def check_specs(asset: AssetKey, partitions: PartitionsDefinition) -> list[AssetCheckSpec]:
    """The checks a provider asset declares, evaluated on every materialization and partitioned
    like the asset, so each customer's latest result can be read on its own."""
    return [
        AssetCheckSpec(
            CONFORMANCE,
            asset=asset,
            partitions_def=partitions,
            blocking=True,  # downstream analyses never read a window that breaks FOCUS
            description="The window just written uses FOCUS values only (ChargeCategory, "
            "ServiceCategory, ChargeClass), has a currency on every line, no charge in the "
            "future, no line key twice, and ListCost >= ContractedCost on usage lines",
        ),
        AssetCheckSpec(
            RECONCILIATION,
            asset=asset,
            partitions_def=partitions,
            description="Per billing account, day and currency, the stored BilledCost equals "
            "an independent total the provider gave in the same run",
        ),
    ]


def conformance(client: Client, written: WrittenWindow) -> AssetCheckResult:
    """FOCUS conformance of the stored lines of the window."""
    params = {
        **written.parameters(),
        "categories": sorted(CHARGE_CATEGORIES),
        "service_categories": sorted(SERVICE_CATEGORIES),
        "classes": sorted(CHARGE_CLASSES),
        "now": datetime.now(UTC).replace(tzinfo=None),
    }
    rows = client.query(_CONFORMANCE_SQL, parameters=params).result_rows
    findings = [
        f"{written.customer_id}/{written.provider} account {account} {day}: {problem} "
        f"({lines} line{'s' if lines != 1 else ''})"
        for account, day, problem, lines in rows
    ]
    return AssetCheckResult(
        check_name=CONFORMANCE,
        passed=not findings,
        severity=AssetCheckSeverity.ERROR,
        description=findings[0] if findings else "every line conforms",
        metadata={
            "findings": MetadataValue.int(len(findings)),
            "first_findings": MetadataValue.md(_bullets(findings)),
        },
    )


def stored_totals(client: Client, written: WrittenWindow) -> dict[tuple[str, date, str], Decimal]:
    rows = client.query(_TOTALS_SQL, parameters=written.parameters()).result_rows
    return {(str(a), d, str(c)): Decimal(total) for a, d, c, total in rows}


def reconciliation(
    client: Client, written: WrittenWindow, reference: DayTotals | None, source: str
) -> AssetCheckResult:
    """The stored totals against the provider's own, to the last decimal; a day the provider
    has cost for and the store has not (or the other way round) is a difference too."""
    if reference is None:
        return AssetCheckResult(
            check_name=RECONCILIATION,
            passed=True,
            severity=AssetCheckSeverity.WARN,
            description="this source gives no independent total to reconcile with",
        )
    stored = stored_totals(client, written)
    zero = Decimal(0)
    differences = []
    for key in sorted(set(stored) | set(reference)):
        ours, theirs = stored.get(key, zero), reference.get(key, zero)
        if ours != theirs:
            account, day, currency = key
            differences.append(
                f"{written.customer_id}/{written.provider} account {account} {day}: stored "
                f"{ours.normalize():f} {currency}, {source} {theirs.normalize():f} "
                f"(difference {(ours - theirs).normalize():f})"
            )
    return AssetCheckResult(
        check_name=RECONCILIATION,
        passed=not differences,
        severity=AssetCheckSeverity.ERROR,
        description=differences[0] if differences else f"every day equals {source}",
        metadata={
            "reference": MetadataValue.text(source),
            "days_compared": MetadataValue.int(len(set(stored) | set(reference))),
            "differences": MetadataValue.int(len(differences)),
            "first_differences": MetadataValue.md(_bullets(differences)),
        },
    )


def _bullets(lines: list[str]) -> str:
    shown = [f"- {line}" for line in lines[:MAX_FINDINGS]]
    if len(lines) > MAX_FINDINGS:
        shown.append(f"- … and {len(lines) - MAX_FINDINGS} more")
    return "\n".join(shown) or "none"
