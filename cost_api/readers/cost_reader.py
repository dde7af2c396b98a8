"""CostReader: every cost read the API serves, one method and one fixed SQL text per read.

Every query reads only `costs_current(customer_id=...)` (the lines: metrics, latest, by
resource), `cost_daily_current(customer_id=...)` (their sums per day and service, behind the
same pointers: total, trends, by type), `cost_loads` rows of that customer (collection times)
and `exchange_rates` (conversion). Values, including the chosen cost column,
are bound server-side; each read has two fixed SQL texts (native and converted), the request only
chooses between them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from itertools import takewhile
from typing import Any

from clickhouse_connect.driver.client import Client

from cost_api.errors import MetricUnavailable
from cost_api.params import (
    EARLIEST,
    CostMetric,
    CostQuery,
    Period,
    provider_members,
    today_utc,
)
from cost_api.readers import conversion, shaping, trends
from cost_api.readers.clickhouse_reader import ClickHouseReader
from cost_api.readers.completeness import (
    DAY_STATE_SQL,
    LOADS_VERSION_SQL,
    LOOKBACK_DAYS,
    STATES,
    DataState,
)
from cost_api.readers.conversion import ConversionRequest
from cost_api.readers.cursor import PageKey, encode_cursor
from cost_api.readers.trends import Grain
from cost_api.schemas.costs import (
    Conversion,
    CostLine,
    CostLinesPage,
    CostTrends,
    LatestCosts,
    PeriodPublic,
    ResourceCosts,
    TotalCost,
    TypeCosts,
)

# The order of the lines (newest day first, biggest first within a day, then every column so the
# order is total), as one ascending tuple: a page starts right after the previous page's last
# line (keyset), so a deep page reads what the first page reads, and days after the cursor's are
# not scanned at all. NULLs (costs a source does not supply) sort last, as ORDER BY does.
METRICS_ORDER = """-toInt32(toDate(ChargePeriodStart)), isNull({metric:Identifier}),
         -ifNull({metric:Identifier}, 0), provider, BillingAccountId, ServiceName, ResourceId,
         RegionId, ChargeCategory, BillingCurrency, BilledCost,
         isNull(EffectiveCost), ifNull(EffectiveCost, 0), isNull(ListCost), ifNull(ListCost, 0),
         isNull(ContractedCost), ifNull(ContractedCost, 0)"""
_MONEY_PARAMETER = "Decimal(38, 12)"
EPOCH = date(1970, 1, 1)  # toInt32 of a Date counts days from it
READ_ATTEMPTS = 3  # reads of two queries that start over when a load lands between them
# The bound values of a cursor's line, in METRICS_ORDER's order and types.
AFTER_TYPES = (
    ("day", "Int32"),
    ("metric_null", "UInt8"),
    ("metric", _MONEY_PARAMETER),
    ("provider", "String"),
    ("account", "String"),
    ("service", "String"),
    ("resource", "String"),
    ("region", "String"),
    ("category", "String"),
    ("currency", "String"),
    ("billed", _MONEY_PARAMETER),
    ("effective_null", "UInt8"),
    ("effective", _MONEY_PARAMETER),
    ("list_null", "UInt8"),
    ("list", _MONEY_PARAMETER),
    ("contracted_null", "UInt8"),
    ("contracted", _MONEY_PARAMETER),
)
_AFTER = ", ".join(f"{{after_{name}:{kind}}}" for name, kind in AFTER_TYPES)
_METRICS = """
SELECT toDate(ChargePeriodStart) AS day, provider, BillingAccountId, ServiceName, ResourceId,
       RegionId, ChargeCategory, BilledCost, EffectiveCost, ListCost, ContractedCost,
       BillingCurrency
FROM costs_current(customer_id = {{customer_id:String}})
WHERE provider IN {{providers:Array(String)}}
  AND ChargePeriodStart >= {{start:DateTime('UTC')}} AND ChargePeriodStart < {{end:DateTime('UTC')}}
  {after}
