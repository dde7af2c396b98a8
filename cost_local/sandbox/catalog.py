# ruff: noqa: E501  (the product table reads best one product per line)
"""What the sandbox's bills are made of: each provider's priced products and billing accounts."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal


@dataclass(frozen=True)
class Product:
    """One priced thing a resource consumes daily (a VM hour, a stored GB, a million tokens)."""

    service_name: str
    service_category: str  # FOCUS ServiceCategory
    sku_id: str
    usage_type: str
    pricing_unit: str
    list_unit_price: Decimal
    daily_quantity: float  # typical quantity per day for one resource
    resource_kind: str  # used to build realistic resource ids and names
    weekday_sensitive: bool  # request/traffic-driven usage dips at weekends; VM hours do not


@dataclass(frozen=True)
class SubAccount:
    """An AWS linked account, an Azure subscription, a GCP project or a Vultr account."""

    id: str
    name: str


@dataclass(frozen=True)
class Account:
    """One billing account of a customer at one provider, with what its bills contain."""

    provider: str
    billing_account_id: str
    name: str
    currency: str
    sub_accounts: tuple[SubAccount, ...]
    resources_per_product: int = 2
    discount: Decimal = Decimal("0")  # negotiated discount: billed = list * (1 - discount)
    tax_rate: Decimal = Decimal("0")  # 0 = this provider's bills carry no tax lines
    credit_share: Decimal = Decimal("0")  # share of one service's cost covered by credits
    regions: tuple[str, ...] = ("us-east-1",)


# provider | service | FOCUS category | SKU | usage type | unit | list price | daily qty | kind | weekday
_TABLE = """
aws | Amazon Elastic Compute Cloud | Compute | BoxUsage:m7i.large | BoxUsage:m7i.large | Hrs | 0.1008 | 24 | instance | no
aws | Amazon Simple Storage Service | Storage | TimedStorage-ByteHrs | TimedStorage-ByteHrs | GB-Mo | 0.023 | 40 | bucket | no
aws | Amazon Relational Database Service | Databases | InstanceUsage:db.r6g.large | InstanceUsage:db.r6g.large | Hrs | 0.225 | 24 | db | no
aws | AWS Lambda | Compute | Request | Request | Requests | 0.0000002 | 2500000 | function | yes
aws | Amazon CloudFront | Networking | DataTransfer-Out-Bytes | DataTransfer-Out-Bytes | GB | 0.085 | 120 | distribution | yes
aws | Amazon Bedrock | AI and Machine Learning | InputTokenCount | USE1-InputTokenCount | Tokens | 0.000003 | 4000000 | model | yes
azure | Virtual Machines | Compute | DZH318Z0BQ4L/00TJ | D4s v5 | 1 Hour | 0.192 | 24 | virtualmachines | no
azure | Storage | Storage | DZH318Z0BNVX/003H | Hot LRS Data Stored | 1 GB/Month | 0.0000245 | 30000 | storageaccounts | no
azure | SQL Database | Databases | DZH318Z0BQPS/0030 | vCore | 1 Hour | 0.5044 | 24 | servers | no
azure | Bandwidth | Networking | DZH318Z0BNZJ/0033 | Standard Data Transfer Out | 1 GB | 0.087 | 80 | publicipaddresses | yes
azure | Foundry Models | AI and Machine Learning | DZH318Z0G6X4/004D | gpt-4o Input Tokens | 1K | 0.0025 | 9000 | accounts | yes
gcp | Compute Engine | Compute | CF4E-A0C7-E3BF | N2 Instance Core running in Americas | hour | 0.031611 | 96 | instances | no
gcp | Cloud Storage | Storage | E5F0-6A5D-7BAD | Standard Storage US Multi-region | gibibyte month | 0.026 | 25 | buckets | no
gcp | Cloud SQL | Databases | 9E9A-1F1A-B3A0 | Cloud SQL for PostgreSQL: vCPU | hour | 0.0413 | 48 | instances | no
gcp | BigQuery | Analytics | 3362-E469-6BEE | Analysis | tebibyte | 6.25 | 0.8 | datasets | yes
gcp | Vertex AI | AI and Machine Learning | 6A1B-9C55-2F47 | Gemini 2.5 Flash Input Tokens | count | 0.0000003 | 8000000 | endpoints | yes
vultr | Cloud Compute | Compute | vc2-2c-4gb | Cloud Compute | hours | 0.03 | 24 | instance | no
vultr | Block Storage | Storage | block-hdd | Block Storage | hours | 0.0014 | 24 | block | no
vultr | Managed Databases | Databases | vultr-dbaas-startup-cc-1-55-2 | Managed Database | hours | 0.022 | 24 | database | no
vultr | Load Balancers | Networking | lb-small | Load Balancer | hours | 0.015 | 24 | load-balancer | no
"""


def _products() -> dict[str, tuple[Product, ...]]:
    out: dict[str, list[Product]] = {}
    for row in _TABLE.strip().splitlines():
        provider, service, category, sku, usage, unit, price, qty, kind, weekday = (
            cell.strip() for cell in row.split("|")
        )
        product = Product(
            service, category, sku, usage, unit, Decimal(price), float(qty), kind, weekday == "yes"
        )
        out.setdefault(provider, []).append(product)
    return {provider: tuple(products) for provider, products in out.items()}


PRODUCTS: dict[str, tuple[Product, ...]] = _products()

# Credits and taxes follow each provider's bills: AWS and GCP show both as their own lines;
# Azure's cost query carries neither (prepayment is not a line item); Vultr bills neither here.


def demo_accounts(customer_id: str = "demo") -> tuple[Account, ...]:
    """The accounts of the sandbox's demo customer: one per provider, Azure billed in EUR."""
    tag = sum(customer_id.encode()) % 90 + 10  # stable, distinct ids per customer
    return (
        Account(
            "aws",
            f"1234567890{tag}",
            f"{customer_id} payer",
            "USD",
            (
                SubAccount(f"2100000000{tag}", f"{customer_id}-prod"),
                SubAccount(f"2200000000{tag}", f"{customer_id}-staging"),
                SubAccount(f"2300000000{tag}", f"{customer_id}-data"),
            ),
            resources_per_product=3,
            tax_rate=Decimal("0.08"),
            credit_share=Decimal("0.25"),
            regions=("us-east-1", "eu-west-1"),
        ),
        Account(
            "azure",
            f"8608480{tag}",
            f"{customer_id} EA",
            "EUR",
            (
                SubAccount(f"3f2e1c5a-7b9d-4e21-9c11-0000000000{tag}", f"{customer_id}-prod"),
                SubAccount(f"3f2e1c5a-7b9d-4e21-9c11-1000000000{tag}", f"{customer_id}-dev"),
            ),
            discount=Decimal("0.12"),
            regions=("westeurope", "northeurope"),
        ),
        Account(
            "gcp",
            f"01A2B3-C4D5E6-F7A8{tag}",
            f"{customer_id} billing",
            "USD",
            (
                SubAccount(f"{customer_id}-web-{tag}", f"{customer_id} web"),
                SubAccount(f"{customer_id}-analytics-{tag}", f"{customer_id} analytics"),
            ),
            tax_rate=Decimal("0.0725"),
            credit_share=Decimal("0.3"),
            regions=("us-central1", "europe-west4"),
        ),
        Account(
            "vultr",
            f"cb676a46-66fd-4dfb-b839-4431{tag}000000",
            f"{customer_id} vultr",
            "USD",
            (SubAccount(f"cb676a46-66fd-4dfb-b839-4431{tag}000000", f"{customer_id}"),),
            regions=("ewr", "fra"),
        ),
    )


