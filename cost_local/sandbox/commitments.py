"""What the sandbox's providers recommend buying, derived from the generated bills by fixed,
documented rules (the real engines are the providers' own; these give figures a test can
recompute exactly). Every rule looks at the usage lines of the look-back days before `today`
and sizes the commitment to the lowest day, so it is fully used on every day:

- AWS Savings Plans (Cost Explorer): the daily on-demand Compute spend (EC2 and Lambda usage)
  of the payer's accounts; HourlyCommitmentToPurchase = lowest day / 24 x (1 - discount),
  rounded down to 0.001; EstimatedSPCost = commitment x 730; EstimatedMonthlySavingsAmount =
  commitment x 730 x discount / (1 - discount), to 10 decimals; UpfrontCost = commitment x 730
  x term months x upfront share.
- AWS reservations (Cost Explorer): per service, instance type (the usage type after ':') and
  region, the lowest day's instance-hours / 24, rounded down; on-demand rate = billed /
  quantity of the type's lines; EstimatedMonthlyOnDemandCost = n x rate x 730;
  EstimatedMonthlySavingsAmount = that x discount; UpfrontCost = that - savings, x term months x
  upfront share; EstimatedBreakEvenInMonths = upfront / savings, to 2 decimals.
- Azure reservations (Consumption, modern): per VM size and region, the lowest day's VM-hours /
  24, rounded down; over the look-back's hours: costWithNoReservedInstances = n x rate x hours;
  totalCostWithReservedInstances = that x (1 - discount); netSavings the difference.
- GCP committed-use discounts (Recommender): per project and region, the lowest day's Compute
  Engine core-hours / 24, rounded down; cost over 30 days = -(cores x rate x 720 x discount),
  to the nano.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal

from cost_local.sandbox.bills import GeneratedLine

HOURS_PER_MONTH = Decimal(730)
TERM_MONTHS = {"ONE_YEAR": 12, "THREE_YEARS": 36}
UPFRONT_SHARE = {
    "NO_UPFRONT": Decimal(0),
    "PARTIAL_UPFRONT": Decimal("0.5"),
    "ALL_UPFRONT": Decimal(1),
}
SP_DISCOUNT = {"ONE_YEAR": Decimal("0.27"), "THREE_YEARS": Decimal("0.46")}
RI_DISCOUNT = {"ONE_YEAR": Decimal("0.31"), "THREE_YEARS": Decimal("0.52")}
AZURE_DISCOUNT = {"P1Y": Decimal("0.36"), "P3Y": Decimal("0.57")}
GCP_DISCOUNT = Decimal("0.37")  # 1-year resource-based commitment
AWS_LOOKBACK = {"SEVEN_DAYS": 7, "THIRTY_DAYS": 30, "SIXTY_DAYS": 60}
AZURE_LOOKBACK = {"Last7Days": 7, "Last30Days": 30, "Last60Days": 60}
RI_SERVICES = {
    "Amazon Elastic Compute Cloud - Compute": "Amazon Elastic Compute Cloud",
    "Amazon Relational Database Service": "Amazon Relational Database Service",
}
MACHINES = ("Compute", "Databases")  # the FOCUS service categories of instance hours
TEN = Decimal("1e-10")
NANO = Decimal("1e-9")


def window(lines: Iterable[GeneratedLine], today: date, days: int) -> list[GeneratedLine]:
    """The usage lines of the `days` complete days before today."""
    start = today - timedelta(days=days)
    return [x for x in lines if x.charge_category == "Usage" and start <= x.charge_date < today]


def _lowest_day(values: dict[date, Decimal], days: int) -> Decimal:
    """The lowest daily value; a day without lines counts as zero."""
    return min(values.values()) if len(values) == days else Decimal(0)


@dataclass(frozen=True)
class Usage:
    """One kind of machine's hours per day in the look-back, and its hourly on-demand rate."""

    hours: dict[date, Decimal]
    billed: Decimal
    quantity: Decimal

    @property
    def rate(self) -> Decimal:
        return self.billed / self.quantity

    def lowest_count(self, days: int) -> int:
        return int(_lowest_day(self.hours, days) / 24)