ORDER BY {order}
LIMIT {{limit:UInt32}} OFFSET {{skip:UInt64}}
"""
# Columns in the order CostLine lists them. The first page, then the pages after a cursor's line:
# its day bounds the scan, the tuple comparison starts at the line itself, and `skip` passes the
# lines equal to it that the previous pages already returned (lines may repeat every column).
METRICS_SQL = _METRICS.format(after="", order=METRICS_ORDER)
METRICS_AFTER_SQL = _METRICS.format(
    after=f"""AND ChargePeriodStart < {{after_next_day:DateTime('UTC')}}
  AND ({METRICS_ORDER}) >= ({_AFTER})""",
    order=METRICS_ORDER,
)

# The period's lines per day, newest first, from the daily sums: the page's count, and the
# oldest day a page can reach (see _scan_start), so a page reads the days it shows, not the
# whole period.
LINES_PER_DAY_SQL = """
SELECT charge_date, sum(lines)
FROM cost_daily_current(customer_id = {customer_id:String})
WHERE provider IN {providers:Array(String)}
  AND charge_date >= toDate({start:DateTime('UTC')}) AND charge_date < toDate({end:DateTime('UTC')})
GROUP BY charge_date
ORDER BY charge_date DESC
"""

# The lines of the request's providers in its period (aggregated reads); `latest` narrows them to
# each provider's own day: $picked_days[i] for the i-th of its providers.
PERIOD_WHERE = """provider IN {providers:Array(String)}
      AND ChargePeriodStart >= {start:DateTime('UTC')}
      AND ChargePeriodStart < {end:DateTime('UTC')}"""
# The same period over the daily sums: a period is whole UTC days, so a line's start is in it
# exactly when its charge date is.
DAILY_WHERE = """provider IN {providers:Array(String)}
      AND charge_date >= toDate({start:DateTime('UTC')})
      AND charge_date < toDate({end:DateTime('UTC')})"""
LATEST_WHERE = (
    PERIOD_WHERE
    + """
      AND toDate(ChargePeriodStart)
          = arrayElement({picked_days:Array(Date)}, indexOf({providers:Array(String)}, provider))"""
)

LATEST_SQL = conversion.texts(
    """
SELECT provider, ServiceName, ResourceId, currency, @MONEY(sum(amount))@ AS day_amount,
       count() AS day_lines
FROM @LINES@
GROUP BY provider, ServiceName, ResourceId, currency
ORDER BY provider, currency, day_amount DESC, ServiceName, ResourceId
""",
    LATEST_WHERE,
)

DAILY_SQL = conversion.texts(
    """
SELECT charge_date AS day, currency, @MONEY(sum(amount))@
FROM @DAILY@
GROUP BY day, currency
ORDER BY day, currency
""",
    DAILY_WHERE,
)

# Only for a trend over a period without cost: the currencies to state its zeros in.
CURRENCIES_SQL = """
SELECT DISTINCT BillingCurrency
FROM cost_daily_current(customer_id = {customer_id:String})
WHERE provider IN {providers:Array(String)}
ORDER BY BillingCurrency
"""

# Cost without a resource is grouped per service (its own explicit row), so it is never shown
# under whichever service name happened to be the largest string. Per row: net, the sum of its
# positive lines (gross) and of its negative ones (credits); per currency the same over every row
# before LIMIT, so the shares (gross / currency gross) of all rows add up to 100.
#
# This exact text groups by the strings; the read answers with two cheaper queries instead (see
# _resource_rows) and uses it only when they cannot give the same answer.
BY_RESOURCE_SQL = conversion.texts(
    """
SELECT provider, ResourceId, currency, max(ResourceName),
       if(ResourceId = '', unattributed_service, max(ServiceName)),
       @MONEY(sum(amount))@ AS net,
       @MONEY(sumIf(amount, amount > 0))@ AS gross,
       @MONEY(sumIf(amount, amount < 0))@ AS credits,
       sum(net) OVER (PARTITION BY currency),
       sum(gross) OVER (PARTITION BY currency),
       sum(credits) OVER (PARTITION BY currency)
FROM @LINES@
GROUP BY provider, ResourceId, if(ResourceId = '', ServiceName, '') AS unattributed_service,
         currency
