"""What clients of the allocation reads see: cost per tag value, the tag keys to choose from, and
cost per billing account and sub-account. Amounts are exact decimals sent as JSON strings."""

from __future__ import annotations

from pydantic import BaseModel, Field

from cost_api.schemas.costs import CostScope, CurrencyTotal, Money, Percent, PeriodPublic

SHARE_DENOMINATOR = (
    "Of this currency's net total for the period: every line of the answer's providers, credits "
    "and refunds counted with their sign, so the shares of one currency add up to 100 (up to "
    "rounding to 2 decimals) and a credit has a negative share"
)


class TagValueCost(BaseModel):
    value: str | None = Field(
        description="The tag's value; null for the untagged bucket (lines without the key). A "
        'key present with an empty value is the value "", not untagged'
    )
    untagged: bool = Field(description="True for the lines that do not carry the key")
    currency: str
    amount: Money
    lines: int
    share_percent: Percent = Field(description=SHARE_DENOMINATOR)


class OtherValues(BaseModel):
    """The values past `limit` in one currency, summed, so the shown buckets add up."""

    currency: str
    values: int = Field(description="How many tag values are summed here")
    amount: Money
    lines: int
    share_percent: Percent = Field(description=SHARE_DENOMINATOR)


class TagCosts(CostScope):
    """Cost per value of one tag key, per currency, with an explicit untagged bucket."""

    period: PeriodPublic
    key: str = Field(description="The tag key as asked")
    totals: list[CurrencyTotal] = Field(description="Each currency's net total: the denominator")
    data: list[TagValueCost] = Field(
        description="Per currency: the untagged bucket (when there is untagged cost), then the "
        "`limit` largest values, biggest first"
    )
    other_values: list[OtherValues] = Field(
        description="Per currency, the values past `limit` summed (absent when none were cut)"
    )


class TagKeyCurrency(BaseModel):
    currency: str
    amount: Money = Field(description="Cost of the lines that carry the key")
    lines: int
    share_percent: Percent = Field(
        description="Of this currency's net total for the period (credits with their sign, so "
        "tagged usage beside untagged credits can exceed 100)"
    )


class TagKeySeen(BaseModel):
    key: str = Field(
        description="As stored: AWS and GCP as the provider writes it, Azure lowercase"
    )
    lines: int = Field(description="Lines of the period that carry the key, every currency")
    costs: list[TagKeyCurrency]


class TagKeys(CostScope):
    """The tag keys the period's lines carry, most used first, to choose a `by-tag` key from."""

    period: PeriodPublic
    lines: int = Field(description="Every line of the period, tagged or not")
    totals: list[CurrencyTotal]
    data: list[TagKeySeen]


class SubAccountCost(BaseModel):
    sub_account_id: str = Field(
        description="AWS linked account, Azure subscription, GCP project, Vultr account; empty "
        "for cost the source books on the billing account itself (an Azure reservation purchase)"
    )
    sub_account_name: str = Field(
        description="The newest non-empty name the source gave; '' if none"
    )
    amount: Money
    lines: int
    share_percent: Percent = Field(description=SHARE_DENOMINATOR)
    share_of_account_percent: Percent = Field(
        description="Of its billing account's net total in this currency"
    )


class AccountCost(BaseModel):
    provider: str
    billing_account_id: str
    billing_account_name: str = Field(
        description="The newest non-empty name the source gave; '' where the source has none "
        "(GCP's billing export and Azure's query API do not name the billing account)"
    )
    currency: str
    amount: Money
    lines: int
    share_percent: Percent = Field(description=SHARE_DENOMINATOR)
    sub_accounts: list[SubAccountCost] = Field(description="Biggest first")


class AccountCosts(CostScope):
    """Cost per billing account and its sub-accounts, per currency."""

    period: PeriodPublic
    totals: list[CurrencyTotal] = Field(description="Each currency's net total: the denominator")
    data: list[AccountCost] = Field(description="Per currency, biggest account first")
