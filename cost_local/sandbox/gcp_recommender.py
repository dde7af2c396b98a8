"""The Recommender API as the local Google Cloud answers it: `GET /v1/projects/{project}/
locations/{location}/recommenders/google.compute.commitment.UsageCommitmentRecommender/
recommendations` (pageSize, pageToken), each recommendation with its Money cost projection
over 30 days (negative: a saving), stateInfo and the commitment to create in `content`.
Figures: sandbox/commitments.py. Other recommenders answer an empty list."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from cost_local.sandbox.bills import GeneratedLine
from cost_local.sandbox.commitments import gcp_commitments

COMMITMENT_RECOMMENDER = "google.compute.commitment.UsageCommitmentRecommender"
PATH = re.compile(
    r"^/v1/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/recommenders/"
    r"(?P<recommender>[^/]+)/recommendations$"
)
THIRTY_DAYS = "2592000s"


def _recommendation(
    project: str, location: str, cores: int, money: dict[str, object], today: date
) -> dict[str, Any]:
    rid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"cud:{project}:{location}:{today}"))
    return {
        "name": f"projects/{project}/locations/{location}/recommenders/"
        f"{COMMITMENT_RECOMMENDER}/recommendations/{rid}",
        "description": f"Purchase a 1 year commitment for {cores} vCPU of N2 in {location}",
        "recommenderSubtype": "PURCHASE_COMMITMENT",
        "lastRefreshTime": f"{today.isoformat()}T00:00:00Z",
        "primaryImpact": {
            "category": "COST",
            "costProjection": {"cost": money, "duration": THIRTY_DAYS},
        },
        "stateInfo": {"state": "ACTIVE"},
        "etag": f'"{uuid.uuid5(uuid.NAMESPACE_URL, rid).hex[:16]}"',
        "content": {
            "operationGroups": [
                {
                    "operations": [
                        {
                            "action": "add",
                            "resourceType": "compute.googleapis.com/Commitment",
                            "resource": f"//compute.googleapis.com/projects/{project}/regions/"
                            f"{location}/commitments/n2-{cores}-vcpu",
                            "path": "/",
                            "value": {
                                "plan": "TWELVE_MONTH",
                                "type": "GENERAL_PURPOSE_N2",
                                "resources": [{"type": "VCPU", "amount": str(cores)}],
                            },
                        }
                    ]
                }
            ]
        },
        "priority": "P2",
        "xorGroupId": f"n2-{project}-{location}",
        "associatedInsights": [],
    }


def list_recommendations(
    match: re.Match[str], query: Mapping[str, str], lines: Sequence[GeneratedLine], today: date
) -> dict[str, Any]:
    """One page of a recommender's list for a project and location."""
    if match["recommender"] != COMMITMENT_RECOMMENDER:
        return {}
    project, location = match["project"], match["location"]
    found = [
        _recommendation(project, location, c.cores, c.money, today)
        for c in gcp_commitments(lines, project, location, today)
    ]
    size = int(query.get("pageSize") or 100)
    offset = int(query.get("pageToken") or 0)
    answer: dict[str, Any] = {"recommendations": found[offset : offset + size]}
    if offset + size < len(found):
        answer["nextPageToken"] = str(offset + size)
    return answer if found else {}