ORDER BY currency, net DESC, provider, ResourceId, unattributed_service
LIMIT {limit:UInt32} BY currency
""",
    PERIOD_WHERE,
)
# The same groups by one 64-bit number: the line's stored ResourceKey (provider, resource and
# unattributed service hashed, migration 8) mixed with its currency's hash. Grouping by it is
# half the work of grouping by the strings, and no string is read: each currency's `limit` + 1
# biggest groups (the one more shows whether the cut falls between equal amounts) with the
# currency's totals, and each group's smallest and largest ResourceKey (equal unless two keys
# collide after the mixing).
BY_RESOURCE_TOP_SQL = conversion.texts(
    """
SELECT bitXor(ResourceKey, cityHash64(currency)) AS mixed_key, any(currency) AS key_currency,
       min(ResourceKey), max(ResourceKey),
       @MONEY(sum(amount))@ AS net,
       @MONEY(sumIf(amount, amount > 0))@ AS gross,
       @MONEY(sumIf(amount, amount < 0))@ AS credits,
       sum(net) OVER per_currency,
       sum(gross) OVER per_currency,
       sum(credits) OVER per_currency
FROM @LINES@
GROUP BY mixed_key
WINDOW per_currency AS (PARTITION BY key_currency)
ORDER BY key_currency, net DESC
LIMIT {limit:UInt32} BY key_currency
""",
    PERIOD_WHERE,
)
# What those groups are: every (ResourceKey, provider, resource, currency, unattributed
# service) among the period's lines with one of the keys, with its names; exactly one per key and
# currency unless two resources share a key. `costs_current_resources` is `costs_current` read
# from the lines with those keys first (PREWHERE), so the current-load filter runs on them only.
_BY_RESOURCE_NAMES = """
SELECT ResourceKey, provider, ResourceId, {currency} AS key_currency,
       if(ResourceId = '', ServiceName, '') AS unattributed_service,
       max(ResourceName), if(ResourceId = '', unattributed_service, max(ServiceName))
FROM costs_current_resources(customer_id = {{customer_id:String}}, keys = {{keys:Array(UInt64)}})
WHERE {where}
GROUP BY ResourceKey, provider, ResourceId, key_currency, unattributed_service
"""
BY_RESOURCE_NAMES_SQL = {
    converted: _BY_RESOURCE_NAMES.format(
        currency="{target:String}" if converted else "BillingCurrency", where=PERIOD_WHERE
    )
    for converted in (False, True)
}
# Keys per names query: their values travel in the request's URL (~20 bytes each). Past
# NAMED_MAX kept groups (more than the API's largest limit in two currencies) the names queries
# would cost what grouping by the strings does, and the exact text answers.
NAMES_CHUNK = 500
NAMED_MAX = 2_000

# Which sources of the requested costs lack the chosen cost column (NULL) in the period, with
# their number of such lines (`missing`: the daily sums' count of them, <metric>_missing).
UNAVAILABLE_SQL = f"""
SELECT provider, source, sum({{missing:Identifier}}) AS missing_lines
FROM cost_daily_current(customer_id = {{customer_id:String}})
WHERE {DAILY_WHERE}
GROUP BY provider, source
HAVING missing_lines > 0
ORDER BY provider, source
"""  # noqa: S608 (a constant filter; every value is bound)

BY_TYPE_SQL = conversion.texts(
    """
SELECT currency, ServiceCategory, ServiceName, @MONEY(sum(amount))@
FROM @DAILY@
GROUP BY currency, ServiceCategory, ServiceName
""",
    DAILY_WHERE,
)

TOTAL_SQL = conversion.texts(
    """
SELECT currency, @MONEY(sum(amount))@, sum(lines)
FROM @DAILY@
GROUP BY currency
ORDER BY currency
""",
    DAILY_WHERE,
)

RATES_CHECK_SQL = {
    PERIOD_WHERE: conversion.rates_check_text(PERIOD_WHERE),
    LATEST_WHERE: conversion.rates_check_text(LATEST_WHERE),
    DAILY_WHERE: conversion.rates_check_text(DAILY_WHERE, daily=True),
}


def _scan_start(
    per_day: Sequence[tuple[date, int]], wanted: int, cursor_day: date | None, start: date
) -> date:
    """The oldest day a page needs to read. Lines sort newest day first, so going back from the
    newest day, the first day by which `wanted` lines have been passed bounds the page. After a
    cursor the page starts inside the cursor's day (read whole, its lines counted as none) and
    needs `wanted` lines of the days before it. The period's start when there are not enough."""
    passed = 0
    for day, lines in per_day:  # newest first
        if cursor_day is not None and day >= cursor_day:
            continue
        passed += lines
        if passed >= wanted:
            return max(day, start)
    return start


