"""GCP committed-use discount recommendations from the Recommender API
(`google.compute.commitment.UsageCommitmentRecommender`), for the projects and locations the
customer granted access to (customers file `recommendations.gcp`). A recommendation's
`primaryImpact.costProjection.cost` is Money (units + nanos) over `duration`: negative is a
saving; the monthly saving is -cost x 30 days / duration. `stateInfo.state` other than ACTIVE
(claimed, succeeded, failed, dismissed) means it is no longer to act on."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from cost_pipelines.assets.recommendations.model import Recommendation, amount
from cost_pipelines.customers import GcpConfig, GcpRecommendationSettings
from cost_pipelines.resources.gcp import GcpSession
from cost_pipelines.resources.rest import endpoint, exact_json
from cost_pipelines.resources.retry import Paginator

SOURCE = "gcp_recommender"
RECOMMENDER = "google.compute.commitment.UsageCommitmentRecommender"
RECOMMENDER_URL = "https://recommender.googleapis.com"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
MONTH_SECONDS = Decimal(30 * 86400)
NANOS = Decimal("1e-9")


def money(value: dict[str, Any]) -> tuple[Decimal, str]:
    """google.type.Money: units (int64 as a string) + nanos (same sign), exactly."""
    units = amount(value.get("units", "0"), "units")
    nanos = amount(value.get("nanos", 0), "nanos") * NANOS
    return units + nanos, str(value.get("currencyCode") or "USD")


def seconds(duration: str) -> Decimal:
    """A protobuf Duration in JSON ("2592000s", "86400.5s")."""
    text = str(duration or "").strip()
    if not text.endswith("s"):
        raise ValueError(f"costProjection.duration is not a duration: {text[:40]!r}")
    return amount(text[:-1], "costProjection.duration")


def _recommendation(item: dict[str, Any], project: str, location: str) -> Recommendation:
    projection = item.get("primaryImpact", {}).get("costProjection", {})
    cost, currency = money(projection.get("cost", {}))
    period = seconds(projection.get("duration", "2592000s"))
    state = str(item.get("stateInfo", {}).get("state") or "ACTIVE")
    name = str(item["name"])
    refreshed = str(item.get("lastRefreshTime") or "")
    try:
        fetched = datetime.fromisoformat(refreshed.replace("Z", "+00:00"))
    except ValueError:
        fetched = datetime.now(UTC)
    subtype = str(item.get("recommenderSubtype") or "")
    return Recommendation(
        key=f"gcp:committed_use_discount:{project}:{location}:{subtype}:"
        f"{item.get('xorGroupId') or name.rsplit('/', 1)[-1]}",
        provider="gcp",
        kind="committed_use_discount",
        source=SOURCE,
        source_id=name,
        scope=f"projects/{project}/locations/{location}",
        resource_id=subtype,
        currency=currency,
        monthly_saving=-cost * MONTH_SECONDS / period if period else Decimal(0),
        valid=state == "ACTIVE",
        evidence=item,
        fetched_at=fetched if fetched.tzinfo else fetched.replace(tzinfo=UTC),
    )


def fetch_gcp_recommendations(
    session: GcpSession, config: GcpConfig, settings: GcpRecommendationSettings
) -> tuple[list[Recommendation], int]:
    """Every granted project and location's commitment recommendations, and requests made."""
    base = endpoint(config.endpoint_url_env, RECOMMENDER_URL)
    before = session.requests
    found = []
    for project in settings.projects:
        for location in settings.locations:
            url = (
                f"{base}/v1/projects/{project}/locations/{location}/recommenders/"
                f"{RECOMMENDER}/recommendations"
            )

            def fetch(token: str | None, url: str = url) -> Any:
                params = {"pageSize": "100", **({"pageToken": token} if token else {})}
                response = session.api.request("GET", url, "Recommender list", params=params)
                return exact_json(response)

            for page in Paginator(fetch, lambda page: page.get("nextPageToken")):
                for item in page.get("recommendations", []):
                    found.append(_recommendation(item, project, location))
    return found, session.requests - before
