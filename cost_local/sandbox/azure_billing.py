"""Azure cost details as Cost Management holds them, derived from the generated bills, and the
sandbox's own ledger of the FOCUS values Microsoft's documented semantics give each of them.

Microsoft's datasets (learn.microsoft.com cost-management-billing: understand-cost-mgt-data,
automate/understand-usage-details-fields, reservations/understand-reserved-instance-usage-ea,
savings-plan/utilization-cost-reports) differ by view:
- ActualCost: usage at the price paid; usage a reservation or savings plan covers at 0; the
  commitment's purchase (positive, no ResourceId) on the day it is charged; refunds (negative).
- AmortizedCost: covered usage at its share of the commitment; the unused part of the commitment
  each day as `UnusedReservation` / `UnusedSavingsPlan` lines; commitment purchases and refunds are
  not in it (they are what is amortized).
- Neither has credits nor tax ("Costs shown don't include free and prepaid credits"; taxes are
  listed under "not included").
- Resource ids are case-insensitive and Cost Management writes one resource in several casings.

The ledger follows Microsoft's FOCUS conversion (finops-toolkit docs-mslearn/focus/convert.md):
BilledCost is the actual cost (0 where a line is only amortized), EffectiveCost the amortized cost
(0 for commitment purchases and refunds); ChargeCategory Usage for Usage, UnusedReservation and
UnusedSavingsPlan, Purchase for Purchase and Refund, Adjustment otherwise; ChargeClass Correction
for Refund; ListCost and ContractedCost are not in the Query API (null). This module never
imports the collector."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from cost_local.sandbox.bills import QUANTUM, GeneratedLine

RESERVATION_RATE = Decimal("0.58")  # covered VM usage costs 58 % of on-demand, amortized
SAVINGS_PLAN_RATE = Decimal("0.71")
COMMITMENT_HEADROOM = Decimal("1.2")  # the commitment is sized 20 % above the busiest day
PAYMENT_DAY = 3  # monthly-paid commitments are charged on the 3rd
REFUND_DAY = 12  # a reservation exchange refunds part of an earlier purchase on the 12th
RESERVED_SERVICE = "Virtual Machines"
SAVINGS_PLAN_SERVICE = "Azure Savings Plan for Compute"
CASE_VARIANT_SERVICE = "Storage"  # one storage account per subscription in two casings


@dataclass(frozen=True)
class CostRecord:
    """One cost-details row: what the Query API sums. `actual` / `amortized` is the row's cost in
    the ActualCost / AmortizedCost dataset, None where the row is not in that dataset."""

    billing_account_id: str
    subscription_id: str
    subscription_name: str
    day: date
    service_name: str
    charge_type: str  # Usage | Purchase | Refund | UnusedReservation | UnusedSavingsPlan
    pricing_model: str  # OnDemand | Reservation | SavingsPlan
    resource_id: str  # as Cost Management writes it (casing varies); "" for commitments
    location: str
    meter: str
    unit: str
    currency: str
    actual: Decimal | None
    amortized: Decimal | None
    # The resource's tags as Azure holds them (names case-insensitive, as written); commitment
    # rows have none.
    tags: Mapping[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class LedgerLine:
    """The FOCUS values Microsoft's semantics give one cost-details row."""

    billing_account_id: str
    day: date
    service_name: str
    charge_category: str
    charge_class: str | None
    charge_type: str
    resource_id: str  # lowercase: Azure resource ids are case-insensitive
    billed_cost: Decimal
    effective_cost: Decimal
    list_cost: Decimal | None
    contracted_cost: Decimal | None
    currency: str


_CATEGORY = {
    "Usage": "Usage",
    "UnusedReservation": "Usage",
    "UnusedSavingsPlan": "Usage",
    "Purchase": "Purchase",
    "Refund": "Purchase",
}


def ledger_line(record: CostRecord) -> LedgerLine:
    return LedgerLine(
        billing_account_id=record.billing_account_id,
        day=record.day,
        service_name=record.service_name,
        charge_category=_CATEGORY.get(record.charge_type, "Adjustment"),
        charge_class="Correction" if record.charge_type == "Refund" else None,
        charge_type=record.charge_type,
        resource_id=record.resource_id.lower(),
        billed_cost=record.actual if record.actual is not None else Decimal(0),
        effective_cost=record.amortized if record.amortized is not None else Decimal(0),
        list_cost=None,
        contracted_cost=None,
        currency=record.currency,
    )


def ledger(records: Iterable[CostRecord], start: date, end: date) -> list[LedgerLine]:
    """The ledger of the days [start, end)."""
    return [ledger_line(r) for r in records if start <= r.day < end]


def ledger_sums(
    records: Iterable[CostRecord], start: date, end: date
) -> dict[tuple[str, str, str, str], Decimal]:
    """Per (day, service, charge category, cost column): the sum FOCUS says is stored; columns
    the source does not have are absent (not zero)."""
    sums: dict[tuple[str, str, str, str], Decimal] = defaultdict(Decimal)
    for line in ledger(records, start, end):
        key = (line.day.isoformat(), line.service_name, line.charge_category)
        sums[(*key, "BilledCost")] += line.billed_cost
        sums[(*key, "EffectiveCost")] += line.effective_cost
    return dict(sums)


def actual_totals(records: Iterable[CostRecord]) -> dict[tuple[str, date, str], Decimal]:
    """The ActualCost total per billing account, day and currency (what the invoice sums)."""
    sums: dict[tuple[str, date, str], Decimal] = defaultdict(Decimal)
    for r in records:
        if r.actual is not None:
            sums[(r.billing_account_id, r.day, r.currency)] += r.actual
    return dict(sums)


