"""Query parameters every cost read shares: customer, provider, period and cost metric."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from fastapi import Depends, Path, Query, Request
from fastapi.dependencies.models import Dependant

from cost_api.dependencies import CustomerIdDep, SettingsDep
from cost_api.errors import InvalidParameter
from cost_api.settings import ApiSettings
from cost_pipelines.providers import PROVIDERS, ProviderKey

DEFAULT_DAYS = 30
MAX_LIMIT = 1000
# ClickHouse DateTime covers 1970-01-01 .. 2106-02-07; dates outside cannot hold costs.
EARLIEST = date(1970, 1, 1)
LATEST = date(2106, 1, 1)


# A cloud, or `all` of them: the words come from cost_pipelines.providers, so a provider added
# there is a path value here too.
ProviderChoice = Literal[ProviderKey, "all"]


def provider_members(choice: ProviderChoice) -> list[ProviderKey]:
    """The stored provider values a choice reads."""
    return list(PROVIDERS) if choice == "all" else [choice]


class CostMetric(StrEnum):
    """Which FOCUS cost column the amounts come from."""

    billed = "billed"
    effective = "effective"
    list = "list"
    contracted = "contracted"


# The only column names a request can select: bound as {metric:Identifier}, never formatted in.
METRIC_COLUMNS: dict[CostMetric, str] = {
    CostMetric.billed: "BilledCost",
    CostMetric.effective: "EffectiveCost",
    CostMetric.list: "ListCost",
    CostMetric.contracted: "ContractedCost",
}


def invalid(parameter: str, message: str, value: Any = None) -> InvalidParameter:
    """A 422 shaped like FastAPI's own validation errors, naming the query parameter."""
    return InvalidParameter(parameter, message, value)


@dataclass(frozen=True)
class Period:
    """Whole UTC days [start, end): `end` is exclusive, like FOCUS and the collectors' windows."""

    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    @property
    def start_time(self) -> datetime:
        return datetime.combine(self.start, datetime.min.time(), UTC)

    @property
    def end_time(self) -> datetime:
        return datetime.combine(self.end, datetime.min.time(), UTC)


def check_day(name: str, value: date | None, location: str = "query") -> None:
    """The one date range rule of reads and triggers: a day the warehouse's time type holds."""
    if value is not None and not EARLIEST <= value <= LATEST:
        raise InvalidParameter(
            name, f"date must be between {EARLIEST} and {LATEST}", str(value), location
        )


def today_utc() -> date:
    return datetime.now(UTC).date()


def resolve_period(
    days: int | None,
    start: date | None,
    end: date | None,
    max_days: int,
    today: date | None = None,
) -> Period:
    """The period a request asks for; 422 naming the parameter when it makes no sense.

    No dates: the last `days` days up to and including today (UTC). `start` only: from `start`
    through today, or `days` days from `start`. `end` only: the `days` days before `end`.
    Both dates: exactly [start, end), and `days` must not be given too. At most `max_days`.
    `today` is the day "today" means: the UTC date of `as_of` for a point-in-time read.
    """
    check_day("start", start)
    check_day("end", end)
    tomorrow = (today or today_utc()) + timedelta(days=1)
    first: date
    after: date
    if start is not None and end is not None:
        if days is not None:
            raise invalid("days", "give either days or start and end, not all three", days)
        first, after = start, end
    elif start is not None:
        first = start
        after = start + timedelta(days=days) if days else max(tomorrow, start + timedelta(days=1))
    else:
        after = end if end is not None else tomorrow
        first = after - timedelta(days=days or DEFAULT_DAYS)
    if after <= first:
        raise invalid(
            "end", f"end ({after}) must be after start ({first}); end is exclusive", str(after)
        )
    if (after - first).days > max_days:
        raise invalid("start", f"the period may span at most {max_days} days", str(first))
    if first < EARLIEST:
        raise invalid("end", f"the period would start before {EARLIEST}", str(after))
    if after > LATEST:
        raise invalid("days", f"the period would end after {LATEST}", days)
    return Period(first, after)


def parse_day(name: str, text: str | None) -> date | None:
    """A YYYY-MM-DD date, strictly: no timestamps, no other formats."""
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise invalid(name, "not a calendar date (YYYY-MM-DD)", text) from None


DAY_FORMAT = {"pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", "max_length": 10}


AS_OF_DESCRIPTION = (
    "An instant, ISO 8601 with its zone (2026-11-03T09:00:00Z, 2026-11-03T10:00:00+01:00): "
    "answer exactly what this read answered then, from the loads that were current at that "
    "instant (`days` and today are counted from its UTC date; asset check results are not "
    "reconstructed and are null). With `cursor`, give the page's same as_of. Superseded loads "
    "are kept for COST_RETENTION_DAYS (90 unless configured): an instant before the earliest "
    "one kept is a 422 naming it."
)