def _within_limit(top: Sequence[Sequence[Any]], limit: int) -> list[Sequence[Any]] | None:
    """The groups each currency keeps of BY_RESOURCE_TOP_SQL's `limit` + 1 biggest per currency;
    None when a currency's last kept group and the first one cut have the same amount (which of
    them is kept then depends on the names), or when a group mixes two ResourceKeys."""
    kept: list[Sequence[Any]] = []
    per_currency: dict[str, list[Sequence[Any]]] = {}
    for row in top:
        per_currency.setdefault(row[1], []).append(row)
    for rows in per_currency.values():
        if len(rows) > limit and rows[limit][4] == rows[limit - 1][4]:
            return None
        kept.extend(rows[:limit])
    if any(row[2] != row[3] for row in kept):
        return None
    return kept


def _resource_result(
    kept: Sequence[Sequence[Any]], names: dict[tuple[int, str], list[Sequence[Any]]]
) -> list[tuple[Any, ...]]:
    """BY_RESOURCE_SQL's rows, in its order, from the kept groups and their one names row each."""
    rows = []
    for _, currency, key, _, net, gross, credits, *totals in kept:
        [(_, provider, resource, _, unattributed, name, service)] = names[key, currency]
        amounts = (net, gross, credits, *totals)
        rows.append((provider, resource, currency, name, service, *amounts, unattributed))
    # ORDER BY currency, net DESC (NULLs last), provider, ResourceId, unattributed service
    rows.sort(key=lambda r: (r[2], r[5] is None, -(r[5] or 0), r[0], r[1], r[-1]))
    return [row[:-1] for row in rows]


