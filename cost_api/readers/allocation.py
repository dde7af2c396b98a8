"""AllocationReader: cost per tag value, the tag keys seen, and cost per billing account and
sub-account. Like every cost read: two fixed SQL texts per read (native and converted, see
readers/conversion.py) over `costs_current(customer_id=...)` and `exchange_rates` only, every
value (the tag key, the cost column, the target currency) bound server-side. Each answer carries
the completeness of its providers and, with `currency=`, the rates used.

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
from cost_api.readers import conversion
from cost_api.readers.cost_reader import PERIOD_WHERE, TOTAL_SQL, CostReader
from cost_api.readers.shaping import ZERO, percent, period_days
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
BY_TAG_SQL = conversion.texts(
    """
SELECT currency, tagged, value, @MONEY(sum(amount))@ AS bucket_amount, count() AS lines,
       sum(bucket_amount) OVER (PARTITION BY currency) AS currency_total,
       sum(lines) OVER (PARTITION BY currency) AS currency_lines,
       count() OVER (PARTITION BY currency) AS buckets
FROM (
    SELECT currency, amount,
           if(provider = 'azure', {folded_key:String}, {key:String}) AS wanted,
           mapContains(Tags, wanted) AS tagged, if(tagged, Tags[wanted], '') AS value
    FROM @LINES@
)
GROUP BY currency, tagged, value
ORDER BY currency, tagged, bucket_amount DESC, value
LIMIT {limit_with_untagged:UInt32} BY currency
""",
    PERIOD_WHERE,
)

TAG_KEYS_SQL = conversion.texts(
    """
SELECT key, currency, @MONEY(sum(amount))@, count()
FROM (
    SELECT arrayJoin(mapKeys(Tags)) AS key, currency, amount
    FROM @LINES@
)
GROUP BY key, currency
""",
    PERIOD_WHERE,
)

# A name can change (an account renamed) or be missing on some lines (a source without names
# beside one with them): the newest non-empty one is shown.
BY_ACCOUNT_SQL = conversion.texts(
    """
SELECT provider, BillingAccountId, SubAccountId, currency,
       argMaxIf(BillingAccountName, ChargePeriodStart, BillingAccountName != ''),
       maxIf(ChargePeriodStart, BillingAccountName != ''),
       argMaxIf(SubAccountName, ChargePeriodStart, SubAccountName != ''),
       maxIf(ChargePeriodStart, SubAccountName != ''),
       @MONEY(sum(amount))@, count()
FROM @LINES@
GROUP BY provider, BillingAccountId, SubAccountId, currency
""",
    PERIOD_WHERE,
)


def _totals(rows: Any) -> tuple[dict[str, Decimal], list[CurrencyTotal]]:
    listed = [CurrencyTotal(currency=c, amount=a, lines=int(n)) for c, a, n in rows]
    return {t.currency: t.amount for t in listed}, listed


class AllocationReader(CostReader):
    """Allocation reads of one customer and provider (or all), in the chosen cost column."""

    def get_cost_by_tag(self, period: Period, key: str, *, limit: int) -> TagCosts:
        """Cost per value of `key` and the untagged bucket, per currency; the values past
        `limit` summed per currency."""
        self.prefetch_state()
        self.require_metric(period)
        bound, converted = self._converted(
            PERIOD_WHERE,
            period,
            self._bind(period, key=key, folded_key=key.lower(), limit_with_untagged=limit + 1),
        )
        rows = self.rows(BY_TAG_SQL[converted is not None], bound)
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
            completeness=self.data_state(period).completeness(period_days(period)),
            conversion=converted,
        )

    def get_tag_keys(self, period: Period, *, limit: int) -> TagKeys:
        """The `limit` tag keys carried by the most lines, with their cost per currency."""
        self.prefetch_state()
        self.require_metric(period)
        values, converted = self._converted(PERIOD_WHERE, period, self._bind(period))
        amounts, totals = _totals(self.rows(TOTAL_SQL[converted is not None], values))
        per_key: dict[str, list[TagKeyCurrency]] = defaultdict(list)
        for key, currency, amount, lines in self.rows(TAG_KEYS_SQL[converted is not None], values):
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
            completeness=self.data_state(period).completeness(period_days(period)),
            conversion=converted,
        )

    def get_cost_by_account(self, period: Period) -> AccountCosts:
        """Cost per billing account, with its sub-accounts, per currency."""
        self.prefetch_state()
        self.require_metric(period)
        values, converted = self._converted(PERIOD_WHERE, period, self._bind(period))
        rows = self.rows(BY_ACCOUNT_SQL[converted is not None], values)
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
            completeness=self.data_state(period).completeness(period_days(period)),
            conversion=converted,
        )
