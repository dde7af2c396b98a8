"""The European Central Bank's euro foreign exchange reference rates as a Dagster resource: the
three XML files the ECB publishes (the latest day, the last 90 days, the full history since
1999), read with exact decimals, and the TARGET calendar of the days it publishes on.

The ECB's format (https://www.ecb.europa.eu/stats/eurofxref/eurofxref-daily.xml and
eurofxref-hist-90d.xml / eurofxref-hist.xml beside it): a `gesmes:Envelope` holding one `Cube`,
which holds one `Cube time='YYYY-MM-DD'` per published day, each holding
`Cube currency='USD' rate='1.0705'` elements: `rate` units of the currency buy one euro. The
rates are published around 16:00 CET on TARGET working days: never on weekends, New Year's Day,
Good Friday, Easter Monday, 1 May, 25 and 26 December.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum

from cost_pipelines.resources.rest import RestResource
from cost_pipelines.resources.retry import CollectionFailure

ECB_URL = "https://www.ecb.europa.eu/stats/eurofxref"
URL_ENV = "EXCHANGE_RATES_URL"
BASE = "EUR"
FIRST_PUBLISHED = date(1999, 1, 4)  # the first day of the series
GESMES_NS = "http://www.gesmes.org/xml/2002-08-01"
EUROFXREF_NS = "http://www.ecb.int/vocabulary/2002-08-01/eurofxref"
_CUBE = f"{{{EUROFXREF_NS}}}Cube"
_CURRENCY = re.compile(r"^[A-Z]{3}$")
# Plain decimal notation as the ECB writes it; Decimal(38, 12) holds 26 integer digits, 12 more.
_RATE = re.compile(r"^[0-9]{1,26}(\.[0-9]{1,12})?$")


class Feed(StrEnum):
    """The ECB's XML files of reference rates, by how far back they go."""

    daily = "eurofxref-daily.xml"
    last_90_days = "eurofxref-hist-90d.xml"
    full_history = "eurofxref-hist.xml"


class RatesRejected(CollectionFailure):
    """A reference rates file that is not what the ECB documents; nothing of it is stored."""


Rates = dict[date, dict[str, Decimal]]


def parse_reference_rates(document: bytes, feed: str) -> Rates:
    """Every day's rates of one ECB file, exactly as written (Decimals parsed from the text).
    Anything the ECB's format does not allow fails the whole file, naming what and where."""
    try:
        root = ET.fromstring(document)
    except ET.ParseError as exc:
        raise RatesRejected(f"{feed}: not well-formed XML ({exc})") from None
    if root.tag != f"{{{GESMES_NS}}}Envelope":
        raise RatesRejected(f"{feed}: not an ECB reference rates document (root <{root.tag}>)")
    outer = root.find(_CUBE)
    if outer is None:
        raise RatesRejected(f"{feed}: the envelope holds no <Cube>")
    rates: Rates = {}
    for day_cube in outer.findall(_CUBE):
        day = _day(day_cube.get("time"), feed)
        if day in rates:
            raise RatesRejected(f"{feed}: {day} is listed twice")
        rates[day] = _day_rates(day_cube.findall(_CUBE), day, feed)
    if not rates:
        raise RatesRejected(f"{feed}: the file holds no day of rates")
    return rates


def _day(text: str | None, feed: str) -> date:
    try:
        if text is None or len(text) != 10:
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise RatesRejected(f"{feed}: Cube time={text!r} is not a date (YYYY-MM-DD)") from None


def _day_rates(cubes: Iterable[ET.Element], day: date, feed: str) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for cube in cubes:
        currency, text = cube.get("currency"), cube.get("rate")
        where = f"{feed}: {day} {currency}"
        if currency is None or not _CURRENCY.match(currency) or currency == BASE:
            raise RatesRejected(f"{feed}: {day}: currency={currency!r} is not a currency code")
        if currency in out:
            raise RatesRejected(f"{where} is listed twice")
        if text is None or not _RATE.match(text) or Decimal(text) == 0:
            raise RatesRejected(f"{where}: rate={text!r} is not a positive decimal number")
        out[currency] = Decimal(text)
    if not out:
        raise RatesRejected(f"{feed}: {day} holds no rate")
    return out


def easter_sunday(year: int) -> date:
    """Easter Sunday of the Gregorian calendar (the anonymous algorithm, Meeus/Jones/Butcher)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    g = (b - (b + 8) // 25 + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    weekday_shift = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * weekday_shift) // 451
    month, day = divmod(h + weekday_shift - 7 * m + 114, 31)
    return date(year, month, day + 1)


def is_publication_day(day: date) -> bool:
    """A TARGET working day: the ECB publishes reference rates on it (and only on it)."""
    if day.weekday() >= 5 or (day.month, day.day) in ((1, 1), (5, 1), (12, 25), (12, 26)):
        return False
    easter = easter_sunday(day.year)
    return day not in (easter - timedelta(days=2), easter + timedelta(days=1))


def publication_days_between(after: date, before: date) -> list[date]:
    """The days the ECB publishes on strictly between `after` and `before`."""
    days = (after + timedelta(days=n) for n in range(1, (before - after).days))
    return [day for day in days if is_publication_day(day)]


@dataclass(frozen=True)
class RatesFile:
    """One downloaded file, parsed."""

    feed: Feed
    url: str
    rates: Rates


class EcbRatesResource(RestResource):
    """Downloads the ECB's reference rates files from `url` (else EXCHANGE_RATES_URL, else the
    ECB's own address), with the retries every REST collector shares."""

    url: str | None = None

    def base_url(self) -> str:
        return (self.url or os.environ.get(URL_ENV) or ECB_URL).rstrip("/")

    def fetch(self, feed: Feed) -> RatesFile:
        """One file, parsed in full before anything is returned."""
        url = f"{self.base_url()}/{feed.value}"
        with self.open_api("reference rates", "ECB reference rates") as api:
            response = api.request("GET", url, feed.value, authenticated=False)
        return RatesFile(feed, url, parse_reference_rates(response.content, feed.value))