_TEAMS = ("platform", "data", "web", "ml")


@dataclass(frozen=True)
class Resource:
    """One billed resource of an account, with the line fields that never change per day."""

    sub: SubAccount
    product: Product
    resource_id: str
    name: str
    region: str
    first_day: date
    scale: float
    tags: Mapping[str, str] = field(hash=False)
    head: tuple[str, ...]  # the line fields before the date: provider .. sub-account name
    what: tuple[str, ...]  # the fields between the date and the quantity: service .. usage type
    description: str


def resources_of(account: Account, start: date, end: date, seed: int) -> list[Resource]:
    """The account's resources: a few per product and sub-account, some created later."""
    rng = random.Random(f"{seed}:{account.billing_account_id}:resources")
    days = (end - start).days
    out = []
    for sub in account.sub_accounts:
        for product in PRODUCTS[account.provider]:
            for index in range(account.resources_per_product):
                region = rng.choice(account.regions)
                name = f"{sub.name}-{product.resource_kind}-{index + 1}"
                late = rng.randrange(max(days // 3, 1)) if index else 0
                rng.choice(_TEAMS)  # drawn as before, so regions and scales stay as they were
                resource_id = _resource_id(account.provider, sub, product, region, name)
                tags = resource_tags(account.provider, sub, resource_id, seed)
                out.append(
                    Resource(
                        sub=sub,
                        product=product,
                        resource_id=resource_id,
                        name=name,
                        region=region,
                        first_day=start + timedelta(days=late),
                        scale=rng.uniform(0.5, 1.6),
                        tags=tags,
                        head=(
                            account.provider,
                            account.billing_account_id,
                            account.name,
                            sub.id,
                            sub.name,
                        ),
                        what=(
                            product.service_name,
                            product.service_category,
                            "Usage",
                            resource_id,
                            name,
                            region,
                            product.sku_id,
                            product.usage_type,
                        ),
                        description=f"{product.usage_type} for {name}",
                    )
                )
    return out


def resource_tags(provider: str, sub: SubAccount, resource_id: str, seed: int) -> dict[str, str]:
    """What a resource is tagged with, as tagging really goes: about one resource in five carries
    no tag at all, some have an owner team but no environment; Vultr has no tags. On Azure, whose
    tag names are case-insensitive, the dev subscription's teams write `Team`/`Env`. Drawn per
    resource id, so the products one resource bills (GCP instances) share its tags."""
    if provider == "vultr":
        return {}
    rng = random.Random(f"{seed}:{resource_id}:tags")  # apart from the bill's own draws
    draw, team = rng.random(), rng.choice(_TEAMS)
    if draw < 0.2:
        return {}
    tags = {"team": team} if draw < 0.35 else {"env": sub.name.rsplit("-", 1)[-1], "team": team}
    if provider == "azure" and sub.name.endswith("-dev"):
        return {key.capitalize(): value for key, value in tags.items()}
    return tags


def _resource_id(provider: str, sub: SubAccount, product: Product, region: str, name: str) -> str:
    kind = product.resource_kind
    if provider == "aws":
        return f"arn:aws:{kind}:{region}:{sub.id}:{kind}/{name}"
    if provider == "azure":
        return f"/subscriptions/{sub.id}/resourcegroups/rg-{sub.name}/providers/{kind}/{name}"
    if provider == "gcp":
        return f"//{kind}.googleapis.com/projects/{sub.id}/locations/{region}/{kind}/{name}"
    return f"{kind}/{name}"