def machine_usage(
    lines: Iterable[GeneratedLine], provider: str, service: str
) -> dict[tuple[str, str, str], Usage]:
    """Per (sub account, usage type, region): machine hours per day (the service's Compute and
    Databases lines: a VM's disk or address is not a machine), billed and quantity."""
    hours: dict[tuple[str, str, str], dict[date, Decimal]] = defaultdict(
        lambda: defaultdict(Decimal)
    )
    sums: dict[tuple[str, str, str], list[Decimal]] = defaultdict(lambda: [Decimal(0)] * 2)
    for x in lines:
        if x.provider == provider and x.service_name == service and x.service_category in MACHINES:
            key = (x.sub_account_id, x.usage_type, x.region)
            hours[key][x.charge_date] += x.pricing_quantity
            sums[key][0] += x.billed_cost
            sums[key][1] += x.pricing_quantity
    return {k: Usage(dict(hours[k]), *sums[k]) for k in sorted(hours)}


def _by_type_and_region(
    usage: dict[tuple[str, str, str], Usage],
) -> dict[tuple[str, str], Usage]:
    """Sub accounts merged: a payer-scope or shared recommendation covers all of them."""
    merged: dict[tuple[str, str], Usage] = {}
    for (_, usage_type, region), u in usage.items():
        key = (usage_type, region)
        if key in merged:
            m = merged[key]
            days = defaultdict(Decimal, m.hours)
            for d, h in u.hours.items():
                days[d] += h
            merged[key] = Usage(dict(days), m.billed + u.billed, m.quantity + u.quantity)
        else:
            merged[key] = u
    return merged


def aws_savings_plan(
    lines: Iterable[GeneratedLine], today: date, term: str, payment: str, lookback: str
) -> dict[str, str] | None:
    """One Compute Savings Plan detail (Cost Explorer's member names), or None: no steady use."""
    days = AWS_LOOKBACK[lookback]
    spend: dict[date, Decimal] = defaultdict(Decimal)
    for x in window(lines, today, days):
        if x.provider == "aws" and x.service_category == "Compute":
            spend[x.charge_date] += x.billed_cost
    lowest = _lowest_day(spend, days)
    discount = SP_DISCOUNT[term]
    commitment = (lowest / 24 * (1 - discount)).quantize(Decimal("0.001"), rounding=ROUND_DOWN)
    if commitment <= 0:
        return None
    cost = commitment * HOURS_PER_MONTH
    savings = (cost * discount / (1 - discount)).quantize(TEN, rounding=ROUND_HALF_EVEN)
    on_demand = cost + savings
    upfront = cost * TERM_MONTHS[term] * UPFRONT_SHARE[payment]
    hourly = [v / 24 for v in spend.values()]
    return {
        "UpfrontCost": _s(upfront),
        "EstimatedROI": _s((savings / cost * 100).quantize(Decimal("0.01"))),
        "CurrencyCode": "USD",
        "EstimatedSPCost": _s(cost),
        "EstimatedOnDemandCost": _s(on_demand),
        "EstimatedOnDemandCostWithCurrentCommitment": _s(on_demand),
        "EstimatedSavingsAmount": _s(savings),
        "EstimatedSavingsPercentage": _s((discount * 100).normalize()),
        "HourlyCommitmentToPurchase": _s(commitment),
        "EstimatedAverageUtilization": "100.0",
        "EstimatedMonthlySavingsAmount": _s(savings),
        "CurrentMinimumHourlyOnDemandSpend": _s((lowest / 24).quantize(TEN)),
        "CurrentMaximumHourlyOnDemandSpend": _s(max(hourly).quantize(TEN)),
        "CurrentAverageHourlyOnDemandSpend": _s(
            (sum(hourly, Decimal(0)) / len(hourly)).quantize(TEN)
        ),
    }