def parse_instant(name: str, text: str | None) -> datetime | None:
    """An ISO 8601 instant with its zone, in UTC; 422 naming the parameter otherwise, and for an
    instant in the future (what a read will answer then is not known)."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
        if len(text) <= len("2026-11-03"):  # a day is not an instant
            raise ValueError(text)
    except ValueError:
        raise invalid(name, "not an ISO 8601 instant (2026-11-03T09:00:00Z)", text) from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise invalid(name, "the instant needs its zone: Z or an offset like +01:00", text)
    value = value.astimezone(UTC)
    if value.date() < EARLIEST:
        raise invalid(name, f"the instant must be after {EARLIEST}", text)
    if value > datetime.now(UTC):
        raise invalid(name, "the instant is in the future", text)
    return value


async def as_of_param(
    as_of: Annotated[str | None, Query(max_length=40, description=AS_OF_DESCRIPTION)] = None,
) -> datetime | None:
    return parse_instant("as_of", as_of)


AsOfDep = Annotated[datetime | None, Depends(as_of_param)]


DaysQuery = Annotated[
    int | None,
    Query(
        ge=1,
        description=f"The last N days up to and including today (UTC); default {DEFAULT_DAYS}. "
        "With `start` only: N days from `start`; with `end` only: the N days before `end`. "
        "At most MAX_PERIOD_DAYS (400 unless configured).",
    ),
]
StartQuery = Annotated[
    str | None,
    Query(**DAY_FORMAT, description="First day of the period (UTC, inclusive), YYYY-MM-DD"),
]
EndQuery = Annotated[
    str | None,
    Query(
        **DAY_FORMAT,
        description="Day after the period (UTC, exclusive), YYYY-MM-DD: January is "
        "start=2026-01-01&end=2026-02-01",
    ),
]


async def period(
    settings: SettingsDep,
    days: DaysQuery = None,
    start: StartQuery = None,
    end: EndQuery = None,
) -> Period:
    return _period(settings, days, start, end, None)


def _period(
    settings: ApiSettings,
    days: int | None,
    start: str | None,
    end: str | None,
    as_of: datetime | None,
) -> Period:
    max_days = settings.max_period_days
    if days is not None and days > max_days:
        raise invalid("days", f"at most {max_days} days", days)
    today = as_of.date() if as_of is not None else None
    return resolve_period(days, parse_day("start", start), parse_day("end", end), max_days, today)


async def period_as_of(
    settings: SettingsDep,
    instant: AsOfDep,
    days: DaysQuery = None,
    start: StartQuery = None,
    end: EndQuery = None,
) -> Period:
    """The period of a read that also takes `as_of`: "today" is the instant's UTC date."""
    return _period(settings, days, start, end, instant)


@dataclass(frozen=True)
class CostQuery:
    """What every cost read is about: one customer, one provider or all, and a cost column."""

    customer_id: str
    provider: ProviderChoice
    metric: CostMetric

    @property
    def column(self) -> str:
        return METRIC_COLUMNS[self.metric]


def _query_names(dependant: Dependant) -> set[str]:
    names = {field.alias for field in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def reject_unknown_query(request: Request) -> None:
    """A misspelt parameter (`cost-metric=list`) would silently give other numbers: refuse it."""
    dependant = getattr(request.scope.get("route"), "dependant", None)
    if dependant is None:
        return
    unknown = sorted(set(request.query_params) - _query_names(dependant))
    if unknown:
        raise invalid(unknown[0], "unknown query parameter", request.query_params[unknown[0]])


async def cost_query(
    request: Request,
    customer_id: CustomerIdDep,
    provider: Annotated[
        ProviderChoice, Path(description=f"{', '.join(PROVIDERS)}, or all of them")
    ],
    cost_metric: Annotated[
        CostMetric,
        Query(
            description="FOCUS cost column: billed (BilledCost, the invoice), effective "
            "(EffectiveCost, amortized), list (ListCost) or contracted (ContractedCost)"
        ),
    ] = CostMetric.billed,
) -> CostQuery:
    reject_unknown_query(request)
    return CostQuery(customer_id, provider, cost_metric)


CostQueryDep = Annotated[CostQuery, Depends(cost_query)]
PeriodDep = Annotated[Period, Depends(period)]
# The period of a read that takes `as_of` (every cost read; not the analyses' results).
PeriodAsOfDep = Annotated[Period, Depends(period_as_of)]
Limit = Annotated[
    int, Query(ge=1, le=MAX_LIMIT, description=f"How many items to return (1..{MAX_LIMIT})")
]
