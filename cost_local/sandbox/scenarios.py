"""Waste the demo's bills carry so that each of our own recommendation rules has something to
find (assets/recommendations/own.py), on the customer's GCP account, first project and region:

- an unused static address: billed every day with a zero usage quantity (idle, zero usage);
- a batch VM stopped STOPPED_DAYS_AGO days before the bills' end whose persistent disk (the
  same resource) still bills every day (idle, no compute);
- a Vertex AI endpoint whose traffic grows RAMP_FACTOR-fold every week over the last
  RAMP_WEEKS weeks (a service outgrowing the customer's total).
Every amount is exact to the bills' 10 decimals, like the rest of the generated lines."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal

from cost_local.sandbox.bills import QUANTUM, GeneratedLine
from cost_local.sandbox.catalog import Account

STOPPED_DAYS_AGO = 21  # the batch VM's last compute day is this many days before the end
RAMP_WEEKS = 6
RAMP_FACTOR = Decimal("1.8")
RAMP_TOKENS = Decimal(20_000_000)  # a day's tokens in the ramp's first week
ADDRESS_PER_DAY = Decimal("0.24")  # $0.01 an hour for a reserved, unattached address
CORE_HOURS = Decimal(192)  # 8 vCPU x 24 h
CORE_PRICE = Decimal("0.031611")
DISK_GIB_MONTHS = Decimal("16.666666")  # 500 GiB for one day
DISK_PRICE = Decimal("0.04")
TOKEN_PRICE = Decimal("0.0000003")


def _line(
    account: Account,
    day: date,
    *,
    service: str,
    category: str,
    resource: str,
    name: str,
    sku: str,
    usage_type: str,
    quantity: Decimal,
    unit: str,
    price: Decimal,
    billed: Decimal | None = None,
) -> GeneratedLine:
    sub = account.sub_accounts[0]
    cost = (quantity * price).quantize(QUANTUM) if billed is None else billed
    return GeneratedLine(
        provider=account.provider,
        billing_account_id=account.billing_account_id,
        billing_account_name=account.name,
        sub_account_id=sub.id,
        sub_account_name=sub.name,
        charge_date=day,
        service_name=service,
        service_category=category,
        charge_category="Usage",
        resource_id=resource,
        resource_name=name,
        region=account.regions[0],
        sku_id=sku,
        usage_type=usage_type,
        pricing_quantity=quantity,
        pricing_unit=unit,
        list_unit_price=price,
        billed_cost=cost,
        effective_cost=cost,
        list_cost=cost,
        currency=account.currency,
        description=f"{usage_type} for {name}",
    )


def waste_lines(accounts: Sequence[Account], start: date, end: date) -> list[GeneratedLine]:
    """The scenario lines of the days [start, end) for the customer's GCP account (none
    without one)."""
    account = next((a for a in accounts if a.provider == "gcp"), None)
    if account is None:
        return []
    sub, region = account.sub_accounts[0], account.regions[0]
    address = f"{sub.name}-unused-ip"
    vm = f"{sub.name}-batch-vm"
    endpoint = f"{sub.name}-rag-endpoint"
    ids = {
        address: f"//compute.googleapis.com/projects/{sub.id}/regions/{region}/addresses/{address}",
        vm: f"//compute.googleapis.com/projects/{sub.id}/zones/{region}-a/instances/{vm}",
        endpoint: f"//aiplatform.googleapis.com/projects/{sub.id}/locations/{region}/"
        f"endpoints/{endpoint}",
    }
    last_compute = end - timedelta(days=STOPPED_DAYS_AGO + 1)
    ramp_start = end - timedelta(days=7 * RAMP_WEEKS)
    out = []
    day = start
    while day < end:
        out.append(
            _line(
                account,
                day,
                service="Compute Engine",
                category="Networking",
                resource=ids[address],
                name=address,
                sku="E7D4-5B5B-8A09",
                usage_type="Static Ip Charge",
                quantity=Decimal(0),
                unit="hour",
                price=ADDRESS_PER_DAY / 24,
                billed=ADDRESS_PER_DAY,
            )
        )
        out.append(
            _line(
                account,
                day,
                service="Compute Engine",
                category="Storage",
                resource=ids[vm],
                name=vm,
                sku="D973-5D65-BAB2",
                usage_type="Storage PD Capacity",
                quantity=DISK_GIB_MONTHS,
                unit="gibibyte month",
                price=DISK_PRICE,
            )
        )
        if day <= last_compute:
            out.append(
                _line(
                    account,
                    day,
                    service="Compute Engine",
                    category="Compute",
                    resource=ids[vm],
                    name=vm,
                    sku="CF4E-A0C7-E3BF",
                    usage_type="N2 Instance Core running in Americas",
                    quantity=CORE_HOURS,
                    unit="hour",
                    price=CORE_PRICE,
                )
            )
        if day >= ramp_start:
            week = (day - ramp_start).days // 7
            tokens = (RAMP_TOKENS * RAMP_FACTOR**week).to_integral_value()
            out.append(
                _line(
                    account,
                    day,
                    service="Vertex AI",
                    category="AI and Machine Learning",
                    resource=ids[endpoint],
                    name=endpoint,
                    sku="6A1B-9C55-2F47",
                    usage_type="Gemini 2.5 Flash Input Tokens",
                    quantity=tokens,
                    unit="count",
                    price=TOKEN_PRICE,
                )
            )
        day += timedelta(days=1)
    return out
