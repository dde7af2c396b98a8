"""The restatement ledger: what every window replace changed, computed in the engine while
both the old and the new rows are there, and the rule that tells a restatement worth telling
someone about from a day that is still filling up.

Per (customer, provider, billing account, day, service, charge category, currency) the ledger
keeps the amounts readers saw before the replace and after it, of every cost column, and their
difference: only where some cost column changed, and only for days that had a load before (a
first collection restates nothing). BilledCost is on every line, so its sums are never NULL (0
where a side has no lines); the other columns stay NULL where a side has no value for them."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

from clickhouse_connect.driver.client import Client

from cost_pipelines.warehouse.schema import (
    COSTS_TABLE,
    LOADS_TABLE,
    RESTATEMENTS_TABLE,
    DDLContext,
)

COST_COLUMNS = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost")
# Nullable in `costs` (NULL where the source does not supply them): NULL in the ledger too.
NULLABLE_COST_COLUMNS = COST_COLUMNS[1:]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _amounts() -> str:
    """previous_X, new_X, delta_X of every cost column over the old and the new rows."""
    parts = []
    for column in COST_COLUMNS:
        old = f"sumIf({column}, load_id != {{load_id:UUID}})"
        new = f"sumIf({column}, load_id = {{load_id:UUID}})"
        parts.append(f"{old} AS previous_{column}")
        parts.append(f"{new} AS new_{column}")
        if column in NULLABLE_COST_COLUMNS:
            parts.append(
                f"if(isNull(previous_{column}) AND isNull(new_{column}), NULL, "
                f"ifNull(new_{column}, 0) - ifNull(previous_{column}, 0)) AS delta_{column}"
            )
        else:
            parts.append(f"new_{column} - previous_{column} AS delta_{column}")
    return ",\n           ".join(parts)


def _changed() -> str:
    """Some cost column differs (NULL-safe: a value appearing or disappearing is a change)."""
    return " OR ".join(f"NOT (previous_{c} <=> new_{c})" for c in COST_COLUMNS)


# previous_X, new_X, delta_X per cost column, in the ledger's column order.
AMOUNT_COLUMNS = tuple(
    f"{side}_{column}" for column in COST_COLUMNS for side in ("previous", "new", "delta")
)
LEDGER_COLUMNS = (
    "customer_id",
    "provider",
    "BillingAccountId",
    "charge_date",
    "ServiceName",
    "ChargeCategory",
    "BillingCurrency",
    "previous_lines",
    "new_lines",
    *AMOUNT_COLUMNS,
    "previous_load_id",
    "previous_loaded_at",
    "load_id",
    "collection_run_id",
    "recorded_at",
)

# Per billing account of the window, per day: the load readers see there now (the newest
# pointer) and that pointer's `loaded_at` in microseconds. A day whose newest pointer is older
# than the load being published is one that publishing replaces; days a later-staged load
# already owns change nothing for readers, and days never loaded before restate nothing (the
# caller keeps the former, see `current`). One query for every account of a collection run; read
# first and bound into RECORD_SQL (at most one row per day): on a cluster that query then reads
# only the Distributed line items, never a second Distributed table inside it.
PREVIOUS_SQL = f"""
SELECT BillingAccountId, charge_date, argMax(load_id, loaded_at), toString(max(loaded_at)),
       toUnixTimestamp64Micro(max(loaded_at))
FROM {LOADS_TABLE}
WHERE customer_id = {{customer_id:String}} AND provider = {{provider:String}}
  AND BillingAccountId IN {{accounts:Array(String)}}
  AND charge_date >= {{start:Date}} AND charge_date < {{end:Date}}
GROUP BY BillingAccountId, charge_date
ORDER BY BillingAccountId, charge_date
"""  # noqa: S608 (identifiers only)

# One scan of the window's rows of the old loads and of the staged one, grouped: both are
# stored now (the old ones until retention removes them), so the comparison runs where they are.
RECORD_SQL = f"""
INSERT INTO {RESTATEMENTS_TABLE} ({", ".join(LEDGER_COLUMNS)})
SELECT {{customer_id:String}}, {{provider:String}}, {{account:String}}, day, ServiceName,
       ChargeCategory, BillingCurrency, previous_lines, new_lines,
       {", ".join(AMOUNT_COLUMNS)},
       arrayElement({{previous_loads:Array(UUID)}}, indexOf({{previous_days:Array(Date)}}, day)),
       toDateTime64(arrayElement({{previous_loaded:Array(String)}},
                                 indexOf({{previous_days:Array(Date)}}, day)), 6, 'UTC'),
       {{load_id:UUID}}, {{run_id:String}}, {{recorded_at:DateTime64(6, 'UTC')}}