def aws_reservations(
    lines: Iterable[GeneratedLine],
    today: date,
    service: str,
    term: str,
    payment: str,
    lookback: str,
) -> list[dict[str, str]]:
    """Reservation details (Cost Explorer's member names, InstanceDetails without the family
    wrapper: the caller adds it) for one Cost Explorer service name."""
    days = AWS_LOOKBACK[lookback]
    billed_service = RI_SERVICES.get(service)
    if billed_service is None:
        return []
    usage = _by_type_and_region(machine_usage(window(lines, today, days), "aws", billed_service))
    out = []
    for (usage_type, region), u in usage.items():
        count = u.lowest_count(days)
        if count <= 0:
            continue
        on_demand = count * u.rate * HOURS_PER_MONTH
        savings = (on_demand * RI_DISCOUNT[term]).quantize(TEN)
        upfront = ((on_demand - savings) * TERM_MONTHS[term] * UPFRONT_SHARE[payment]).quantize(TEN)
        recurring = ((on_demand - savings) * (1 - UPFRONT_SHARE[payment])).quantize(TEN)
        per_hour = [h / 24 for h in u.hours.values()]
        out.append(
            {
                "InstanceType": usage_type.split(":", 1)[-1],
                "Region": region,
                "RecommendedNumberOfInstancesToPurchase": str(count),
                "MinimumNumberOfInstancesUsedPerHour": _s(min(per_hour)),
                "MaximumNumberOfInstancesUsedPerHour": _s(max(per_hour)),
                "AverageNumberOfInstancesUsedPerHour": _s(
                    (sum(per_hour, Decimal(0)) / len(per_hour)).quantize(TEN)
                ),
                "AverageUtilization": "100.0",
                "EstimatedBreakEvenInMonths": _s((upfront / savings).quantize(Decimal("0.01"))),
                "CurrencyCode": "USD",
                "EstimatedMonthlySavingsAmount": _s(savings),
                "EstimatedMonthlySavingsPercentage": _s((RI_DISCOUNT[term] * 100).normalize()),
                "EstimatedMonthlyOnDemandCost": _s(on_demand),
                "EstimatedReservationCostForLookbackPeriod": _s(
                    ((on_demand - savings) / HOURS_PER_MONTH * 24 * days).quantize(TEN)
                ),
                "UpfrontCost": _s(upfront),
                "RecurringStandardMonthlyCost": _s(recurring),
            }
        )
    return out


@dataclass(frozen=True)
class AzureReservation:
    """One VM size's recommendation in one region for one term."""

    sku: str  # e.g. Standard_D4s_v5
    region: str
    term: str
    quantity: int
    hours: int
    cost_without: Decimal
    cost_with: Decimal
    first_day: date
    last_day: date

    @property
    def net_savings(self) -> Decimal:
        return self.cost_without - self.cost_with


def azure_reservations(
    lines: Iterable[GeneratedLine], billing_account_id: str, today: date, look_back: str
) -> list[AzureReservation]:
    """Both terms' recommendations per VM size and region of one billing account."""
    days = AZURE_LOOKBACK[look_back]
    own = [x for x in window(lines, today, days) if x.billing_account_id == billing_account_id]
    usage = _by_type_and_region(machine_usage(own, "azure", "Virtual Machines"))
    out = []
    for (usage_type, region), u in usage.items():
        count = u.lowest_count(days)
        if count <= 0:
            continue
        hours = 24 * days
        without = count * u.rate * hours
        for term, discount in AZURE_DISCOUNT.items():
            out.append(
                AzureReservation(
                    sku="Standard_" + usage_type.replace(" ", "_"),
                    region=region,
                    term=term,
                    quantity=count,
                    hours=hours,
                    cost_without=without,
                    cost_with=without * (1 - discount),
                    first_day=today - timedelta(days=days),
                    last_day=today - timedelta(days=1),
                )
            )
    return out


@dataclass(frozen=True)
class GcpCommitment:
    """One project's and region's committed-use recommendation."""

    project: str
    region: str
    cores: int
    cost: Decimal  # over 30 days, negative: the saving

    @property
    def money(self) -> dict[str, object]:
        units = int(self.cost)  # towards zero; nanos keep the same sign
        nanos = int((self.cost - units) / NANO)
        return {"currencyCode": "USD", "units": str(units), "nanos": nanos}


def gcp_commitments(
    lines: Iterable[GeneratedLine], project: str, region: str, today: date, days: int = 30
) -> list[GcpCommitment]:
    """The Compute Engine commitment worth buying in one project and region, if any."""
    usage = machine_usage(window(lines, today, days), "gcp", "Compute Engine")
    merged: dict[date, Decimal] = defaultdict(Decimal)
    billed = quantity = Decimal(0)
    for (sub, _, line_region), u in usage.items():
        if sub == project and line_region == region:
            for d, h in u.hours.items():
                merged[d] += h
            billed += u.billed
            quantity += u.quantity
    cores = int(_lowest_day(dict(merged), days) / 24)
    if cores <= 0:
        return []
    rate = billed / quantity
    cost = -(cores * rate * 720 * GCP_DISCOUNT).quantize(NANO, rounding=ROUND_HALF_EVEN)
    return [GcpCommitment(project, region, cores, cost)]


def _s(value: Decimal) -> str:
    """Cost Explorer's figures are decimal strings."""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text