class CostReader(ClickHouseReader):
    """The costs of one customer and provider (or all), in the chosen FOCUS cost column, in
    billing currency or converted into one currency."""

    # From this many lines in the period, by-resource groups by ResourceKey (see
    # get_cost_by_resource): on 2 cores the three queries cost what the exact text does at
    # ~200k lines (30 days of the bench's 2M-line customer: 92 vs 86 ms) and save a fifth at
    # 2M (204 vs 261 ms); at 100k lines they cost 20-35 ms more.
    keyed_min_lines = 300_000

    def __init__(
        self,
        client: Client,
        query: CostQuery,
        convert: ConversionRequest | None = None,
        today: date | None = None,
        as_of: datetime | None = None,
    ) -> None:
        super().__init__(client, as_of)
        self.query = query
        self.convert = convert
        # "Today" of a point-in-time read is the instant's UTC date: what the read said then.
        self.today = today or (as_of.date() if as_of is not None else today_utc())
        self._loads_version: Callable[[], Sequence[Sequence[Any]]] | None = None
        # The loads version each day state was read at, per providers (see get_latest_costs).
        self._versions: dict[tuple[str, ...], tuple[Any, Any]] = {}

    def prefetch_state(self) -> None:
        """Ask for the customer's loads version now, beside the read's main query: with a cached
        day state (a dashboard's repeated reads) the completeness then costs no extra wait. A
        point-in-time read uses no cached state (see _state), so it asks nothing."""
        if self.as_of is None:
            self._loads_version = self.soon(LOADS_VERSION_SQL, self._bind())

    def _scope(self) -> dict[str, Any]:
        return {
            "customer_id": self.query.customer_id,
            "provider": self.query.provider,
            "cost_metric": self.query.metric,
        }

    def _bind(self, period: Period | None = None, **extra: Any) -> dict[str, Any]:
        values: dict[str, Any] = {
            "customer_id": self.query.customer_id,
            "providers": provider_members(self.query.provider),
            "metric": self.query.column,
            **extra,
        }
        if period is not None:
            # Bound as naive UTC text: the placeholder's type carries the zone.
            values["start"] = period.start_time.replace(tzinfo=None)
            values["end"] = period.end_time.replace(tzinfo=None)
        return values

    def _converted(
        self, where: str, period: Period, values: dict[str, Any]
    ) -> tuple[dict[str, Any], Conversion | None]:
        """The values of a read with its conversion's, and the rates it will use (422 naming
        `currency` when a charge day has no usable rate)."""
        if self.convert is None:
            return values, None
        values = {**values, **self.convert.bind(period.start, period.end)}
        return values, self.convert.conversion(self.rows(RATES_CHECK_SQL[where], values))

    def data_state(self, period: Period | None = None) -> DataState:
        """Each provider's collected days, with cost and estimates from LOOKBACK_DAYS ago (or
        the period's start) on."""
        lo = self.today - timedelta(days=LOOKBACK_DAYS)
        hi = self.today + timedelta(days=1)
        if period is not None:
            lo, hi = min(lo, period.start), max(hi, period.end)
        version, self._loads_version = self._loads_version, None
        return self._state(Period(lo, hi), self._bind(), version)

    def _state(
        self,
        span: Period,
        values: dict[str, Any],
        version: Callable[[], Sequence[Sequence[Any]]] | None = None,
    ) -> DataState:
        """The day states, reused from STATES while no load of these providers happened
        (`version`: the loads version already asked for, see prefetch_state). A point-in-time
        read neither reads nor fills STATES: its states are of another instant (and one entry
        per instant asked for would push out the current ones)."""
        bound = {
            **values,
            "lo": span.start_time.replace(tzinfo=None),
            "hi": span.end_time.replace(tzinfo=None),
        }
        if self.as_of is not None:
            return DataState.of(self.rows(DAY_STATE_SQL, bound), self.today)
        [(newest_load, pointers)] = (
            version() if version is not None else self.rows(LOADS_VERSION_SQL, values)
        )
        self._versions[tuple(values["providers"])] = (newest_load, pointers)
        key = (
            values["customer_id"],
            tuple(values["providers"]),
            span,
            self.today,
            newest_load,
            pointers,
        )
        state = STATES.get(key)
        if state is None:
            state = DataState.of(self.rows(DAY_STATE_SQL, bound), self.today)
            STATES.put(key, state)
        return state.copy()

    def get_cost_metrics(
        self, period: Period, *, limit: int, after: PageKey | None = None
    ) -> CostLinesPage:
        """One page of the period's stored lines, newest day first, biggest first within a day:
        the first page, or the page after the line a cursor names."""
        per_day = [(day, int(n)) for day, n in self.rows(LINES_PER_DAY_SQL, self._bind(period))]
        total = sum(n for _, n in per_day)
        # One line more than the page: whether another page follows, without a second query.
        wanted = limit + 1 + (after.seen if after is not None else 0)
        cursor_day = after.line[0] if after is not None else None
        first = _scan_start(per_day, wanted, cursor_day, period.start)
        rows = self._page(period, first, limit, after)
        if len(rows) <= limit and first > period.start:
            # The lines changed between the two queries (a window was replaced): read the whole
            # period rather than risk a short page.
            rows = self._page(period, period.start, limit, after)
        more, rows = len(rows) > limit, rows[:limit]
        fields = list(CostLine.model_fields)
        data = [CostLine(**dict(zip(fields, row, strict=True))) for row in rows]
        cursor = None
        if more:
            last = tuple(rows[-1])
            seen = sum(1 for _ in takewhile(lambda row: tuple(row) == last, reversed(rows)))
            if after is not None and seen == len(rows) and last == after.line:
                seen += after.seen  # the whole page repeats the cursor's line
            cursor = encode_cursor(self.query, period, PageKey(last, seen))
        return CostLinesPage(
            **self._scope(),
            period=PeriodPublic.of(period),
            data=data,
            count=total,
            next_cursor=cursor,
        )

    def _page(
        self, period: Period, first: date, limit: int, after: PageKey | None
    ) -> Sequence[Sequence[Any]]:
        """limit + 1 lines of the page (after the cursor's line), reading days from `first` on."""
        scanned = Period(first, period.end)
        if after is None:
            return self.rows(METRICS_SQL, self._bind(scanned, limit=limit + 1, skip=0))
        values = self._bind(scanned, limit=limit + 1, skip=after.seen, **self._after(after))
        return self.rows(METRICS_AFTER_SQL, values)

    def _after(self, after: PageKey) -> dict[str, Any]:
        """The cursor's line as METRICS_AFTER_SQL binds it (its sort key, see METRICS_ORDER)."""
        day, provider, account, service, resource, region, category = after.line[:7]
        billed, effective, listed, contracted, currency = after.line[7:]
        metric = {"BilledCost": billed, "EffectiveCost": effective, "ListCost": listed}.get(
            self.query.column, contracted
        )

        def money(value: Decimal | None) -> tuple[int, Decimal]:
            return (1, Decimal(0)) if value is None else (0, value)

        metric_null, metric_value = money(metric)
        values = {
            "day": -(day - EPOCH).days,
            "metric_null": metric_null,
            "metric": -metric_value,
            "provider": provider,
            "account": account,
            "service": service,
            "resource": resource,
            "region": region,
            "category": category,
            "currency": currency,
            "billed": billed,
        }
        for name, value in (("effective", effective), ("list", listed), ("contracted", contracted)):
            values[f"{name}_null"], values[name] = money(value)
        bound = {f"after_{name}": values[name] for name, _ in AFTER_TYPES}
        bound["after_next_day"] = datetime.combine(day + timedelta(days=1), time.min)
        return bound

    def require_metric(self, period: Period) -> None:
        """Refuse (422 naming them) when a source in the period does not supply the metric."""
        if self.query.metric is CostMetric.billed:  # required on every line
            return
        missing = self.rows(
            UNAVAILABLE_SQL, self._bind(period, missing=f"{self.query.column}_missing")
        )
        if missing:
            raise MetricUnavailable(
                self.query.metric.value, [(str(p), str(s), int(n)) for p, s, n in missing]
            )

    def get_latest_costs(self) -> LatestCosts:
        """Per provider its own newest complete day with cost, by service and resource, and when
        it was collected; a provider whose newer days are still open says so.

        Two queries answer it: the day states pick each provider's day, then that day's lines
        are read. A window replaced between them could leave a picked day without its lines, so
        the loads version is asked again after the lines: if a load was published meanwhile,
        the read starts over (at most READ_ATTEMPTS times in all)."""
        answer = self._latest()
        for _ in range(READ_ATTEMPTS - 1):
            if self.as_of is not None:  # the instant's loads do not change
                break
            if self._versions.get(tuple(provider_members(self.query.provider))) == self._version():
                break
            answer = self._latest()
        return answer

    def _latest(self) -> LatestCosts:
        self.prefetch_state()
        state = self.data_state()
        picks = shaping.latest_days(state)
        stale = [p for p in state.providers if p not in picks]
        if stale:  # collected, but cost only before the lookback: read their whole history
            whole = Period(EARLIEST, self.today + timedelta(days=1))
            older = self._state(whole, {**self._bind(), "providers": stale})
            picks.update(shaping.latest_days(older))
            state.providers.update(older.providers)
        if not picks:
            return shaping.latest(self._scope(), state, {}, [], None)
        providers = sorted(picks)
        days = [picks[p].day for p in providers]
        span = Period(min(days), max(days) + timedelta(days=1))
        self.require_metric(span)
        values = self._bind(span, providers=providers, picked_days=days)
        values, converted = self._converted(LATEST_WHERE, span, values)
        rows = self.rows(LATEST_SQL[converted is not None], values)
        return shaping.latest(self._scope(), state, picks, rows, converted)

    def get_cost_trends(self, period: Period, group_by: Grain) -> CostTrends:
        """Cost per day, ISO week or month bucket, zero-filled, per currency; a period without
        cost is zero in each currency the customer has for the provider in any period."""
        self.prefetch_state()
        self.require_metric(period)
        values, converted = self._converted(DAILY_WHERE, period, self._bind(period))
        rows = self.rows(DAILY_SQL[converted is not None], values)
        if converted is not None:
            currencies = [converted.currency]
        elif rows:
            currencies = []
        else:
            currencies = [row[0] for row in self.rows(CURRENCIES_SQL, self._bind())]
        state = self.data_state(period)
        return trends.trends(self._scope(), period, group_by, rows, currencies, state, converted)

    def get_cost_by_resource(self, period: Period, *, limit: int) -> ResourceCosts:
        """The `limit` most expensive resources of each currency, with their share. Over
        `keyed_min_lines` lines (the day states count them) the groups are found by their
        ResourceKey (_resource_rows); below, the one exact text is cheaper than its three
        queries."""
        self.prefetch_state()
        self.require_metric(period)
        state = self.data_state(period)
        values, converted = self._converted(PERIOD_WHERE, period, self._bind(period, limit=limit))
        lines = sum(
            day.lines
            for days in state.providers.values()
            for when, day in days.days.items()
            if period.start <= when < period.end
        )
        if lines >= self.keyed_min_lines:
            rows = self._resource_rows(values, converted is not None, limit)
        else:
            rows = self.rows(BY_RESOURCE_SQL[converted is not None], values)
        return shaping.by_resource(self._scope(), period, rows, state, converted)

    def _resource_rows(
        self, values: dict[str, Any], converted: bool, limit: int
    ) -> Sequence[Sequence[Any]]:
        """BY_RESOURCE_SQL's rows, from BY_RESOURCE_TOP_SQL (the groups by their 64-bit key) and
        BY_RESOURCE_NAMES_SQL (what the returned keys are). Two queries may see two states of
        the customer's loads, so the loads version read before the first (with the day states)
        is asked again after the second, and the read starts over when a load was published
        between them (at most READ_ATTEMPTS times). The exact text answers instead when the cut
        at `limit` falls between equal amounts, when two groups share a key, past NAMED_MAX
        groups, or after the last attempt."""
        before = self._versions.get(tuple(values["providers"])) if self.as_of is None else None
        for _ in range(READ_ATTEMPTS):
            top = self.rows(BY_RESOURCE_TOP_SQL[converted], {**values, "limit": limit + 1})
            kept = _within_limit(top, limit)
            if kept is None or len(kept) > NAMED_MAX:  # equal amounts at the cut, two keys
                break  # mixed into one group, or too many groups to name
            names: dict[tuple[int, str], list[Sequence[Any]]] = {}
            keys = sorted({row[2] for row in kept})
            for first in range(0, len(keys), NAMES_CHUNK):
                chunk = {**values, "keys": keys[first : first + NAMES_CHUNK]}
                for row in self.rows(BY_RESOURCE_NAMES_SQL[converted], chunk):
                    names.setdefault((row[0], row[3]), []).append(row)
            after = self._version()
            if after != before:
                before = after  # a load was published meanwhile: both queries again
                continue
            if any(len(names.get((row[2], row[1]), ())) != 1 for row in kept):
                break  # two resources share a key (or the lines changed): the strings decide
            return _resource_result(kept, names)
        return self.rows(BY_RESOURCE_SQL[converted], values)

    def _version(self) -> tuple[Any, ...] | None:
        """The customer's loads version for the query's providers; None for a point-in-time read,
        whose loads do not change."""
        if self.as_of is not None:
            return None
        [version] = self.rows(LOADS_VERSION_SQL, self._bind())
        return tuple(version)

    def get_cost_by_type(self, period: Period) -> TypeCosts:
        """Cost per FOCUS service category with its services, per currency."""
        self.prefetch_state()
        self.require_metric(period)
        values, converted = self._converted(DAILY_WHERE, period, self._bind(period))
        rows = self.rows(BY_TYPE_SQL[converted is not None], values)
        return shaping.by_type(self._scope(), period, rows, self.data_state(period), converted)

    def get_total_cost(self, period: Period) -> TotalCost:
        """The period's total per currency and its number of lines."""
        self.prefetch_state()
        self.require_metric(period)
        values, converted = self._converted(DAILY_WHERE, period, self._bind(period))
        rows = self.rows(TOTAL_SQL[converted is not None], values)
        return shaping.total(self._scope(), period, rows, self.data_state(period), converted)
