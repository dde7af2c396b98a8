"""The customers file: who we collect costs for, from which providers and billing accounts, with
credentials referenced by environment variable names or profiles, never by value."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from cost_pipelines.providers import ProviderKey

CUSTOMERS_FILE_ENV = "CUSTOMERS_FILE"
# The one rule for customer ids, in the customers file and in every API path, query and body:
# ids become Dagster partition keys, run tags and URL segments, so they stay plain.
CUSTOMER_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
CUSTOMER_ID_MAX_LENGTH = 63
CUSTOMER_ID_RULE = (
    "lowercase letters, digits, '-' or '_', starting with a letter or digit (at most 63)"
)
CUSTOMER_ID = re.compile(CUSTOMER_ID_PATTERN)
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
# Values that are plainly secrets, pasted where an environment variable NAME belongs.
_LOOKS_LIKE_SECRET = re.compile(r"^(AKIA|ASIA)[A-Z0-9]{12,}$|[/+=]|^[A-Za-z0-9]{32,}$")
_DURATION = re.compile(r"^\s*(\d+)\s*([mhd])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def _duration(value: Any) -> Any:
    """'6h', '90m', '1d' or a number of minutes; anything else is left to pydantic to reject."""
    if isinstance(value, int) and not isinstance(value, bool):
        return timedelta(minutes=value)
    if isinstance(value, str) and (match := _DURATION.match(value)):
        return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    return value


def _env_name(value: Any) -> Any:
    if isinstance(value, str) and _LOOKS_LIKE_SECRET.search(value):
        # Never echo it back: the error names the field only.
        raise ValueError("looks like a secret value; give the NAME of an environment variable")
    return value


Duration = Annotated[timedelta, BeforeValidator(_duration)]
EnvName = Annotated[str, BeforeValidator(_env_name), Field(pattern=_ENV_NAME)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class CollectionSettings(_Strict):
    """How often and how far back one provider of one customer is collected. Each provider
    class sets defaults from that provider's refresh cadence, price and restatement period."""

    min_poll_interval: Duration = Field(description="Shortest time between scheduled collections")
    trailing_days: int = Field(ge=1, le=400, description="Days before today always re-collected")
    month_close_days: int = Field(
        ge=0,
        le=31,
        description="Until this day of a month, the whole previous month is re-collected",
    )
    month_to_date: bool = Field(default=False, description="Always re-collect the month to date")


class AwsCredentials(_Strict):
    """Where boto3 finds the keys: env var names, a profile, or neither (the default chain)."""

    access_key_id_env: EnvName | None = None
    secret_access_key_env: EnvName | None = None
    session_token_env: EnvName | None = None
    profile: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.\-]{1,64}$")