def case_variant(resource_id: str) -> str:
    """The same id as Cost Management also writes it: `resourceGroups`, the group and the
    provider namespace in upper case."""
    parts = resource_id.split("/")
    if len(parts) > 6 and parts[3].lower() == "resourcegroups":
        parts[3] = "resourceGroups"
        parts[4] = parts[4].upper()
        parts[6] = parts[6].upper()
    return "/".join(parts)


def cost_records(lines: Iterable[GeneratedLine]) -> list[CostRecord]:
    """The Azure lines as cost details with real-world shapes: the first subscription's VMs are
    covered by a reservation, the second's by a savings plan (both paid monthly), one reservation
    exchange refund a month, and one storage account written in two casings."""
    by_account: dict[str, list[GeneratedLine]] = defaultdict(list)
    for line in lines:
        if line.provider == "azure":
            by_account[line.billing_account_id].append(line)
    out: list[CostRecord] = []
    for own in by_account.values():
        out.extend(_account_records(own))
    out.sort(key=lambda r: (r.day, r.billing_account_id, r.subscription_id, r.service_name))
    return out


def _account_records(lines: Sequence[GeneratedLine]) -> list[CostRecord]:
    subs = sorted({line.sub_account_id for line in lines})
    covered = {sub: ("Reservation", RESERVATION_RATE) for sub in subs[:1]}
    covered.update({sub: ("SavingsPlan", SAVINGS_PLAN_RATE) for sub in subs[1:2]})
    variant = {
        sub: min(
            line.resource_id
            for line in lines
            if line.sub_account_id == sub and line.service_name == CASE_VARIANT_SERVICE
        )
        for sub in subs
        if any(x.sub_account_id == sub and x.service_name == CASE_VARIANT_SERVICE for x in lines)
    }
    out: list[CostRecord] = []
    used: dict[tuple[str, date], Decimal] = defaultdict(Decimal)  # (sub, day) -> amortized
    for line in lines:
        base = _record(line)
        commitment = covered.get(line.sub_account_id)
        if commitment and line.service_name == RESERVED_SERVICE and line.charge_category == "Usage":
            model, rate = commitment
            amortized = (line.billed_cost * rate).quantize(QUANTUM)
            used[(line.sub_account_id, line.charge_date)] += amortized
            out.append(_with(base, pricing_model=model, actual=Decimal(0), amortized=amortized))
        elif variant.get(line.sub_account_id) == line.resource_id:
            other = case_variant(line.resource_id)
            if line.charge_date.toordinal() % 2:
                out.append(_with(base, resource_id=other))
            else:  # two meters of one day, one in each casing
                half = (line.billed_cost / 2).quantize(QUANTUM)
                rest = line.billed_cost - half
                out.append(_with(base, actual=half, amortized=half))
                out.append(_with(base, resource_id=other, actual=rest, amortized=rest))
        else:
            out.append(base)
    for sub, (model, _rate) in covered.items():
        out.extend(_commitment(lines, sub, model, used))
    return out


def _record(line: GeneratedLine) -> CostRecord:
    return CostRecord(
        billing_account_id=line.billing_account_id,
        subscription_id=line.sub_account_id,
        subscription_name=line.sub_account_name,
        day=line.charge_date,
        service_name=line.service_name,
        charge_type="Usage",
        pricing_model="OnDemand",
        resource_id=line.resource_id,
        location=line.region,
        meter=line.usage_type,
        unit=line.pricing_unit,
        currency=line.currency,
        actual=line.billed_cost,
        amortized=line.billed_cost,
        tags=dict(line.tags),
    )


def _with(record: CostRecord, **changes: object) -> CostRecord:
    values = {**record.__dict__, **changes}
    return CostRecord(**values)


def _commitment(
    lines: Sequence[GeneratedLine],
    sub: str,
    model: str,
    used: dict[tuple[str, date], Decimal],
) -> list[CostRecord]:
    """A monthly-paid commitment: its daily amount (sized above the busiest covered day), the
    unused part of every day (amortized only), the monthly payment and a monthly refund (actual
    only)."""
    own = [x for x in lines if x.sub_account_id == sub]
    days = sorted({x.charge_date for x in own})
    busiest = max((used[(sub, day)] for day in days), default=Decimal(0))
    if not busiest:
        return []
    daily = (busiest * COMMITMENT_HEADROOM).quantize(Decimal("0.01"))
    first = own[0]
    reservation = model == "Reservation"
    service = RESERVED_SERVICE if reservation else SAVINGS_PLAN_SERVICE
    template = CostRecord(
        billing_account_id=first.billing_account_id,
        subscription_id=sub,
        subscription_name=first.sub_account_name,
        day=days[0],
        service_name=service,
        charge_type="Purchase",
        pricing_model=model,
        resource_id="",
        location="",
        meter="Reservation-Base VM" if reservation else "Savings plan for compute",
        unit="1 Hour",
        currency=first.currency,
        actual=None,
        amortized=None,
    )
    out = []
    unused_type = "UnusedReservation" if reservation else "UnusedSavingsPlan"
    for day in days:
        unused = daily - used[(sub, day)]
        out.append(_with(template, day=day, charge_type=unused_type, amortized=unused))
        if day.day == PAYMENT_DAY:
            month_days = (_next_month(day) - day.replace(day=1)).days
            out.append(_with(template, day=day, charge_type="Purchase", actual=daily * month_days))
        if reservation and day.day == REFUND_DAY:
            out.append(_with(template, day=day, charge_type="Refund", actual=-(daily * 5)))
    return out


def _next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)
