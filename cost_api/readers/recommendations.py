"""RecommendationsReader: the latest published result of each recommendation source for one
customer (`analytics_runs` pointers: one per provider's answer, one for our rules), with the
first sighting of each recommendation from the history kept in the same table."""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from cost_api.params import ProviderChoice, provider_members
from cost_api.readers.clickhouse_reader import ClickHouseReader
from cost_api.schemas.costs import CurrencyAmount
from cost_api.schemas.recommendations import (
    RecommendationPublic,
    Recommendations,
    RecommendationSort,
    RecommendationSourcePublic,
)
from cost_pipelines.assets.recommendations.model import OWN_ASSET, PROVIDER_ASSET

PROVIDER_SOURCES = {
    "aws": "aws_cost_explorer",
    "azure": "azure_consumption",
    "gcp": "gcp_recommender",
}
NO_SOURCE = {"vultr": "Vultr offers no commitment or purchase recommendation API"}

RUNS_SQL = """
SELECT asset, argMax(run_id, computed_at), max(computed_at), argMax(as_of, computed_at)
FROM analytics_runs
WHERE customer_id = {customer_id:String} AND asset IN {assets:Array(String)}
GROUP BY asset
"""
# The previous run of each source: its recommendations the latest run no longer makes are
# listed too, as no longer valid (a deleted idle resource, a commitment now well used).
PREVIOUS_SQL = """
SELECT asset, argMax(run_id, computed_at)
FROM cost_recommendations
WHERE customer_id = {customer_id:String} AND asset IN {assets:Array(String)}
  AND run_id NOT IN {latest:Array(String)}
GROUP BY asset
"""
# Still-valid recommendations first, then by saving times `direction` (1: largest first, -1:
# smallest first), so both orders are one text with bound values.
ROWS_SQL = """
SELECT r.key, r.asset, r.provider, r.kind, r.source, r.source_id, r.scope, r.resource_id, r.term,
       r.payment_option, r.lookback, r.currency, r.monthly_saving, r.upfront_cost,
       r.break_even_months, r.valid AND r.run_id IN {latest:Array(String)} AS still_valid,
       r.fetched_at, r.evidence, r.computed_at, f.first_seen
FROM cost_recommendations AS r
LEFT JOIN (
    SELECT key, min(computed_at) AS first_seen FROM cost_recommendations
    WHERE customer_id = {customer_id:String} GROUP BY key
) AS f ON f.key = r.key
WHERE r.customer_id = {customer_id:String} AND r.provider IN {providers:Array(String)}
  AND (r.run_id IN {latest:Array(String)}
       OR (r.run_id IN {previous:Array(String)} AND r.key NOT IN (
           SELECT key FROM cost_recommendations
           WHERE customer_id = {customer_id:String} AND run_id IN {latest:Array(String)})))
ORDER BY still_valid DESC, r.monthly_saving * {direction:Int8} DESC, r.key
LIMIT {limit:UInt32} OFFSET {offset:UInt32}
"""
COUNT_SQL = """
SELECT count() FROM cost_recommendations AS r
WHERE r.customer_id = {customer_id:String} AND r.provider IN {providers:Array(String)}
  AND (r.run_id IN {latest:Array(String)}
       OR (r.run_id IN {previous:Array(String)} AND r.key NOT IN (
           SELECT key FROM cost_recommendations
           WHERE customer_id = {customer_id:String} AND run_id IN {latest:Array(String)})))
"""
DIRECTION = {RecommendationSort.saving_desc: 1, RecommendationSort.saving_asc: -1}
TOTALS_VALID_SQL = """
SELECT currency, sum(monthly_saving)
FROM cost_recommendations
WHERE customer_id = {customer_id:String} AND run_id IN {latest:Array(String)}
  AND provider IN {providers:Array(String)} AND valid
GROUP BY currency ORDER BY currency
"""


def _public(row: Sequence[Any]) -> RecommendationPublic:
    (key, asset, provider, kind, source, source_id, scope, resource_id, term, payment) = row[:10]
    (lookback, currency, saving, upfront, break_even, valid, fetched, evidence) = row[10:18]
    computed_at, first_seen = row[18:]
    return RecommendationPublic(
        id=key,
        kind=kind,
        origin="own" if asset == OWN_ASSET else "provider",
        source=source,
        source_id=source_id,
        provider=provider,
        scope=scope,
        resource_id=resource_id,
        term=term,
        payment_option=payment,
        lookback=lookback,
        estimated_monthly_saving=CurrencyAmount(currency=currency, amount=saving),
        upfront_cost=upfront,
        break_even_months=break_even,
        evidence=json.loads(evidence),
        first_seen=first_seen,
        computed_at=computed_at,
        fetched_at=fetched,
        still_valid=bool(valid),
    )


class RecommendationsReader(ClickHouseReader):
    def recommendations(
        self,
        customer_id: str,
        provider: ProviderChoice,
        sort: RecommendationSort,
        limit: int,
        offset: int,
    ) -> Recommendations:
        providers = provider_members(provider)
        assets = [OWN_ASSET, *(f"{PROVIDER_ASSET}.{p}" for p in providers)]
        runs = {
            str(asset): (str(run_id), computed_at, as_of)
            for asset, run_id, computed_at, as_of in self.rows(
                RUNS_SQL, {"customer_id": customer_id, "assets": assets}
            )
        }
        sources = self._sources(providers, runs)
        latest = [run for run, _, _ in runs.values()]
        params: dict[str, Any] = {
            "customer_id": customer_id,
            "latest": latest,
            "providers": list(providers),
        }
        data: list[RecommendationPublic] = []
        count = 0
        totals: list[CurrencyAmount] = []
        if runs:
            found = {"customer_id": customer_id, "assets": assets, "latest": latest}
            params["previous"] = [str(run) for _, run in self.rows(PREVIOUS_SQL, found)]
            page = {**params, "limit": limit, "offset": offset, "direction": DIRECTION[sort]}
            data = [_public(row) for row in self.rows(ROWS_SQL, page)]
            [[count]] = self.rows(COUNT_SQL, params)
            totals = [
                CurrencyAmount(currency=c, amount=Decimal(a))
                for c, a in self.rows(TOTALS_VALID_SQL, params)
            ]
        own = runs.get(OWN_ASSET)
        return Recommendations(
            customer_id=customer_id,
            provider=provider,
            as_of=own[2] if own else None,
            sort=sort,
            sources=sources,
            total_monthly_saving=totals,
            count=count,
            next_offset=offset + limit if offset + limit < count else None,
            data=data,
        )

    @staticmethod
    def _sources(
        providers: Sequence[str], runs: dict[str, tuple[str, Any, Any]]
    ) -> list[RecommendationSourcePublic]:
        out = []
        for provider in providers:
            if provider in NO_SOURCE:
                out.append(
                    RecommendationSourcePublic(
                        provider=provider,
                        source="none",
                        status=NO_SOURCE[provider] + ": only our own recommendations",
                        computed_at=None,
                    )
                )
                continue
            run = runs.get(f"{PROVIDER_ASSET}.{provider}")
            out.append(
                RecommendationSourcePublic(
                    provider=provider,
                    source=PROVIDER_SOURCES[provider],
                    status="asked"
                    if run
                    else "never asked for this customer (not collected, "
                    "or no access granted: see provider_recommendations in Dagster)",
                    computed_at=run[1] if run else None,
                )
            )
        own = runs.get(OWN_ASSET)
        out.append(
            RecommendationSourcePublic(
                provider="all",
                source="cost_pipelines",
                status="computed" if own else "not computed yet",
                computed_at=own[1] if own else None,
            )
        )
        return out
