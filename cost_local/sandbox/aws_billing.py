"""AWS billing records as AWS itself keeps them, derived from the generated lines: the record
types of Cost Explorer's RECORD_TYPE dimension (CUR's line item types), and the ledger of what each
one is in FOCUS terms. Both the Cost Explorer answers (sandbox/aws.py) and the Data Exports files
(sandbox/aws_exports.py) are made from these records, so the two sources tell the same story.

What a real account with commitments shows (AWS Cost Explorer and CUR documentation):
- A reserved instance (partial upfront): an `Upfront` fee on the purchase day, a monthly `RIFee`
  on the purchase day and then on the 1st of every month, and the usage it covers as
  `DiscountedUsage` at $0 unblended. Amortized (NetAmortizedCost): the covered usage carries the
  RI's effective rate, the Upfront line is 0 and the RIFee line is the unused part of the month.
- A Compute Savings Plan (no upfront): a monthly `SavingsPlanRecurringFee` (service "Savings Plans
  for AWS Compute usage") on the purchase day and then on the 1st; covered usage as
  `SavingsPlanCoveredUsage` at the on-demand price plus an equal negative `SavingsPlanNegation`
  in the same usage type. Amortized: covered usage at the plan's effective cost, the negation 0,
  the fee the unused commitment.
- `Credit` lines (promotional credits), `Refund` lines (money back for an earlier charge, issued
  later), `Tax` lines (service "Tax").

Cost Explorer dates a monthly fee (RIFee, SavingsPlanRecurringFee, Support) on one day, but it
pays for every day of its period: [the purchase day or the 1st, the next 1st). FOCUS attributes
it to those days, so the ledger holds it in daily shares: equal shares rounded half-even to 12
decimals, the last day of the period taking the remainder, so the shares add up to the fee.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from cost_local.sandbox.bills import QUANTUM, GeneratedLine

_ZERO = Decimal(0)
# The reserved instance: one RDS instance of the first linked account, 3-year partial upfront.
RI_SERVICE, RI_TERM_HOURS = "Amazon Relational Database Service", 3 * 8760
RI_UPFRONT_RATE, RI_RECURRING_RATE = Decimal("0.0700"), Decimal("0.0650")  # $/hour each
# The Savings Plan: EC2 usage of the first linked account, $0.25/hour committed at 28% off.
SP_SERVICE, SP_FEE_SERVICE = "Amazon Elastic Compute Cloud", "Savings Plans for AWS Compute usage"
SP_COMMITMENT, SP_DISCOUNT = Decimal("0.25"), Decimal("0.28")
REFUNDED_SERVICE = "Amazon CloudFront"

USAGE_RECORD_TYPES = ("Usage", "DiscountedUsage", "SavingsPlanCoveredUsage", "SavingsPlanNegation")
# What FOCUS 1.2 calls each record type. Refund: FOCUS files a refund under the category of what
# it refunds, which a Cost Explorer refund line does not name, hence Adjustment.
FOCUS_CATEGORY = {
    **dict.fromkeys(USAGE_RECORD_TYPES, "Usage"),
    **dict.fromkeys(
        ("RIFee", "Upfront", "SavingsPlanRecurringFee", "SavingsPlanUpfrontFee"), "Purchase"
    ),
    "Tax": "Tax",
    "Credit": "Credit",
    "Refund": "Adjustment",
    "Support": "Purchase",
}
# Fees for a period of days (the rest of a calendar month), as opposed to one-time purchases.
MONTHLY_FEES = ("RIFee", "SavingsPlanRecurringFee", "Support")
SHARE_QUANTUM = Decimal("1e-12")


@dataclass(frozen=True)
class AwsRecord:
    """One line item as AWS bills it: Cost Explorer's metrics plus the export's resource fields."""

    day: date
    billing_account_id: str
    billing_account_name: str
    sub_account_id: str
    sub_account_name: str
    service: str
    usage_type: str
    record_type: str
    unblended: Decimal  # UnblendedCost: what the invoice charges
    net_amortized: Decimal  # NetAmortizedCost: commitments spread over what they covered
    usage_quantity: Decimal
    pricing_unit: str
    currency: str
    list_cost: Decimal  # on-demand price x quantity (FOCUS ListCost)
    contracted_cost: Decimal  # negotiated price x quantity, before commitments (ContractedCost)
    service_category: str = "Other"
    resource_id: str = ""
    resource_name: str = ""
    region: str = ""
    sku_id: str = ""
    description: str = ""
    tags: Mapping[str, str] = field(default_factory=dict, hash=False)
    period_end: date | None = None  # a monthly fee's charge period ends here (else day + 1)
    refunded_day: date | None = None  # a refund: the day of the charge it gives money back for


def _month_end(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1]) + timedelta(days=1)


def _fee_periods(first: date, end: date) -> list[tuple[date, date]]:
    """[start, end) of each monthly fee: from the purchase day, then from every 1st, until end."""
    periods, start = [], first
    while start < end:
        periods.append((start, _month_end(start)))
        start = _month_end(start)
    return periods


def _from_line(line: GeneratedLine, record_type: str, **changes: object) -> AwsRecord:
    record = AwsRecord(
        day=line.charge_date,
        billing_account_id=line.billing_account_id,
        billing_account_name=line.billing_account_name,
        sub_account_id=line.sub_account_id,
        sub_account_name=line.sub_account_name,
        service=line.service_name,
        usage_type=line.usage_type,
        record_type=record_type,
        unblended=line.billed_cost,
        net_amortized=line.effective_cost,
        usage_quantity=line.pricing_quantity,
        pricing_unit=line.pricing_unit,
        currency=line.currency,
        # A credit or a tax has no price of its own: list and contracted equal what is billed.
        list_cost=line.list_cost if line.charge_category == "Usage" else line.billed_cost,
        contracted_cost=line.billed_cost,
        service_category=line.service_category,
        resource_id=line.resource_id,
        resource_name=line.resource_name,
        region=line.region,
        sku_id=line.sku_id,
        description=line.description,
        tags=line.tags,
    )
    return replace(record, **changes)  # type: ignore[arg-type]


def _fee(
    template: GeneratedLine,
    service: str,
    usage_type: str,
    record_type: str,
    day: date,
    **kw: object,
) -> AwsRecord:
    return _from_line(
        template,
        record_type,
        day=day,
        service=service,
        usage_type=usage_type,
        usage_quantity=_ZERO,
        pricing_unit="",
        resource_id="",
        resource_name="",
        sku_id="",
        tags={},
        **kw,
    )


def _account_records(lines: list[GeneratedLine]) -> list[AwsRecord]:
    first, end = lines[0].charge_date, lines[-1].charge_date + timedelta(days=1)
    prod = min(line.sub_account_id for line in lines)
    ri_resource = min(
        (
            line.resource_id
            for line in lines
            if line.service_name == RI_SERVICE and line.sub_account_id == prod
        ),
        default=None,
    )
    records: list[AwsRecord] = []
    ri_used: dict[date, Decimal] = defaultdict(Decimal)  # month start -> covered hours
    sp_used: dict[date, Decimal] = defaultdict(Decimal)  # day -> commitment used
    for line in lines:
        covered_by_sp = (
            line.charge_category == "Usage"
            and line.service_name == SP_SERVICE
            and line.sub_account_id == prod
        )
        if line.charge_category == "Usage" and line.resource_id == ri_resource:
            rate = RI_UPFRONT_RATE + RI_RECURRING_RATE
            effective = (line.pricing_quantity * rate).quantize(QUANTUM)
            ri_used[line.charge_date] += line.pricing_quantity
            records.append(
                _from_line(line, "DiscountedUsage", unblended=_ZERO, net_amortized=effective)
            )
        elif (
            covered_by_sp
            and (effective := (line.billed_cost * (1 - SP_DISCOUNT)).quantize(QUANTUM))
            + sp_used[line.charge_date]
            <= SP_COMMITMENT * 24
        ):
            sp_used[line.charge_date] += effective
            records.append(_from_line(line, "SavingsPlanCoveredUsage", net_amortized=effective))
            records.append(
                _from_line(
                    line,
                    "SavingsPlanNegation",
                    unblended=-line.billed_cost,
                    net_amortized=_ZERO,
                    usage_quantity=_ZERO,
                    list_cost=_ZERO,
                    contracted_cost=_ZERO,
                )
            )
        else:
            kind = {"Usage": "Usage", "Credit": "Credit", "Tax": "Tax"}[line.charge_category]
            records.append(_from_line(line, kind))
    template = lines[0]
    if ri_resource is not None:
        upfront = RI_UPFRONT_RATE * RI_TERM_HOURS
        records.append(
            _fee(
                template,
                RI_SERVICE,
                "HeavyUsage:db.r6g.large",
                "Upfront",
                first,
                unblended=upfront,
                net_amortized=_ZERO,
                list_cost=upfront,
                contracted_cost=upfront,
                sub_account_id=prod,
                description="Sign up charge for a reserved DB instance",
            )
        )
        for start, stop in _fee_periods(first, end):
            hours = Decimal(24 * (stop - start).days)
            used = sum((q for d, q in ri_used.items() if start <= d < stop), _ZERO)
            seen = Decimal(24 * (min(stop, end) - start).days)
            fee = (hours * RI_RECURRING_RATE).quantize(QUANTUM)
            unused = ((seen - used) * (RI_UPFRONT_RATE + RI_RECURRING_RATE)).quantize(QUANTUM)
            records.append(
                _fee(
                    template,
                    RI_SERVICE,
                    "HeavyUsage:db.r6g.large",
                    "RIFee",
                    start,
                    unblended=fee,
                    net_amortized=unused,
                    list_cost=fee,
                    contracted_cost=fee,
                    sub_account_id=prod,
                    period_end=stop,
                    description="Reserved DB instance db.r6g.large, monthly fee",
                )
            )
    if any(sp_used.values()):
        for start, stop in _fee_periods(first, end):
            hours = Decimal(24 * (stop - start).days)
            seen = Decimal(24 * (min(stop, end) - start).days)
            used = sum((u for d, u in sp_used.items() if start <= d < stop), _ZERO)
            fee = (hours * SP_COMMITMENT).quantize(QUANTUM)
            records.append(
                _fee(
                    template,
                    SP_FEE_SERVICE,
                    "ComputeSP:3yrNoUpfront",
                    "SavingsPlanRecurringFee",
                    start,
                    unblended=fee,
                    net_amortized=seen * SP_COMMITMENT - used,
                    list_cost=fee,
                    contracted_cost=fee,
                    sub_account_id=prod,
                    service_category="Compute",
                    period_end=stop,
                    description=f"Savings Plan ${SP_COMMITMENT}/hour commitment, monthly fee",
                )
            )
    refunded = next(
        (x for x in lines if x.service_name == REFUNDED_SERVICE and x.charge_category == "Usage"),
        None,
    )
    if refunded is not None and first + timedelta(days=3) < end:
        money_back = -refunded.billed_cost
        records.append(
            _from_line(
                refunded,
                "Refund",
                day=first + timedelta(days=3),
                unblended=money_back,
                net_amortized=money_back,
                usage_quantity=_ZERO,
                list_cost=money_back,
                contracted_cost=money_back,
                refunded_day=first.replace(day=1) - timedelta(days=1),
                description="Refund: CloudFront outage service credit request",
            )
        )
    return records


def aws_records(lines: Iterable[GeneratedLine]) -> list[AwsRecord]:
    """Every AWS record of the generated bills, per billing account: the commitments start on the
    bills' first day (bought then), the refund is issued on the fourth day."""
    by_account: dict[str, list[GeneratedLine]] = defaultdict(list)
    for line in lines:
        if line.provider == "aws":
            by_account[line.billing_account_id].append(line)
    records: list[AwsRecord] = []
    for account in sorted(by_account):
        own = sorted(by_account[account], key=lambda x: x.charge_date)
        records.extend(_account_records(own))
    return records


