"""How complete each provider's data is, day by day, from the warehouse alone: which days were
collected and when (`cost_loads`), which have cost and estimated lines (`cost_daily_current`,
the lines' daily sums behind the same pointers).

A day D is complete for a provider when every billing account's current load of D was collected
after D ended (UTC), and either the provider already has cost on a later day (it has moved on)
or that collection came at least a full day after D ended (providers publish a day within 24 h,
so a quiet day is not held open forever). The provider's last complete day is the newest such
day; the days after it that were collected, today and later days are open.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from typing import Any

from cost_api.control.runs import CheckResult
from cost_api.schemas.costs import CheckPublic, ProviderCompleteness

# Cost lines are read for this many days back (and the answer's period): enough to hold every
# provider's newest days, cheap next to a read of the whole history.
LOOKBACK_DAYS = 45
# Dagster's check execution statuses with a verdict (EXECUTION_FAILED: the check itself broke).
FINISHED_CHECK = ("SUCCEEDED", "FAILED", "EXECUTION_FAILED")

DAY_STATE_SQL = """
SELECT loads.provider, loads.day, loads.collected_first, loads.collected_last,
       costs.lines, costs.estimated
FROM (
    SELECT provider, charge_date AS day, min(collected) AS collected_first,
           max(collected) AS collected_last
    FROM (
        SELECT provider, BillingAccountId, charge_date, max(loaded_at) AS collected
        FROM cost_loads
        WHERE customer_id = {customer_id:String} AND provider IN {providers:Array(String)}
        GROUP BY provider, BillingAccountId, charge_date
    )
    GROUP BY provider, day
) AS loads
LEFT JOIN (
    SELECT provider, charge_date AS day, sum(lines) AS lines, max(estimated) AS estimated
    FROM cost_daily_current(customer_id = {customer_id:String})
    WHERE provider IN {providers:Array(String)}
      AND charge_date >= toDate({lo:DateTime('UTC')}) AND charge_date < toDate({hi:DateTime('UTC')})
    GROUP BY provider, day
) AS costs ON costs.provider = loads.provider AND costs.day = loads.day
ORDER BY loads.provider, loads.day
"""


# What the day states depend on besides the date: the customer's loads. A window replace always
# adds pointers with a newer loaded_at, so (newest loaded_at, pointer rows) changes with every
# load, and a cached state is reused only while it holds.
LOADS_VERSION_SQL = """
SELECT max(loaded_at), count()
FROM cost_loads
WHERE customer_id = {customer_id:String} AND provider IN {providers:Array(String)}
"""


class StateCache:
    """Day states per (customer, providers, span, today, loads version): a dashboard asking the
    same reads again pays one scan of cost_loads' pointers, not the period's lines."""

    def __init__(self, size: int = 512) -> None:
        self._size = size
        self._states: dict[tuple[Any, ...], DataState] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> DataState | None:
        with self._lock:
            return self._states.get(key)

    def put(self, key: tuple[Any, ...], state: DataState) -> None:
        with self._lock:
            if len(self._states) >= self._size:
                self._states.pop(next(iter(self._states)))
            self._states[key] = state


def midnight(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


@dataclass(frozen=True)
class DayState:
    collected_first: datetime  # the earliest of the accounts' latest collections of the day
    collected_last: datetime
    lines: int
    estimated: bool


@dataclass
class ProviderDays:
    """One provider's collected days of one customer (cost counts only from `lo` on).

    Built once from the warehouse's rows and then only read (states are cached and shared
    between answers), so what is derived from all the days is computed once per state, not per
    read: a dashboard's reads pay for the period's days, not the history's."""

    provider: str
    days: dict[date, DayState] = field(default_factory=dict)

    @cached_property
    def newest_cost_day(self) -> date | None:
        return max((d for d, s in self.days.items() if s.lines), default=None)

    @cached_property
    def last_collected_at(self) -> datetime | None:
        return max((s.collected_last for s in self.days.values()), default=None)

    def complete(self, day: date, newest_cost_day: date | None) -> bool:
        state = self.days[day]
        after_end = state.collected_first >= midnight(day + timedelta(days=1))
        moved_on = newest_cost_day is not None and day < newest_cost_day
        settled = state.collected_first >= midnight(day + timedelta(days=2))
        return after_end and (moved_on or settled)

    @cached_property
    def last_complete_day(self) -> date | None:
        newest = self.newest_cost_day
        return max((d for d in self.days if self.complete(d, newest)), default=None)

    def is_open(self, day: date, today: date, last_complete: date | None) -> bool:
        if day >= today:
            return True
        return day in self.days and (last_complete is None or day > last_complete)


@dataclass
class DataState:
    """Every provider of an answer with its days, and the checks Dagster reported for them."""

    providers: dict[str, ProviderDays]
    today: date

    @classmethod
    def of(cls, rows: Iterable[Sequence[Any]], today: date) -> DataState:
        providers: dict[str, ProviderDays] = {}
        for provider, day, first, last, lines, estimated in rows:
            days = providers.setdefault(provider, ProviderDays(provider)).days
            days[day] = DayState(utc(first), utc(last), int(lines or 0), bool(estimated))
        return cls(providers, today)

    def copy(self) -> DataState:
        """Another state over the same (unchanged) provider days, free to add providers to."""
        return DataState(dict(self.providers), self.today)

    def open_days(self, days: Iterable[date]) -> set[date]:
        """The days not complete for some provider (today and later days always)."""
        lasts = {p: days_.last_complete_day for p, days_ in self.providers.items()}
        out = set()
        for day in days:
            if day >= self.today or any(
                p.is_open(day, self.today, lasts[name]) for name, p in self.providers.items()
            ):
                out.add(day)
        return out

    def estimated_days(self, days: Iterable[date]) -> set[date]:
        return {
            day
            for day in days
            if any(p.days.get(day) and p.days[day].estimated for p in self.providers.values())
        }

    def completeness(
        self, days: Sequence[date], checks: Mapping[str, list[CheckResult]] | None = None
    ) -> list[ProviderCompleteness]:
        """One entry per provider that was ever collected for the customer, over `days`."""
        out = []
        for name, provider in sorted(self.providers.items()):
            last = provider.last_complete_day
            out.append(
                ProviderCompleteness(
                    provider=name,
                    last_complete_day=last,
                    last_collected_at=provider.last_collected_at,
                    estimated_days=sum(
                        1 for d in days if provider.days.get(d) and provider.days[d].estimated
                    ),
                    open_days=sum(1 for d in days if provider.is_open(d, self.today, last)),
                    checks_passed=None,
                    checks=None,
                )
            )
        if checks is not None:
            attach_checks(out, checks)
        return out


def attach_checks(
    entries: Iterable[ProviderCompleteness], checks: Mapping[str, list[CheckResult]] | None
) -> None:
    """Fill each entry's checks from Dagster's answer per provider (None: Dagster not asked in
    time, so the entries keep null). checks_passed is null until some check has finished."""
    if checks is None:
        return
    for entry in entries:
        results = checks.get(entry.provider, [])
        entry.checks = [
            CheckPublic(
                name=c.name,
                passed=c.passed,
                status=c.status,
                severity=c.severity,
                evaluated_at=c.at,
            )
            for c in results
        ]
        finished = [c for c in results if c.status in FINISHED_CHECK]
        entry.checks_passed = all(c.passed for c in finished) if finished else None


STATES = StateCache()