class AwsExport(_Strict):
    """An AWS Data Exports FOCUS 1.2 export: s3://bucket/prefix/name/{data,metadata}/..."""

    bucket: str = Field(pattern=r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
    prefix: str = ""
    name: str = Field(min_length=1)
    region: str | None = None


class AwsConfig(CollectionSettings):
    # Cost Explorer bills $0.01 a request and refreshes ~3 times a day; AWS restates a closed
    # month for up to two weeks after its end.
    min_poll_interval: Duration = timedelta(hours=6)
    trailing_days: int = Field(default=14, ge=1, le=400)
    month_close_days: int = Field(default=15, ge=0, le=31)
    month_to_date: bool = True  # so the month-to-date total equals the AWS console's
    billing_account_id: str = Field(pattern=r"^\d{12}$", description="The payer account")
    credentials: AwsCredentials = AwsCredentials()
    region: str = "us-east-1"
    endpoint_url_env: EnvName | None = Field(
        default=None, description="Env var holding an endpoint URL (the sandbox's moto server)"
    )
    export: AwsExport | None = None

    @property
    def billing_account_ids(self) -> tuple[str, ...]:
        return (self.billing_account_id,)


class RestProviderConfig(CollectionSettings):
    """Azure, GCP and Vultr: billing accounts plus env var names of whatever their APIs need."""

    billing_account_ids: tuple[str, ...] = Field(min_length=1)
    credentials: dict[str, EnvName] = Field(default_factory=dict)
    endpoint_url_env: EnvName | None = None
    options: dict[str, str] = Field(default_factory=dict)


class AzureConfig(RestProviderConfig):
    # Cost Management data refreshes ~every 4 h and usage lands up to 72 h late; "charges might
    # change until the invoice is closed" and "can change until the fifth day of the month after
    # your current billing period ends", with "uncommon circumstances where it may take longer
    # than 72 hours" (understand-cost-mgt-data): the whole open month is re-collected, and the
    # previous one until the 10th (five days of margin past the 5th). Quotas are per tenant; a
    # run costs 5 queries per calendar month of the window plus 2, plus one per month and
    # configured tag name (see assets/azure.py).
    min_poll_interval: Duration = timedelta(hours=4)
    trailing_days: int = Field(default=5, ge=1, le=400)
    month_close_days: int = Field(default=10, ge=0, le=31)
    month_to_date: bool = True
    tag_keys: tuple[Annotated[str, Field(min_length=1, max_length=512)], ...] = Field(
        default=(),
        max_length=20,
        description="Tag names collected into Tags (one query per name and period: the Query "
        "API groups by one named tag at a time); case-insensitive, stored lowercase",
    )


class GcpConfig(RestProviderConfig):
    # The BigQuery billing export lands several times a day and backfills for days; Google posts
    # corrections and late-monetized usage weeks later, dated to the original usage day. A run
    # may rewrite any day of the last `trailing_days` (the restatement horizon), but re-reads
    # only the `recent_days` plus the days the export_time watermark shows as changed.
    min_poll_interval: Duration = timedelta(hours=1)
    trailing_days: int = Field(
        default=92,
        ge=1,
        le=400,
        description="Restatement horizon: a usage day this recent with rows exported after the "
        "watermark is re-collected; changes to older days are counted and reported",
    )
    month_close_days: int = Field(default=0, ge=0, le=31)
    recent_days: int = Field(
        default=5, ge=1, le=400, description="Days before today re-read on every run"
    )
    watermark_overlap: Duration = Field(
        default=timedelta(hours=3),
        description="How far before the last collection's time export_time is searched again "
        "(covers a run's duration and the export's commit lag)",
    )


class VultrConfig(RestProviderConfig):
    # Free, fast API; an invoice period is a month, the previous one can still change.
    min_poll_interval: Duration = timedelta(hours=1)
    trailing_days: int = Field(default=1, ge=1, le=400)
    month_close_days: int = Field(default=31, ge=0, le=31)
    month_to_date: bool = True


ProviderConfig = AwsConfig | AzureConfig | GcpConfig | VultrConfig


class _Providers(_Strict):
    aws: AwsConfig | None = None
    azure: AzureConfig | None = None
    gcp: GcpConfig | None = None
    vultr: VultrConfig | None = None


class Budget(_Strict):
    """A monthly budget in one currency, over all of the customer's providers or one of them;
    `thresholds` are the percentages of it that raise an alert when reached."""

    name: str = Field(default="", pattern=r"^[A-Za-z0-9_.\-]{0,64}$")
    amount: Decimal = Field(gt=0, max_digits=30, decimal_places=12)
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code of the bills")
    provider: ProviderKey | None = Field(default=None, description="Unset: all providers")
    thresholds: tuple[int, ...] = Field(default=(50, 80, 100), min_length=1)

    @field_validator("thresholds")
    @classmethod
    def _percentages(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(not 1 <= t <= 1000 for t in value):
            raise ValueError("each threshold is a percentage from 1 to 1000")
        return tuple(sorted(set(value)))

    @property
    def id(self) -> str:
        """The budget's name, or `<provider|all>-<currency>`."""
        return self.name or f"{self.provider or 'all'}-{self.currency}"


class Alerts(_Strict):
    """Where alert events go: the NAME of the environment variable holding the webhook URL
    (a URL often carries a token, so it is never written in this file)."""

    webhook_url_env: EnvName


class RestatementThreshold(_Strict):
    """When a restatement is reported (materialization metadata, alert events): a day that had
    ended when it was last collected, whose BilledCost changed by at least `min_amount` (in its
    billing currency) and by at least `min_percent` of its previous amount (a change from
    nothing always counts as relative enough). Every change is recorded in the ledger anyway."""

    min_amount: Decimal = Field(default=Decimal("1"), ge=0, max_digits=30, decimal_places=12)
    min_percent: Decimal = Field(default=Decimal("1"), ge=0, max_digits=9, decimal_places=4)


class AwsRecommendationSettings(_Strict):
    """Which Cost Explorer purchase recommendations to ask for. Each request costs $0.01 (every
    page too): one per Savings Plans type and one per reservation service, once per interval."""

    savings_plans_types: tuple[Literal["COMPUTE_SP", "EC2_INSTANCE_SP", "SAGEMAKER_SP"], ...] = (
        "COMPUTE_SP",
    )
    reservation_services: tuple[str, ...] = (
        "Amazon Elastic Compute Cloud - Compute",
        "Amazon Relational Database Service",
    )
    term: Literal["ONE_YEAR", "THREE_YEARS"] = "ONE_YEAR"
    payment_option: Literal["NO_UPFRONT", "PARTIAL_UPFRONT", "ALL_UPFRONT"] = "NO_UPFRONT"
    lookback: Literal["SEVEN_DAYS", "THIRTY_DAYS", "SIXTY_DAYS"] = "THIRTY_DAYS"
    endpoint_url_env: EnvName | None = Field(
        default=None,
        description="Env var holding a Cost Explorer endpoint URL for these calls (the sandbox's)",
    )


class AzureRecommendationSettings(_Strict):
    """The Consumption reservation recommendations asked for, per billing account scope."""

    scope: Literal["Single", "Shared"] = "Shared"
    look_back: Literal["Last7Days", "Last30Days", "Last60Days"] = "Last30Days"
    term: Literal["P1Y", "P3Y"] = "P1Y"


class GcpRecommendationSettings(_Strict):
    """The Recommender API is read only where the customer granted access (the service account
    needs recommender.commitmentUtilizationInsights / computeCommitments viewer roles): the
    projects and locations to ask are listed here; without them none are asked."""

    projects: tuple[str, ...] = ()
    locations: tuple[str, ...] = ()


class RecommendationSettings(_Strict):
    """How recommendations are made for one customer: how often the providers are asked (their
    figures change daily at most, and Cost Explorer bills every request) and the thresholds of
    our own rules over the stored costs."""

    provider_interval: Duration = Field(
        default=timedelta(days=1), description="Shortest time between asking the providers"
    )
    aws: AwsRecommendationSettings = AwsRecommendationSettings()
    azure: AzureRecommendationSettings = AzureRecommendationSettings()
    gcp: GcpRecommendationSettings = GcpRecommendationSettings()
    idle_days: int = Field(
        default=7, ge=1, le=90, description="Days a resource costs without usage or compute"
    )
    utilisation_days: int = Field(default=30, ge=1, le=90, description="Days of commitment fees")
    min_utilisation: Decimal = Field(
        default=Decimal("0.8"), gt=0, le=1, description="Commitments used less than this"
    )
    growth_weeks: int = Field(default=4, ge=2, le=26, description="Weeks of growth compared")
    growth_margin: Decimal = Field(
        default=Decimal("0.1"),
        ge=0,
        le=10,
        description="How much faster than the customer's total a service grows each week",
    )
    min_monthly_saving: Decimal = Field(
        default=Decimal("1"), ge=0, description="Own recommendations saving less are not listed"
    )


class _CustomerEntry(_Strict):
    name: str = ""
    providers: _Providers
    budgets: tuple[Budget, ...] = ()
    alerts: Alerts | None = None
    restatements: RestatementThreshold = RestatementThreshold()
    recommendations: RecommendationSettings = RecommendationSettings()

    @model_validator(mode="after")
    def _distinct_budgets(self) -> _CustomerEntry:
        ids = [budget.id for budget in self.budgets]
        if len(ids) != len(set(ids)):
            raise ValueError("budgets: two budgets have the same name (or provider and currency)")
        return self


@dataclass(frozen=True)
class Customer:
    """One customer and the providers we collect for it."""

    id: str
    name: str
    providers: dict[str, ProviderConfig]
    budgets: tuple[Budget, ...] = ()
    alerts: Alerts | None = None
    restatements: RestatementThreshold = field(default_factory=RestatementThreshold)
    recommendations: RecommendationSettings = field(default_factory=RecommendationSettings)


@dataclass
class CustomerBook:
    """The customers that loaded, and one readable error per entry that did not."""

    path: Path | None
    customers: dict[str, Customer] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    invalid: dict[str, list[str]] = field(default_factory=dict)
    # False when the file could not be read or has no `customers:` mapping: then the book says
    # nothing about who was removed (the partitions of the customers it held are kept).
    readable: bool = True

    @property
    def partition_keys(self) -> list[str]:
        """Every customer id, the invalid ones too: their runs then fail naming the bad field."""
        return sorted({*self.customers, *self.invalid})


def _field_errors(source: str, customer_id: str, exc: ValidationError) -> list[str]:
    out = []
    for error in exc.errors(include_input=False, include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "(entry)"
        out.append(f"{source}: customer {customer_id!r}: {where}: {error['msg']}")
    return out


def parse_customers(document: Any, source: str) -> CustomerBook:
    """Validate a loaded YAML document entry by entry; a bad entry never hides the good ones."""
    book = CustomerBook(path=Path(source))
    entries = document.get("customers") if isinstance(document, dict) else None
    if not isinstance(entries, dict):
        book.errors.append(f"{source}: expected a top-level 'customers:' mapping of id -> entry")
        book.readable = False
        return book
    for raw_id, entry in entries.items():
        customer_id = str(raw_id)
        if not CUSTOMER_ID.match(customer_id):
            book.errors.append(f"{source}: customer {customer_id!r}: id must be {CUSTOMER_ID_RULE}")
            continue
        try:
            parsed = _CustomerEntry.model_validate(entry)
        except ValidationError as exc:
            problems = _field_errors(source, customer_id, exc)
            book.errors.extend(problems)
            book.invalid[customer_id] = problems
            continue
        providers = {k: v for k, v in parsed.providers if v is not None}
        book.customers[customer_id] = Customer(
            customer_id,
            parsed.name or customer_id,
            providers,
            budgets=parsed.budgets,
            alerts=parsed.alerts,
            restatements=parsed.restatements,
            recommendations=parsed.recommendations,
        )
    return book


def load_customers(path: str | Path) -> CustomerBook:
    """Read and validate the customers file; unreadable files give an empty book with the reason."""
    source = str(path)
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        errors = [f"{source}: cannot read: {exc.strerror}"]
        return CustomerBook(Path(path), errors=errors, readable=False)
    except yaml.YAMLError as exc:
        errors = [f"{source}: not valid YAML: {exc}"]
        return CustomerBook(Path(path), errors=errors, readable=False)
    return parse_customers(document, source)


def customers_path_from_env() -> Path | None:
    value = os.environ.get(CUSTOMERS_FILE_ENV)
    return Path(value) if value else None


def load_customers_from_env() -> CustomerBook:
    """The book CUSTOMERS_FILE points at; empty (with a reason) when it is unset."""
    path = customers_path_from_env()
    if path is None:
        errors = [f"{CUSTOMERS_FILE_ENV} is not set: no customers"]
        return CustomerBook(None, errors=errors, readable=False)
    return load_customers(path)
