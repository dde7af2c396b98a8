"""The European Central Bank's reference rates files, served on 127.0.0.1 as the ECB serves them
(`/stats/eurofxref/eurofxref-daily.xml`, `eurofxref-hist-90d.xml`, `eurofxref-hist.xml`: a
gesmes:Envelope with one Cube per publication day, newest first), from deterministic rates.

The rates wander around real levels (USD ~1.08 per euro, GBP ~0.85, JPY ~160 ...) with the
ECB's usual number of decimals; the same day always has the same rate, whenever it is asked."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from cost_local.sandbox.simulator import Request, Response, Simulator
from cost_pipelines.resources.ecb import EUROFXREF_NS, GESMES_NS, Feed, is_publication_day

PATH = "/stats/eurofxref"
# currency: (level, decimals as the ECB writes them)
LEVELS: dict[str, tuple[str, int]] = {
    "USD": ("1.0850", 4),
    "GBP": ("0.85200", 5),
    "JPY": ("161.50", 2),
    "CHF": ("0.9480", 4),
    "SEK": ("11.3200", 4),
    "CAD": ("1.4750", 4),
    "AUD": ("1.6300", 4),
    "INR": ("90.1500", 4),
}
HISTORY_DAYS = 450  # more than the demo's bills go back
DAYS_IN_90D_FILE = 90  # calendar days back from the newest day

# What one publication day holds: currency -> rate as text (a test may put anything there).
DayRates = Mapping[str, str]


def reference_rate(currency: str, day: date, seed: int = 7) -> Decimal:
    """The sandbox's rate of `currency` on `day`: a yearly swing of 4% and a daily wobble."""
    level, decimals = LEVELS[currency]
    digest = hashlib.sha256(f"{seed}:{currency}:{day.isoformat()}".encode()).digest()
    wobble = (int.from_bytes(digest[:4], "big") / 2**32 - 0.5) * 0.006
    swing = 0.04 * math.sin(2 * math.pi * day.toordinal() / 365.25 + len(currency))
    quantum = Decimal(1).scaleb(-decimals)
    return (Decimal(level) * Decimal(repr(1 + swing + wobble))).quantize(quantum)


def generated_rates(start: date, end: date, seed: int = 7) -> dict[date, DayRates]:
    """Every publication day in [start, end] with the rates of all LEVELS currencies."""
    days = (start + timedelta(days=n) for n in range((end - start).days + 1))
    return {
        day: {c: str(reference_rate(c, day, seed)) for c in LEVELS}
        for day in days
        if is_publication_day(day)
    }


def envelope(days: Mapping[date, DayRates]) -> bytes:
    """The ECB's XML for these days, newest first, as its files are written."""
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<gesmes:Envelope xmlns:gesmes="{GESMES_NS}" xmlns="{EUROFXREF_NS}">',
        "\t<gesmes:subject>Reference rates</gesmes:subject>",
        "\t<gesmes:Sender>",
        "\t\t<gesmes:name>European Central Bank</gesmes:name>",
        "\t</gesmes:Sender>",
        "\t<Cube>",
    ]
    for day in sorted(days, reverse=True):
        lines.append(f"\t\t<Cube time='{day.isoformat()}'>")
        lines += [f"\t\t\t<Cube currency='{c}' rate='{r}'/>" for c, r in days[day].items()]
        lines.append("\t\t</Cube>")
    lines += ["\t</Cube>", "</gesmes:Envelope>"]
    return ("\n".join(lines) + "\n").encode("utf-8")


def _generated_until_today() -> dict[date, DayRates]:
    today = datetime.now(UTC).date()
    return generated_rates(today - timedelta(days=HISTORY_DAYS), today)


class EcbReferenceRates(Simulator):
    """The three files over `rates()`: by default the generated rates up to today."""

    def __init__(
        self,
        rates: Callable[[], Mapping[date, DayRates]] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host=host, port=port)
        self.rates = rates or _generated_until_today
        # A file name -> an HTTP status to answer instead (a test's outage).
        self.failures: dict[str, int] = {}

    @property
    def url(self) -> str:
        """What EXCHANGE_RATES_URL is set to."""
        return f"{self.base_url}{PATH}"

    def handle(self, request: Request) -> Response:
        folder, _, name = request.path.rpartition("/")
        if request.method != "GET" or folder != PATH or name not in set(Feed):
            return Response(404, b"Not Found", {"Content-Type": "text/html"})
        with self.lock:
            status = self.failures.get(name)
        if status is not None:
            page = b"<html><body>Service Unavailable</body></html>"
            return Response(status, page, {"Content-Type": "text/html"})
        days = dict(self.rates())
        if days and name == Feed.daily:
            days = {max(days): days[max(days)]}
        elif days and name == Feed.last_90_days:
            since = max(days) - timedelta(days=DAYS_IN_90D_FILE)
            days = {day: rates for day, rates in days.items() if day > since}
        body = envelope(days)
        return Response(200, body, {"Content-Type": "text/xml"})
