"""AllocationReader: cost per tag value, the tag keys seen, and cost per billing account and
sub-account. Like every cost read: one fixed SQL text per read over `costs_current(customer_id=
...)` only, every value (the tag key, the cost column) bound server-side.

Tag keys. FOCUS Tags are key/value pairs as each provider writes them. AWS tag keys are case
sensitive (`Team` and `team` are two cost allocation tags) and GCP label keys are lowercase by
rule: both are matched exactly. Azure tag names are case-insensitive (Azure Resource Manager
"tag names are case-insensitive for operations"), so the collector stores them lowercased and a
key asked for Azure lines is lowercased before it is matched. Values are never altered.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from cost_api.params import Period
from cost_api.readers.cost_reader import CostReader
from cost_api.readers.shaping import ZERO, percent
from cost_api.schemas.allocation import (
    AccountCost,
    AccountCosts,
    OtherValues,
    SubAccountCost,
    TagCosts,
    TagKeyCurrency,
    TagKeys,
    TagKeySeen,
    TagValueCost,
)
from cost_api.schemas.costs import CurrencyTotal, PeriodPublic

# Untagged first (tagged = false), then values biggest first: LIMIT BY keeps the untagged bucket
# and at least `limit` values; the window sums are over every bucket, so cut values are counted.
BY_TAG_SQL = """
SELECT BillingCurrency, tagged, value, sum(cost) AS amount, count() AS lines,
       sum(amount) OVER (PARTITION BY BillingCurrency) AS currency_total,
       sum(lines) OVER (PARTITION BY BillingCurrency) AS currency_lines,
       count() OVER (PARTITION BY BillingCurrency) AS buckets
FROM (
    SELECT BillingCurrency, {metric:Identifier} AS cost,
           if(provider = 'azure', {folded_key:String}, {key:String}) AS wanted,
           mapContains(Tags, wanted) AS tagged, if(tagged, Tags[wanted], '') AS value
    FROM costs_current(customer_id = {customer_id:String})
    WHERE provider IN {providers:Array(String)}
      AND ChargePeriodStart >= {start:DateTime('UTC')} AND ChargePeriodStart < {end:DateTime('UTC')}
)
GROUP BY BillingCurrency, tagged, value
ORDER BY BillingCurrency, tagged, amount DESC, value
LIMIT {limit_with_untagged:UInt32} BY BillingCurrency
"""

TAG_KEYS_SQL = """
SELECT key, BillingCurrency, sum(cost), count()
FROM (
    SELECT arrayJoin(mapKeys(Tags)) AS key, BillingCurrency, {metric:Identifier} AS cost
    FROM costs_current(customer_id = {customer_id:String})
    WHERE provider IN {providers:Array(String)}
      AND ChargePeriodStart >= {start:DateTime('UTC')} AND ChargePeriodStart < {end:DateTime('UTC')}
)
GROUP BY key, BillingCurrency
"""

TOTALS_SQL = """
SELECT BillingCurrency, sum({metric:Identifier}), count()
FROM costs_current(customer_id = {customer_id:String})
WHERE provider IN {providers:Array(String)}
  AND ChargePeriodStart >= {start:DateTime('UTC')} AND ChargePeriodStart < {end:DateTime('UTC')}
GROUP BY BillingCurrency
ORDER BY BillingCurrency
"""

# A name can change (an account renamed) or be missing on some lines (a source without names
# beside one with them): the newest non-empty one is shown.
BY_ACCOUNT_SQL = """
SELECT provider, BillingAccountId, SubAccountId, BillingCurrency,
       argMaxIf(BillingAccountName, ChargePeriodStart, BillingAccountName != ''),
       maxIf(ChargePeriodStart, BillingAccountName != ''),
       argMaxIf(SubAccountName, ChargePeriodStart, SubAccountName != ''),
       maxIf(ChargePeriodStart, SubAccountName != ''),
       sum({metric:Identifier}), count()
FROM costs_current(customer_id = {customer_id:String})
WHERE provider IN {providers:Array(String)}
  AND ChargePeriodStart >= {start:DateTime('UTC')} AND ChargePeriodStart < {end:DateTime('UTC')}