@dataclass(frozen=True)
class LedgerLine:
    """What FOCUS says one record is, as Cost Explorer can tell it (no list or contracted price)."""

    day: date
    sub_account_id: str
    service: str
    charge_category: str
    record_type: str
    billed_cost: Decimal
    effective_cost: Decimal
    list_cost: Decimal | None = None
    contracted_cost: Decimal | None = None


def daily_shares(amount: Decimal, days: int) -> list[Decimal]:
    """`amount` in `days` equal shares rounded half-even to 12 decimals; the last day takes what
    rounding left over, so the shares add up to `amount` exactly."""
    share = (amount / days).quantize(SHARE_QUANTUM, rounding=ROUND_HALF_EVEN)
    return [share] * (days - 1) + [amount - share * (days - 1)]


def fee_period(record: AwsRecord) -> tuple[date, date]:
    """[start, end) of the days a record pays for: a monthly fee the rest of its month (from the
    purchase day or the 1st), any other record its own day."""
    if record.record_type not in MONTHLY_FEES:
        return record.day, record.day + timedelta(days=1)
    return record.day, record.period_end or _month_end(record.day)


def _days_of(record: AwsRecord) -> list[tuple[date, Decimal, Decimal]]:
    """(day, unblended, net amortized) for each day the record pays for."""
    first, stop = fee_period(record)
    days = (stop - first).days
    return [
        (first + timedelta(days=index), unblended, net_amortized)
        for index, (unblended, net_amortized) in enumerate(
            zip(
                daily_shares(record.unblended, days),
                daily_shares(record.net_amortized, days),
                strict=True,
            )
        )
    ]


