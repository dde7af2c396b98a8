"""How long superseded loads are kept, and the one place that removes them.

A window replace no longer deletes the load it supersedes: point-in-time reads (`as_of`) answer
from it. `enforce` deletes what no point-in-time read at or after a cutoff can need: for each
(customer, provider, billing account, day), the pointers older (`loaded_at`) than the newest one
published before the cutoff, since from the cutoff on that newer one, or a later one, is the
one readers are shown, and the lines of every load that only such pointers name. A collection
that found a day unchanged points it at the load already holding its lines, so one load may be
named by a superseded pointer and by a kept one: its lines stay. The current load of a day is
the newest of all, so it is never among them. It first moves the history horizon (the earliest
instant a point-in-time read may ask for) to the cutoff, so no read is answered from a load
being removed.

Ledger rows (`cost_restatements`) are kept: they are small (one row per changed service and
day, not per line) and are the durable record of what changed and when, long after the lines of
the superseded loads are gone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from clickhouse_connect.driver.client import Client

from cost_pipelines.warehouse.schema import (
    COSTS_TABLE,
    DAILY_TABLE,
    HORIZON_TABLE,
    LOADS_TABLE,
    DDLContext,
)

DEFAULT_RETENTION_DAYS = 90
# A load without any pointer is a failed write once it is this old (no write takes as long);
# younger ones may still be staging.
UNPUBLISHED_GRACE = timedelta(days=1)

HORIZON_SQL = f"SELECT max(horizon) FROM {HORIZON_TABLE}"  # noqa: S608 (identifier only)

# The newest pointer published before the cutoff per (customer, provider, account, day): from
# the cutoff on it, or a later one, is the one readers are shown. `inner` is where the pointers
# published before the cutoff are read: on a cluster always the shard's own (co-located) ones,
# as in the costs_current view.
_NEWEST = """
SELECT customer_id, provider, BillingAccountId, charge_date, max(loaded_at) AS newest
FROM {inner:Identifier}
WHERE published_at < {cutoff:DateTime64(6, 'UTC')}
GROUP BY customer_id, provider, BillingAccountId, charge_date
"""

# (customer, provider, account, day, load, loaded_at) of every pointer that pointer outranks:
# from the cutoff on, it is never the newest published one. `outer` is where the pointers are
# read. With `loaded_at`: a newer pointer of the day may name the same load.
_SUPERSEDED = f"""
SELECT p.customer_id, p.provider, p.BillingAccountId, p.charge_date, p.load_id, p.loaded_at
FROM {{outer:Identifier}} AS p
INNER JOIN ({_NEWEST}) AS s ON s.customer_id = p.customer_id AND s.provider = p.provider
      AND s.BillingAccountId = p.BillingAccountId AND s.charge_date = p.charge_date
WHERE p.loaded_at < s.newest
"""  # noqa: S608 (identifiers only)

# (customer, provider, account, day, load) whose lines no kept pointer needs: every pointer to
# that load on that day is superseded. A day found unchanged by a later collection is pointed
# at the load that holds its lines again (warehouse/writer.py), so an outranked pointer's load
# may well be the one the newest pointer names: its lines stay.
_UNREFERENCED = f"""
SELECT p.customer_id, p.provider, p.BillingAccountId, p.charge_date, p.load_id
FROM {{outer:Identifier}} AS p
INNER JOIN ({_NEWEST}) AS s ON s.customer_id = p.customer_id AND s.provider = p.provider
      AND s.BillingAccountId = p.BillingAccountId AND s.charge_date = p.charge_date
GROUP BY p.customer_id, p.provider, p.BillingAccountId, p.charge_date, p.load_id
HAVING max(p.loaded_at) < any(s.newest)
"""  # noqa: S608 (identifiers only)

_LOCAL_UNREFERENCED = _UNREFERENCED.replace("{outer:Identifier}", "{inner:Identifier}")
POINTERS_SQL = f"SELECT count() FROM ({_SUPERSEDED})"  # noqa: S608 (identifiers only)
LINES_SQL = f"""
SELECT count() FROM {COSTS_TABLE}
WHERE (customer_id, provider, BillingAccountId, toDate(ChargePeriodStart), load_id)
      IN ({_LOCAL_UNREFERENCED})