GROUP BY provider, BillingAccountId, SubAccountId, BillingCurrency
"""


def _totals(rows: Any) -> tuple[dict[str, Decimal], list[CurrencyTotal]]:
    listed = [CurrencyTotal(currency=c, amount=a, lines=int(n)) for c, a, n in rows]
    return {t.currency: t.amount for t in listed}, listed


class AllocationReader(CostReader):
    """Allocation reads of one customer and provider (or all), in the chosen cost column."""

    def get_cost_by_tag(self, period: Period, key: str, *, limit: int) -> TagCosts:
        """Cost per value of `key` and the untagged bucket, per currency; the values past
        `limit` summed per currency."""
        self.require_metric(period)
        rows = self.rows(
            BY_TAG_SQL,
            self._bind(period, key=key, folded_key=key.lower(), limit_with_untagged=limit + 1),
        )
        data: list[TagValueCost] = []
        shown: dict[str, list[TagValueCost]] = defaultdict(list)
        totals: dict[str, tuple[Decimal, int, int]] = {}
        for currency, tagged, value, amount, lines, total, total_lines, buckets in rows:
            totals[currency] = (total, int(total_lines), int(buckets))
            values = [b for b in shown[currency] if not b.untagged]
            if tagged and len(values) >= limit:
                continue  # the extra row LIMIT BY lets through when there is no untagged cost
            bucket = TagValueCost(
                value=value if tagged else None,
                untagged=not tagged,
                currency=currency,
                amount=amount,
                lines=int(lines),
                share_percent=percent(amount, total),
            )
            shown[currency].append(bucket)
            data.append(bucket)
        others = []
        for currency, (total, total_lines, buckets) in sorted(totals.items()):
            kept = shown[currency]
            if len(kept) == buckets:
                continue
            amount = total - sum((b.amount for b in kept), ZERO)
            others.append(
                OtherValues(
                    currency=currency,
                    values=buckets - len(kept),
                    amount=amount,
                    lines=total_lines - sum(b.lines for b in kept),
                    share_percent=percent(amount, total),
                )
            )
        return TagCosts(
            **self._scope(),
            period=PeriodPublic.of(period),
            key=key,
            totals=[
                CurrencyTotal(currency=c, amount=t, lines=n)
                for c, (t, n, _) in sorted(totals.items())
            ],
            data=data,
            other_values=others,
        )

    def get_tag_keys(self, period: Period, *, limit: int) -> TagKeys:
        """The `limit` tag keys carried by the most lines, with their cost per currency."""
        self.require_metric(period)
        amounts, totals = _totals(self.rows(TOTALS_SQL, self._bind(period)))
        per_key: dict[str, list[TagKeyCurrency]] = defaultdict(list)
        for key, currency, amount, lines in self.rows(TAG_KEYS_SQL, self._bind(period)):
            per_key[key].append(
                TagKeyCurrency(
                    currency=currency,
                    amount=amount,
                    lines=int(lines),
                    share_percent=percent(amount, amounts[currency]),
                )
            )
        keys = [
            TagKeySeen(
                key=key,
                lines=sum(c.lines for c in costs),
                costs=sorted(costs, key=lambda c: c.currency),
            )
            for key, costs in per_key.items()
        ]
        keys.sort(key=lambda k: (-k.lines, k.key))
        return TagKeys(
            **self._scope(),
            period=PeriodPublic.of(period),
            lines=sum(t.lines for t in totals),
            totals=totals,
            data=keys[:limit],
        )

    def get_cost_by_account(self, period: Period) -> AccountCosts:
        """Cost per billing account, with its sub-accounts, per currency."""
        self.require_metric(period)
        rows = self.rows(BY_ACCOUNT_SQL, self._bind(period))
        currency_totals: dict[str, Decimal] = defaultdict(lambda: ZERO)
        currency_lines: dict[str, int] = defaultdict(int)
        accounts: dict[tuple[str, str, str], list[Any]] = defaultdict(list)
        named: dict[tuple[str, ...], tuple[Any, str]] = {}
        for provider, account, sub, currency, name, at, sub_name, sub_at, amount, lines in rows:
            currency_totals[currency] += amount
            currency_lines[currency] += int(lines)
            accounts[(currency, provider, account)].append((sub, amount, int(lines)))
            for key, found, when in (
                ((provider, account), name, at),
                ((provider, account, sub), sub_name, sub_at),
            ):
                if found and (key not in named or named[key] < (when, found)):
                    named[key] = (when, found)
        data = []
        for (currency, provider, account), subs in accounts.items():
            amount = sum((a for _, a, _ in subs), ZERO)
            total = currency_totals[currency]
            subs.sort(key=lambda s: (-s[1], s[0]))
            data.append(
                AccountCost(
                    provider=provider,
                    billing_account_id=account,
                    billing_account_name=named.get((provider, account), (None, ""))[1],
                    currency=currency,
                    amount=amount,
                    lines=sum(n for _, _, n in subs),
                    share_percent=percent(amount, total),
                    sub_accounts=[
                        SubAccountCost(
                            sub_account_id=sub,
                            sub_account_name=named.get((provider, account, sub), (None, ""))[1],
                            amount=sub_amount,
                            lines=lines,
                            share_percent=percent(sub_amount, total),
                            share_of_account_percent=percent(sub_amount, amount),
                        )
                        for sub, sub_amount, lines in subs
                    ],
                )
            )
        data.sort(key=lambda a: (a.currency, -a.amount, a.provider, a.billing_account_id))
        return AccountCosts(
            **self._scope(),
            period=PeriodPublic.of(period),
            totals=[
                CurrencyTotal(currency=c, amount=currency_totals[c], lines=currency_lines[c])
                for c in sorted(currency_totals)
            ],
            data=data,
        )