def cost_explorer_ledger(records: Iterable[AwsRecord], start: date, end: date) -> list[LedgerLine]:
    """The FOCUS lines Cost Explorer's records imply for the days [start, end): BilledCost the
    unblended cost, EffectiveCost the net amortized cost, a monthly fee in its daily shares (a
    fee dated before `start` has shares inside); List/Contracted cost are not Cost Explorer's."""
    return [
        LedgerLine(
            day,
            r.sub_account_id,
            r.service,
            FOCUS_CATEGORY[r.record_type],
            r.record_type,
            unblended,
            net_amortized,
        )
        for r in records
        for day, unblended, net_amortized in _days_of(r)
        if start <= day < end
    ]


def ledger_sums(lines: Iterable[LedgerLine]) -> dict[tuple[str, str, str, str], Decimal | None]:
    """(day, service, charge category, cost column) -> sum; None where the column is absent."""
    sums: dict[tuple[str, str, str, str], Decimal | None] = {}
    for line in lines:
        for column, value in (
            ("BilledCost", line.billed_cost),
            ("EffectiveCost", line.effective_cost),
            ("ListCost", line.list_cost),
            ("ContractedCost", line.contracted_cost),
        ):
            key = (line.day.isoformat(), line.service, line.charge_category, column)
            if value is None:
                sums.setdefault(key, None)
            else:
                sums[key] = (sums.get(key) or _ZERO) + value
    return sums
