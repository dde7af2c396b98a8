"""One deterministic generator of realistic cloud bills that every sandbox simulator serves.

Same seed and accounts give the identical list of lines. Bills show what real ones do: several
sub-accounts and resources, weekday seasonality, steady growth, one spike per account, credits
(negative lines), tax lines, prices as small as 0.0000002, and restated recent days."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import date, timedelta
from decimal import Decimal
from operator import attrgetter
from typing import Any

from cost_local.sandbox.catalog import PRODUCTS, Account, Product, Resource, resources_of

QUANTUM = Decimal("1e-10")  # every amount is exact to 10 decimal places
_ZERO = Decimal(0)
_WEEKDAY_FACTOR = (1.0, 1.06, 1.08, 1.04, 0.97, 0.62, 0.55)  # Monday .. Sunday
GROWTH_PER_YEAR = 0.35
SPIKE_FACTOR = 6.0
_CREDIT_NAMES = {"aws": "AWS Activate Credits", "gcp": "Committed use discount"}


@dataclass(frozen=True)
class GeneratedLine:
    """One line item of a generated bill, in FOCUS terms; amounts are exact Decimals."""

    provider: str
    billing_account_id: str
    billing_account_name: str
    sub_account_id: str
    sub_account_name: str
    charge_date: date
    service_name: str
    service_category: str
    charge_category: str  # Usage | Credit | Tax
    resource_id: str
    resource_name: str
    region: str
    sku_id: str
    usage_type: str
    pricing_quantity: Decimal
    pricing_unit: str
    list_unit_price: Decimal
    billed_cost: Decimal
    effective_cost: Decimal
    list_cost: Decimal
    currency: str
    tags: Mapping[str, str] = field(default_factory=dict, hash=False)
    description: str = ""


_FIELDS = tuple(f.name for f in fields(GeneratedLine))


def _line(*values: Any) -> GeneratedLine:
    """A GeneratedLine built ~8x faster than through its frozen __init__ (a year of a few
    hundred resources is ~100k lines); frozen still forbids changing it afterwards."""
    line = object.__new__(GeneratedLine)
    line.__dict__.update(zip(_FIELDS, values, strict=True))
    return line


def spike_day(account: Account, start: date, end: date, seed: int) -> date:
    """The day on which this account's bill spikes (a runaway job, a traffic surge)."""
    rng = random.Random(f"{seed}:{account.billing_account_id}:spike")
    return start + timedelta(days=rng.randrange((end - start).days))


def generate_bills(
    accounts: Sequence[Account],
    start: date,
    end: date,
    *,
    seed: int = 7,
    spike_on: date | None = None,
    waste: bool = False,
) -> list[GeneratedLine]:
    """Every line item of these accounts for the days [start, end), ordered by day. `spike_on`
    puts every account's spike on that day instead of its `spike_day`; `waste` adds what the
    recommendations find (an unused address, a stopped VM's disk, a fast-growing service:
    sandbox/scenarios.py)."""
    if end <= start:
        raise ValueError(f"end {end} must be after start {start}")
    lines: list[GeneratedLine] = []
    for account in accounts:
        lines.extend(_account_lines(account, start, end, seed, spike_on))
    if waste:
        from cost_local.sandbox.scenarios import waste_lines  # it builds on this module

        lines.extend(waste_lines(accounts, start, end))
    lines.sort(key=_order)
    return lines


def restate(
    lines: Iterable[GeneratedLine], accounts: Sequence[Account], *, since: date, seed: int = 1
) -> list[GeneratedLine]:
    """The same bills as a provider restates them: from `since` on, amounts change and some
    lines disappear (with their credits); taxes follow the new amounts."""
    by_id = {a.billing_account_id: a for a in accounts}
    kept: list[GeneratedLine] = []
    for line in lines:
        if line.charge_date < since:
            kept.append(line)
            continue
        if line.charge_category == "Tax":
            continue  # recomputed below from the restated usage
        rng = random.Random(f"{seed}:{line.resource_id}:{line.sku_id}:{line.charge_date}")
        if rng.random() < 0.08:
            continue  # removed (its credit shares the key, so it goes too)
        factor = Decimal(rng.choice(("1.01", "1.03", "0.97", "1.05")))
        kept.append(
            replace(
                line,
                pricing_quantity=line.pricing_quantity * factor,
                billed_cost=(line.billed_cost * factor).quantize(QUANTUM),
                effective_cost=(line.effective_cost * factor).quantize(QUANTUM),
                list_cost=(line.list_cost * factor).quantize(QUANTUM),
            )
        )
    recent = [line for line in kept if line.charge_date >= since]
    for account_id, account in by_id.items():
        own = [line for line in recent if line.billing_account_id == account_id]
        kept.extend(_tax_lines(account, own))
    kept.sort(key=_order)
    return kept