FROM (
    SELECT toDate(ChargePeriodStart) AS day, ServiceName, ChargeCategory, BillingCurrency,
           toUInt32(countIf(load_id != {{load_id:UUID}})) AS previous_lines,
           toUInt32(countIf(load_id = {{load_id:UUID}})) AS new_lines,
           {_amounts()}
    FROM {COSTS_TABLE}
    WHERE customer_id = {{customer_id:String}} AND provider = {{provider:String}}
      AND BillingAccountId = {{account:String}}
      AND ChargePeriodStart >= {{start_time:DateTime('UTC')}}
      AND ChargePeriodStart < {{end_time:DateTime('UTC')}}
      AND toDate(ChargePeriodStart) IN {{previous_days:Array(Date)}}
      AND (load_id = {{load_id:UUID}}
           OR load_id = arrayElement({{previous_loads:Array(UUID)}},
                                     indexOf({{previous_days:Array(Date)}},
                                             toDate(ChargePeriodStart))))
    GROUP BY day, ServiceName, ChargeCategory, BillingCurrency
    HAVING {_changed()}
)
"""  # noqa: S608 (identifiers and constant expressions only; every value is bound)


def _forget_text(cluster: str | None) -> str:
    ctx = DDLContext(cluster)
    return (
        f"DELETE FROM {ctx.local(RESTATEMENTS_TABLE)}{ctx.on_cluster} "  # noqa: S608
        "WHERE customer_id = {customer_id:String} AND load_id = {load_id:UUID}"
    )


class Current(NamedTuple):
    """A day of the window and the load readers see there now (see PREVIOUS_SQL)."""

    day: date
    load_id: uuid.UUID
    newest: str  # the newest pointer's loaded_at, as text (bound back as text)


def current(
    client: Client,
    *,
    customer_id: str,
    provider: str,
    start: date,
    end: date,
    loaded_at: Mapping[str, datetime],
) -> dict[str, list[Current]]:
    """Per billing account (the keys of `loaded_at`, each with the instant its load was staged),
    the days of [start, end) that load will replace, with the load readers see there now
    (PREVIOUS_SQL): read once per publish, by the ledger and the writer's check for unchanged
    days."""
    if not loaded_at:
        return {}
    scope = {
        "customer_id": customer_id,
        "provider": provider,
        "accounts": sorted(loaded_at),
        "start": start,
        "end": end,
    }
    found: dict[str, list[Current]] = {account: [] for account in loaded_at}
    staged_us = {account: _micros(at) for account, at in loaded_at.items()}
    for account, day, load_id, newest, newest_us in client.query(
        PREVIOUS_SQL, parameters=scope
    ).result_rows:
        if int(newest_us) < staged_us[account]:
            found[account].append(Current(day, uuid.UUID(str(load_id)), str(newest)))
    return found


def _micros(instant: datetime) -> int:
    """Microseconds since the epoch of an aware instant (as toUnixTimestamp64Micro counts)."""
    return (instant - _EPOCH) // timedelta(microseconds=1)


def record(
    client: Client,
    *,
    customer_id: str,
    provider: str,
    account: str,
    start: date,
    end: date,
    previous: Sequence[Current],
    load_id: uuid.UUID,
    run_id: str,
    recorded_at: datetime,
) -> None:
    """Insert the ledger rows of publishing `load_id` over the `previous` days (see RECORD_SQL):
    the days whose content changes. Nothing to compare (and no query) when there is none: a
    first collection, or a re-collection that found every day as it was."""
    if not previous:
        return
    client.command(
        RECORD_SQL,
        parameters={
            "customer_id": customer_id,
            "provider": provider,
            "account": account,
            "start_time": datetime.combine(start, datetime.min.time()),
            "end_time": datetime.combine(end, datetime.min.time()),
            "previous_days": [row.day for row in previous],
            "previous_loads": [str(row.load_id) for row in previous],
            "previous_loaded": [row.newest for row in previous],
            "load_id": load_id,
            "run_id": run_id,
            "recorded_at": recorded_at.replace(tzinfo=None),
        },
    )


def forget(client: Client, customer_id: str, load_id: uuid.UUID, cluster: str | None) -> None:
    """Remove the ledger rows of a load whose pointers could not be published: the change
    they describe never reached a reader."""
    client.command(
        _forget_text(cluster),
        parameters={"customer_id": customer_id, "load_id": load_id},
        settings={"lightweight_deletes_sync": 0},
    )


@dataclass(frozen=True)
class Restatement:
    """One ledger row: a (provider, account, day, service, charge category, currency) whose
    amounts a replace changed."""

    provider: str
    billing_account_id: str
    charge_date: date
    service_name: str
    charge_category: str
    currency: str
    previous_lines: int
    new_lines: int
    previous: dict[str, Decimal | None]
    new: dict[str, Decimal | None]
    delta: dict[str, Decimal | None]
    previous_loaded_at: datetime
    load_id: str
    collection_run_id: str
    recorded_at: datetime

    @property
    def day_had_ended(self) -> bool:
        """The previous load was collected after the day ended: its numbers were the day's
        whole cost then, so a change is a restatement, not a day still filling up."""
        ended = datetime.combine(self.charge_date + timedelta(days=1), datetime.min.time())
        return self.previous_loaded_at.replace(tzinfo=None) >= ended

    def relative_percent(self) -> Decimal | None:
        """|delta| / |previous| of BilledCost in percent; None when there was none before."""
        before, delta = self.previous["BilledCost"], self.delta["BilledCost"]
        if not before or delta is None:
            return None
        return abs(delta) / abs(before) * 100


READ_COLUMNS = (
    "provider",
    "BillingAccountId",
    "charge_date",
    "ServiceName",
    "ChargeCategory",
    "BillingCurrency",
    "previous_lines",
    "new_lines",
    *(f"{side}_{column}" for side in ("previous", "new", "delta") for column in COST_COLUMNS),
    "previous_loaded_at",
    "load_id",
    "collection_run_id",
    "recorded_at",
)


def from_row(row: Sequence[Any]) -> Restatement:
    """A Restatement from a row of READ_COLUMNS."""
    values = dict(zip(READ_COLUMNS, row, strict=True))
    sides = {
        side: {c: values[f"{side}_{c}"] for c in COST_COLUMNS}
        for side in ("previous", "new", "delta")
    }
    return Restatement(
        provider=str(values["provider"]),
        billing_account_id=str(values["BillingAccountId"]),
        charge_date=values["charge_date"],
        service_name=str(values["ServiceName"]),
        charge_category=str(values["ChargeCategory"]),
        currency=str(values["BillingCurrency"]),
        previous_lines=int(values["previous_lines"]),
        new_lines=int(values["new_lines"]),
        previous=sides["previous"],
        new=sides["new"],
        delta=sides["delta"],
        previous_loaded_at=values["previous_loaded_at"],
        load_id=str(values["load_id"]),
        collection_run_id=str(values["collection_run_id"]),
        recorded_at=values["recorded_at"],
    )


OF_LOADS_SQL = f"""
SELECT {", ".join(READ_COLUMNS)}
FROM {RESTATEMENTS_TABLE}
WHERE customer_id = {{customer_id:String}} AND load_id IN {{load_ids:Array(UUID)}}
ORDER BY abs(delta_BilledCost) DESC, charge_date, BillingAccountId, ServiceName, ChargeCategory,
         BillingCurrency