"""  # noqa: S608 (identifiers only)


@dataclass(frozen=True)
class RetentionResult:
    cutoff: datetime
    horizon: datetime
    superseded_pointers: int
    superseded_lines: int


def horizon(client: Client) -> datetime | None:
    """The earliest instant a point-in-time read may ask for (None before migration 4)."""
    rows = client.query(HORIZON_SQL).result_rows
    value: datetime | None = rows[0][0] if rows else None
    if value is None or value.year <= 1970:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _deletes(cluster: str | None) -> list[str]:
    """Lines no kept pointer needs and their daily sums, then the superseded pointers (so a
    failure half-way leaves pointers that the next run finds again), then lines and daily sums
    of days no pointer ever named for their load, older than the grace (a load never published,
    or a day found unchanged whose copy `clean_up` did not get to delete). On a cluster each
    runs on the local tables of every shard, whose pointers are co-located."""
    ctx = DDLContext(cluster)
    costs, loads = ctx.local(COSTS_TABLE), ctx.local(LOADS_TABLE)
    daily = ctx.local(DAILY_TABLE)
    local = {"{outer:Identifier}": loads, "{inner:Identifier}": loads}
    superseded, unreferenced = _SUPERSEDED, _UNREFERENCED
    for placeholder, table in local.items():
        superseded = superseded.replace(placeholder, table)
        unreferenced = unreferenced.replace(placeholder, table)
    return [
        f"DELETE FROM {costs}{ctx.on_cluster} "  # noqa: S608 (identifiers only)
        "WHERE (customer_id, provider, BillingAccountId, toDate(ChargePeriodStart), load_id) "
        f"IN ({unreferenced})",
        f"DELETE FROM {daily}{ctx.on_cluster} "  # noqa: S608 (identifiers only)
        "WHERE (customer_id, provider, BillingAccountId, charge_date, load_id) "
        f"IN ({unreferenced})",
        f"DELETE FROM {loads}{ctx.on_cluster} "  # noqa: S608 (identifiers only)
        "WHERE (customer_id, provider, BillingAccountId, charge_date, load_id, loaded_at) "
        f"IN ({superseded})",
        f"DELETE FROM {costs}{ctx.on_cluster} "  # noqa: S608 (identifiers only)
        "WHERE collected_at < {stale:DateTime64(3, 'UTC')} "
        "AND (customer_id, provider, BillingAccountId, toDate(ChargePeriodStart), load_id) "
        "NOT IN (SELECT customer_id, provider, BillingAccountId, charge_date, load_id "
        f"FROM {loads})",
        f"DELETE FROM {daily}{ctx.on_cluster} "  # noqa: S608 (identifiers only)
        "WHERE collected_at < {stale:DateTime64(3, 'UTC')} "
        "AND (customer_id, provider, BillingAccountId, charge_date, load_id) "
        "NOT IN (SELECT customer_id, provider, BillingAccountId, charge_date, load_id "
        f"FROM {loads})",
    ]


def enforce(client: Client, cutoff: datetime, cluster: str | None = None) -> RetentionResult:
    """Delete the superseded loads no point-in-time read at or after `cutoff` needs, and
    refuse earlier instants from now on. Current loads and ledger rows are never touched; a
    cutoff before the horizon changes nothing (the horizon never moves back)."""
    cutoff = cutoff.astimezone(UTC)
    before = horizon(client)
    if before is not None and cutoff <= before:
        return RetentionResult(cutoff, before, 0, 0)
    naive = cutoff.replace(tzinfo=None)
    tables = {"outer": LOADS_TABLE, "inner": DDLContext(cluster).local(LOADS_TABLE)}
    pointers = client.query(POINTERS_SQL, parameters={**tables, "cutoff": naive}).result_rows
    lines = client.query(LINES_SQL, parameters={**tables, "cutoff": naive}).result_rows
    client.command(
        f"INSERT INTO {HORIZON_TABLE} (horizon, reason) "
        "SELECT {cutoff:DateTime64(6, 'UTC')}, {reason:String}",
        parameters={"cutoff": naive, "reason": "superseded loads deleted before here"},
    )
    stale = min(cutoff, datetime.now(UTC) - UNPUBLISHED_GRACE).replace(tzinfo=None)
    # Synchronous: the pointer delete must not run before the lines' delete has read them.
    settings = {"lightweight_deletes_sync": 2, "allow_nondeterministic_mutations": 1}
    for statement in _deletes(cluster):
        client.command(statement, parameters={"cutoff": naive, "stale": stale}, settings=settings)
    return RetentionResult(cutoff, cutoff, int(pointers[0][0]), int(lines[0][0]))
