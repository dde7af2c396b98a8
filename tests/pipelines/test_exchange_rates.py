"""exchange_rates against a local server answering like the ECB's reference rates files: what is
stored equals what was published to the last digit, each run downloads the smallest file that
leaves no day out, and bad files or HTTP errors fail the run with the table unchanged."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from dagster import (
    DagsterInstance,
    ExecuteInProcessResult,
    RunRequest,
    SkipReason,
    build_sensor_context,
    materialize,
)

from cost_local.sandbox.ecb import DayRates, EcbReferenceRates, envelope, generated_rates
from cost_pipelines.assets.exchange_rates import exchange_rates, exchange_rates_first_load
from cost_pipelines.resources.clickhouse import ClickHouseResource
from cost_pipelines.resources.ecb import (
    EcbRatesResource,
    Feed,
    RatesRejected,
    is_publication_day,
    parse_reference_rates,
)
from tests.pipelines.rest_helpers import failure, metadata

FRIDAY, MONDAY = date(2026, 3, 20), date(2026, 3, 23)


class Published:
    """What the local ECB serves: the days it has published so far (tests add days)."""

    def __init__(self, start: date, end: date) -> None:
        self.days: dict[date, DayRates] = dict(generated_rates(start, end))

    def extend_to(self, end: date) -> None:
        self.days.update(generated_rates(max(self.days), end))


@pytest.fixture
def published() -> Published:
    return Published(date(2026, 1, 2), FRIDAY)


@pytest.fixture
def ecb(published: Published) -> Iterator[EcbReferenceRates]:
    with EcbReferenceRates(lambda: published.days) as server:
        yield server  # type: ignore[misc]


def run(
    warehouse: ClickHouseResource, ecb: EcbReferenceRates, instance: DagsterInstance | None = None
) -> ExecuteInProcessResult:
    resource = EcbRatesResource(url=ecb.url, retry_attempts=2, retry_base_delay_s=0.01)
    return materialize(
        [exchange_rates],
        resources={"warehouse": warehouse, "ecb": resource},
        instance=instance,
        raise_on_error=False,
    )


def files_asked(ecb: EcbReferenceRates) -> list[str]:
    names = [request.path.rpartition("/")[2] for request in ecb.requests]
    ecb.requests.clear()
    return names


def stored(warehouse: ClickHouseResource) -> dict[tuple[date, str], Decimal]:
    rows = (
        warehouse.get_client()
        .query(
            "SELECT rate_date, currency, argMax(rate, loaded_at) FROM exchange_rates "
            "WHERE base = 'EUR' GROUP BY rate_date, currency"
        )
        .result_rows
    )
    return {(day, currency): rate for day, currency, rate in rows}


def as_published(days: dict[date, DayRates]) -> dict[tuple[date, str], Decimal]:
    return {(d, c): Decimal(r) for d, rates in days.items() for c, r in rates.items()}


def test_the_first_run_loads_the_full_history_exactly_as_published(
    warehouse_resource: ClickHouseResource, ecb: EcbReferenceRates, published: Published
) -> None:
    result = run(warehouse_resource, ecb)
    assert result.success
    assert files_asked(ecb) == [Feed.full_history.value]
    assert stored(warehouse_resource) == as_published(published.days)
    days = {day for day, _ in stored(warehouse_resource)}
    assert date(2026, 3, 14) not in days and date(2026, 3, 15) not in days  # a weekend
    facts = metadata(result)
    assert facts["days_loaded"] == len(published.days)
    assert facts["currencies_loaded"] == 8
    assert facts["newest_rate_date"] == FRIDAY.isoformat()


def test_a_later_run_across_a_weekend_downloads_only_the_daily_file(
    warehouse_resource: ClickHouseResource, ecb: EcbReferenceRates, published: Published
) -> None:
    assert run(warehouse_resource, ecb).success
    files_asked(ecb)
    published.extend_to(MONDAY)
    result = run(warehouse_resource, ecb)
    assert result.success
    assert files_asked(ecb) == [Feed.daily.value]
    assert stored(warehouse_resource) == as_published(published.days)
    assert metadata(result)["days_loaded"] == 1


def test_a_missed_publication_day_is_filled_from_the_90_day_file(
    warehouse_resource: ClickHouseResource, ecb: EcbReferenceRates, published: Published
) -> None:
    assert run(warehouse_resource, ecb).success
    files_asked(ecb)
    published.extend_to(date(2026, 3, 26))  # Monday to Wednesday were not collected
    result = run(warehouse_resource, ecb)
    assert result.success
    assert files_asked(ecb) == [Feed.daily.value, Feed.last_90_days.value]
    assert stored(warehouse_resource) == as_published(published.days)


def test_cost_data_older_than_the_stored_rates_brings_the_full_history(
    warehouse_resource: ClickHouseResource, ecb: EcbReferenceRates, published: Published
) -> None:
    recent = {day: rates for day, rates in published.days.items() if day >= date(2026, 3, 1)}
    all_days, published.days = published.days, recent
    assert run(warehouse_resource, ecb).success
    warehouse_resource.get_client().insert(
        "costs",
        [["acme", "aws", datetime(2026, 1, 5, tzinfo=UTC), uuid.uuid4()]],
        column_names=["customer_id", "provider", "ChargePeriodStart", "load_id"],
    )
    published.days = all_days
    files_asked(ecb)
    assert run(warehouse_resource, ecb).success
    assert files_asked(ecb) == [Feed.full_history.value]
    assert min(day for day, _ in stored(warehouse_resource)) == date(2026, 1, 2)


def test_a_malformed_rate_fails_the_run_naming_it_and_stores_nothing_of_the_file(
    warehouse_resource: ClickHouseResource, ecb: EcbReferenceRates, published: Published
) -> None:
    assert run(warehouse_resource, ecb).success
    before = stored(warehouse_resource)
    published.extend_to(MONDAY)
    published.days[MONDAY] = {**published.days[MONDAY], "USD": "1,0842"}
    result = run(warehouse_resource, ecb)
    assert not result.success
    assert "eurofxref-daily.xml: 2026-03-23 USD: rate='1,0842' is not a positive decimal" in (
        failure(result)
    )
    assert stored(warehouse_resource) == before


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (404, "ECB reference rates: eurofxref-hist.xml was refused (HTTP 404"),
        (503, "eurofxref-hist.xml: gave up after 2 attempts (HTTP 503)"),
    ],
)
def test_an_http_error_fails_the_run_naming_the_file_and_stores_nothing(
    warehouse_resource: ClickHouseResource, ecb: EcbReferenceRates, status: int, message: str
) -> None:
    ecb.failures[Feed.full_history.value] = status
    result = run(warehouse_resource, ecb)
    assert not result.success
    assert message in failure(result)
    assert stored(warehouse_resource) == {}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b"<html>maintenance</html>", "not an ECB reference rates document"),
        (b"<gesmes:Envelope", "not well-formed XML"),
        (envelope({}), "the file holds no day of rates"),
        (envelope({FRIDAY: {}}), "2026-03-20 holds no rate"),
        (envelope({FRIDAY: {"USD": ""}}), "2026-03-20 USD: rate='' is not a positive decimal"),
        (envelope({FRIDAY: {"USD": "0"}}), "2026-03-20 USD: rate='0' is not a positive decimal"),
        (envelope({FRIDAY: {"usd": "1.1"}}), "currency='usd' is not a currency code"),
        (
            envelope({FRIDAY: {"USD": "1.0000000000001"}}),  # 13 decimals do not fit exactly
            "rate='1.0000000000001' is not a positive decimal",
        ),
    ],
)
def test_a_file_that_is_not_the_ecb_format_is_rejected_whole(document: bytes, message: str) -> None:
    with pytest.raises(RatesRejected) as raised:
        parse_reference_rates(document, "eurofxref-daily.xml")
    assert str(raised.value).startswith("eurofxref-daily.xml: ")
    assert message in str(raised.value)


def test_a_missing_rate_attribute_and_a_currency_listed_twice_are_rejected() -> None:
    text = envelope({FRIDAY: {"USD": "1.1"}}).decode()
    no_rate = text.replace(" rate='1.1'", "")
    with pytest.raises(RatesRejected, match="2026-03-20 USD: rate=None"):
        parse_reference_rates(no_rate.encode(), "eurofxref-daily.xml")
    twice = text.replace(
        "<Cube currency='USD' rate='1.1'/>", "<Cube currency='USD' rate='1.1'/>" * 2
    )
    with pytest.raises(RatesRejected, match="2026-03-20 USD is listed twice"):
        parse_reference_rates(twice.encode(), "eurofxref-daily.xml")


def test_rates_are_read_exactly_as_written() -> None:
    rates = parse_reference_rates(envelope({FRIDAY: {"IDR": "17487.21", "GBP": "0.84638"}}), "f")
    assert rates == {FRIDAY: {"IDR": Decimal("17487.21"), "GBP": Decimal("0.84638")}}


def test_the_ecb_publishes_on_target_working_days_only() -> None:
    closed = [
        date(2026, 1, 1),  # New Year's Day
        date(2026, 4, 3),  # Good Friday
        date(2026, 4, 6),  # Easter Monday
        date(2026, 5, 1),
        date(2026, 12, 25),
        date(2026, 12, 26),
        date(2026, 3, 21),  # a Saturday
        date(2025, 4, 18),  # Good Friday 2025
    ]
    assert not any(is_publication_day(day) for day in closed)
    assert all(is_publication_day(day) for day in (date(2026, 4, 2), date(2026, 4, 7), FRIDAY))


def test_the_first_load_sensor_asks_for_one_run_until_the_rates_were_collected(
    warehouse_resource: ClickHouseResource, ecb: EcbReferenceRates
) -> None:
    with DagsterInstance.ephemeral() as instance:
        asked = exchange_rates_first_load(build_sensor_context(instance=instance))
        assert isinstance(asked, RunRequest)
        assert run(warehouse_resource, ecb, instance).success
        assert isinstance(
            exchange_rates_first_load(build_sensor_context(instance=instance)), SkipReason
        )