# Lines ordered by day, then account, service and resource (attrgetter: sorting 100k is quick).
_order = attrgetter(
    "charge_date",
    "provider",
    "billing_account_id",
    "sub_account_id",
    "service_name",
    "resource_id",
    "sku_id",
    "charge_category",
)


def _account_lines(
    account: Account, start: date, end: date, seed: int, spike_on: date | None
) -> list[GeneratedLine]:
    resources = resources_of(account, start, end, seed)
    spike = spike_on or spike_day(account, start, end, seed)
    # The spike hits the account's costliest product (a runaway job, a traffic surge).
    costliest = max(PRODUCTS[account.provider], key=lambda p: p.list_unit_price * _qty(p))
    credited = _credited_service(account, seed)
    lines: list[GeneratedLine] = []
    for resource in resources:
        rng = random.Random(f"{seed}:{resource.resource_id}:{resource.product.sku_id}")
        spiking = resource.product is costliest
        credits = resource.product.service_name == credited
        day = resource.first_day
        while day < end:
            factor = SPIKE_FACTOR if spiking and day == spike else 1.0
            usage = _usage_line(account, resource, day, start, rng, factor)
            lines.append(usage)
            if credits:
                lines.append(_credit_line(account, usage))
            day += timedelta(days=1)
    lines.extend(_tax_lines(account, lines))
    return lines


def _usage_line(
    account: Account, resource: Resource, day: date, start: date, rng: random.Random, spike: float
) -> GeneratedLine:
    product = resource.product
    growth = 1.0 + GROWTH_PER_YEAR * (day - start).days / 365
    if product.weekday_sensitive or product.daily_quantity != 24 or spike != 1.0:
        seasonal = _WEEKDAY_FACTOR[day.weekday()] if product.weekday_sensitive else 1.0
        raw = product.daily_quantity * resource.scale * growth * seasonal * spike
        raw *= rng.uniform(0.93, 1.07)
        quantity = Decimal(int(raw)) if raw >= 1000 else Decimal(f"{raw:.6f}")
    else:
        quantity = Decimal(24)  # an always-on VM or database bills every hour of the day
    list_cost = (quantity * product.list_unit_price).quantize(QUANTUM)
    billed = (list_cost * (1 - account.discount)).quantize(QUANTUM)
    return _line(
        *resource.head,
        day,
        *resource.what,
        quantity,
        product.pricing_unit,
        product.list_unit_price,
        billed,
        billed,
        list_cost,
        account.currency,
        resource.tags,
        resource.description,
    )


def _qty(product: Product) -> Decimal:
    return Decimal(str(product.daily_quantity))


def _credited_service(account: Account, seed: int) -> str | None:
    if not account.credit_share:
        return None
    products = PRODUCTS[account.provider]
    return (
        random.Random(f"{seed}:{account.billing_account_id}:credit").choice(products).service_name
    )


def _credit_line(account: Account, usage: GeneratedLine) -> GeneratedLine:
    amount = -(usage.billed_cost * account.credit_share).quantize(QUANTUM)
    changed = {
        "charge_category": "Credit",
        "pricing_quantity": _ZERO,
        "billed_cost": amount,
        "effective_cost": amount,
        "list_cost": _ZERO,
        "description": _CREDIT_NAMES.get(account.provider, "Credit"),
    }
    return _line(*(changed.get(name, usage.__dict__[name]) for name in _FIELDS))


def _tax_lines(account: Account, lines: Iterable[GeneratedLine]) -> list[GeneratedLine]:
    """One tax line per sub-account and day, on that day's usage net of credits."""
    if not account.tax_rate:
        return []
    taxable: dict[tuple[date, str, str], Decimal] = defaultdict(Decimal)
    for line in lines:
        if line.charge_category != "Tax":
            taxable[(line.charge_date, line.sub_account_id, line.sub_account_name)] += (
                line.billed_cost
            )
    out = []
    for (day, sub_id, sub_name), base in sorted(taxable.items()):
        tax = (base * account.tax_rate).quantize(QUANTUM)
        out.append(
            GeneratedLine(
                provider=account.provider,
                billing_account_id=account.billing_account_id,
                billing_account_name=account.name,
                sub_account_id=sub_id,
                sub_account_name=sub_name,
                charge_date=day,
                service_name="Tax",
                service_category="Other",
                charge_category="Tax",
                resource_id="",
                resource_name="",
                region="",
                sku_id="",
                usage_type="Tax",
                pricing_quantity=_ZERO,
                pricing_unit="",
                list_unit_price=_ZERO,
                billed_cost=tax,
                effective_cost=tax,
                list_cost=_ZERO,
                currency=account.currency,
                description=f"Sales tax {(account.tax_rate * 100).normalize()}%",
            )
        )
    return out