"""  # noqa: S608 (identifiers only)


def of_loads(client: Client, customer_id: str, load_ids: Iterable[uuid.UUID]) -> list[Restatement]:
    """The ledger rows the given loads recorded, largest BilledCost change first."""
    ids = [str(i) for i in load_ids]
    if not ids:
        return []
    rows = client.query(
        OF_LOADS_SQL, parameters={"customer_id": customer_id, "load_ids": ids}
    ).result_rows
    return [from_row(row) for row in rows]


def notable(restatements: Iterable[Restatement], threshold: Any) -> list[Restatement]:
    """The restatements above a customer's threshold (`min_amount`: absolute BilledCost change
    in the billing currency; `min_percent`: relative to the previous BilledCost): days that had
    ended when last collected, whose BilledCost changed by at least both (a change from nothing
    counts as relative enough)."""
    out = []
    for item in restatements:
        delta = item.delta["BilledCost"]
        if delta is None or not item.day_had_ended or abs(delta) < threshold.min_amount:
            continue
        relative = item.relative_percent()
        if relative is None or relative >= threshold.min_percent:
            out.append(item)
    return out


def _amount(value: Decimal | None) -> str:
    return "" if value is None else f"{value.normalize():f}"


def markdown(restatements: Sequence[Restatement], limit: int = 50) -> str:
    """The restatements as a markdown table for the materialization (the largest `limit`)."""
    head = (
        "| day | account | service | charge category | currency | previous | new | delta |\n"
        "|---|---|---|---|---|---:|---:|---:|\n"
    )
    body = "".join(
        f"| {r.charge_date} | {r.billing_account_id} | {r.service_name} | {r.charge_category} "
        f"| {r.currency} | {_amount(r.previous['BilledCost'])} | {_amount(r.new['BilledCost'])} "
        f"| {_amount(r.delta['BilledCost'])} |\n"
        for r in restatements[:limit]
    )
    more = f"\n{len(restatements) - limit} more not shown.\n" if len(restatements) > limit else ""
    return head + body + more
