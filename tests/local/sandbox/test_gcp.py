"""The local Google Cloud answers token and BigQuery query requests as Google documents."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from cost_local.sandbox.bills import generate_bills
from cost_local.sandbox.catalog import demo_accounts
from cost_local.sandbox.gcp import JWT_BEARER, BigQueryBilling, BillingExport
from cost_local.sandbox.gcp import new_service_account_key as new_key
from cost_local.sandbox.gcp_export import CREDIT_TYPES, CUD_FEE_SKU, six
from cost_local.sandbox.gcp_ledger import net_by_day

pytestmark = pytest.mark.slow
ACCOUNT = demo_accounts("acme")[2]
LINES = generate_bills([ACCOUNT], date(2025, 3, 1), date(2025, 3, 15), seed=3)
EXPORT = BillingExport(
    "acme-billing",
    "billing_export",
    ACCOUNT.billing_account_id,
    readers=("reader@acme-billing.iam.gserviceaccount.com",),
)
QUERY = (
    "SELECT service.description AS service, sku.id AS sku_id, usage_start_time, project.id "
    f"AS project_id, cost, currency, credits, cost_type FROM `{EXPORT.table}` "
    "WHERE billing_account_id = @billing_account_id AND usage_start_time >= @start "
    "AND usage_start_time < @end"
)


@pytest.fixture(scope="module")
def keys() -> list[dict[str, str]]:
    return [
        new_key("reader@acme-billing.iam.gserviceaccount.com", "acme-billing", ""),
        new_key("other@elsewhere.iam.gserviceaccount.com", "elsewhere", ""),
    ]


@pytest.fixture
def bigquery(keys: list[dict[str, str]]) -> Iterator[BigQueryBilling]:
    with BigQueryBilling(keys, [EXPORT], LINES, page_size=40) as server:
        yield server


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def assertion(key: dict[str, str], audience: str, lifetime: int = 3600) -> str:
    now = int(time.time())
    head = b64(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    claims = {
        "iss": key["client_email"],
        "aud": audience,
        "iat": now,
        "exp": now + lifetime,
        "scope": "https://www.googleapis.com/auth/bigquery.readonly",
    }
    body = b64(json.dumps(claims).encode())
    private = serialization.load_pem_private_key(key["private_key"].encode(), password=None)
    assert isinstance(private, rsa.RSAPrivateKey)
    signature = private.sign(f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{head}.{body}.{b64(signature)}"


def access_token(base: str, key: dict[str, str]) -> str:
    form = {"grant_type": JWT_BEARER, "assertion": assertion(key, f"{base}/token")}
    response = httpx.post(f"{base}/token", data=form)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def params(start: str = "2025-03-02", end: str = "2025-03-05", kind: str = "TIMESTAMP") -> list:
    def one(name: str, type_: str, value: str) -> dict[str, Any]:
        return {"name": name, "parameterType": {"type": type_}, "parameterValue": {"value": value}}

    return [
        one("billing_account_id", "STRING", ACCOUNT.billing_account_id),
        one("start", kind, f"{start} 00:00:00+00:00" if kind == "TIMESTAMP" else start),
        one("end", kind, f"{end} 00:00:00+00:00" if kind == "TIMESTAMP" else end),
    ]


def run_query(base: str, token: str, query: str = QUERY, **overrides: Any) -> httpx.Response:
    body = {
        "query": query,
        "useLegacySql": False,
        "parameterMode": "NAMED",
        "queryParameters": params(),
        "maxResults": 1000,
        "timeoutMs": 10000,
        **overrides,
    }
    return httpx.post(
        f"{base}/bigquery/v2/projects/acme-billing/queries",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
    )


def test_signed_service_account_jwt_is_exchanged_for_a_bearer_token(
    bigquery: BigQueryBilling, keys: list[dict[str, str]]
) -> None:
    form = {"grant_type": JWT_BEARER, "assertion": assertion(keys[0], f"{bigquery.base_url}/token")}
    answer = httpx.post(f"{bigquery.base_url}/token", data=form).json()
    assert answer["token_type"] == "Bearer" and answer["expires_in"] == 3599


def test_jwt_signed_with_another_key_is_refused(
    bigquery: BigQueryBilling, keys: list[dict[str, str]]
) -> None:
    forged = {**keys[1], "client_email": keys[0]["client_email"]}
    form = {"grant_type": JWT_BEARER, "assertion": assertion(forged, f"{bigquery.base_url}/token")}
    response = httpx.post(f"{bigquery.base_url}/token", data=form)
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_grant",
        "error_description": "Invalid JWT Signature.",
    }


def test_query_without_a_token_is_401_in_bigquery_shape(bigquery: BigQueryBilling) -> None:
    response = httpx.post(f"{bigquery.base_url}/bigquery/v2/projects/p/queries", json={})
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["status"] == "UNAUTHENTICATED" and error["errors"][0]["reason"] == "required"


def test_export_rows_come_back_as_f_v_cells_over_several_pages(
    bigquery: BigQueryBilling, keys: list[dict[str, str]]
) -> None:
    token = access_token(bigquery.base_url, keys[0])
    first = run_query(bigquery.base_url, token).json()
    assert first["kind"] == "bigquery#queryResponse" and first["jobComplete"] is True
    names = [f["name"] for f in first["schema"]["fields"]]
    assert names == [
        "service",
        "sku_id",
        "usage_start_time",
        "project_id",
        "cost",
        "currency",
        "credits",
        "cost_type",
    ]
    rows, answer, pages = list(first["rows"]), first, 1
    while answer.get("pageToken"):
        job = answer["jobReference"]
        answer = httpx.get(
            f"{bigquery.base_url}/bigquery/v2/projects/{job['projectId']}/queries/{job['jobId']}",
            params={"pageToken": answer["pageToken"], "location": job["location"]},
            headers={"Authorization": f"Bearer {token}"},
        ).json()
        assert answer["kind"] == "bigquery#getQueryResultsResponse"
        rows += answer["rows"]
        pages += 1
    assert pages > 1 and len(rows) == int(first["totalRows"])
    days = {datetime.fromtimestamp(float(r["f"][2]["v"]), UTC).date() for r in rows}
    assert len(days) == 3  # 2, 3 and 4 March: the end is exclusive
    cost = sum(Decimal(r["f"][4]["v"]) for r in rows)
    credits = sum(Decimal(c["v"]["f"][1]["v"]) for r in rows for c in r["f"][6]["v"])
    # Google exports costs to six decimals, each UTC day as rows split at Pacific midnight.
    wanted = [x for x in LINES if date(2025, 3, 2) <= x.charge_date < date(2025, 3, 5)]
    fees = [r for r in rows if r["f"][1]["v"] == CUD_FEE_SKU[0]]
    usage = cost - sum(Decimal(r["f"][4]["v"]) for r in fees)
    assert usage == sum(six(x.billed_cost) for x in wanted if x.charge_category != "Credit")
    assert credits == sum(six(x.billed_cost) for x in wanted if x.charge_category == "Credit") < 0
    assert "tax" in {r["f"][7]["v"] for r in rows}


def test_comparing_a_timestamp_with_a_date_parameter_is_invalid_query(
    bigquery: BigQueryBilling, keys: list[dict[str, str]]
) -> None:
    token = access_token(bigquery.base_url, keys[0])
    response = run_query(bigquery.base_url, token, queryParameters=params(kind="DATE"))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["errors"][0]["reason"] == "invalidQuery"
    assert "No matching signature for operator >=" in error["message"]


def test_unknown_table_is_not_found_and_other_sql_is_invalid(
    bigquery: BigQueryBilling, keys: list[dict[str, str]]
) -> None:
    token = access_token(bigquery.base_url, keys[0])
    other = QUERY.replace(EXPORT.table, "acme-billing.billing_export.nope")
    assert run_query(bigquery.base_url, token, other).json()["error"]["status"] == "NOT_FOUND"
    response = run_query(bigquery.base_url, token, "SELECT 1")
    assert response.status_code == 400
    assert response.json()["error"]["errors"][0]["reason"] == "invalidQuery"


def test_a_service_account_without_access_to_the_export_is_denied(
    bigquery: BigQueryBilling, keys: list[dict[str, str]]
) -> None:
    token = access_token(bigquery.base_url, keys[1])
    response = run_query(bigquery.base_url, token)
    assert response.status_code == 403
    assert response.json()["error"]["errors"][0]["reason"] == "accessDenied"


def test_int64_timestamps_are_given_when_asked(
    bigquery: BigQueryBilling, keys: list[dict[str, str]]
) -> None:
    token = access_token(bigquery.base_url, keys[0])
    answer = run_query(bigquery.base_url, token, formatOptions={"useInt64Timestamp": True}).json()
    assert answer["rows"][0]["f"][2]["v"] == "1740873600000000"


def _days(bigquery: BigQueryBilling, token: str, partition_filter: str) -> set[float]:
    """The usage days (epoch seconds) of the rows starting at 00:00 UTC (a day's hours before
    Pacific midnight) a query with that partition filter returns on one page."""
    answer = run_query(bigquery.base_url, token, f"{QUERY} AND {partition_filter}").json()
    assert not answer.get("pageToken"), answer.get("error")
    starts = {float(r["f"][2]["v"]) for r in answer.get("rows", [])}
    return {s for s in starts if s % 86400 == 0}


def test_rows_sit_in_the_partition_of_their_pacific_export_date(
    bigquery: BigQueryBilling, keys: list[dict[str, str]]
) -> None:
    # Exported 4 h after usage starts: 04:00 UTC is 20:00 Pacific the day before.
    bigquery.page_size = 1000
    bigquery.export_delay = timedelta(hours=4)
    bigquery.set_lines(LINES)
    token = access_token(bigquery.base_url, keys[0])
    march_2, march_3, march_4 = (
        datetime(2025, 3, day, tzinfo=UTC).timestamp() for day in (2, 3, 4)
    )

    # 2 March's usage is in the 1 March partition: a filter from 2 March loses it.
    assert _days(bigquery, token, "_PARTITIONTIME >= @start") == {march_3, march_4}
    widened = "_PARTITIONTIME >= TIMESTAMP_SUB(@start, INTERVAL 1 DAY)"
    assert _days(bigquery, token, widened) == {march_2, march_3, march_4}


def test_timestamp_sub_of_a_date_parameter_is_invalid_query(
    bigquery: BigQueryBilling, keys: list[dict[str, str]]
) -> None:
    token = access_token(bigquery.base_url, keys[0])
    query = f"{QUERY} AND _PARTITIONTIME >= TIMESTAMP_SUB(@day, INTERVAL 1 DAY)"
    day = {"name": "day", "parameterType": {"type": "DATE"}, "parameterValue": {"value": "x"}}
    response = run_query(bigquery.base_url, token, query, queryParameters=[*params(), day])
    assert response.status_code == 400
    assert "No matching signature for function TIMESTAMP_SUB" in response.json()["error"]["message"]


NET = (
    "SELECT billing_account_id, DATE(usage_start_time) AS usage_day, currency, "
    "SUM(CAST(cost AS NUMERIC)) + SUM(IFNULL((SELECT SUM(CAST(c.amount AS NUMERIC)) "
    f"FROM UNNEST(credits) c), 0)) AS net FROM `{EXPORT.table}` "
    "WHERE billing_account_id = @billing_account_id AND usage_start_time >= @start "
    "AND usage_start_time < @end GROUP BY billing_account_id, usage_day, currency"
)


def test_a_grouped_net_cost_query_answers_googles_sum_per_day_as_numeric(
    bigquery: BigQueryBilling, keys: list[dict[str, str]]
) -> None:
    token = access_token(bigquery.base_url, keys[0])
    answer = run_query(bigquery.base_url, token, NET).json()
    assert [f["type"] for f in answer["schema"]["fields"]] == [
        "STRING",
        "DATE",
        "STRING",
        "NUMERIC",
    ]
    got = {
        (r["f"][0]["v"], r["f"][1]["v"], r["f"][2]["v"]): Decimal(r["f"][3]["v"])
        for r in answer["rows"]
    }
    wanted = {
        key: total
        for key, total in net_by_day(bigquery.rows).items()
        if "2025-03-02" <= key[1] < "2025-03-05"
    }
    assert got == wanted and len(got) == 3
    ungrouped = NET.replace(" GROUP BY billing_account_id, usage_day, currency", "")
    error = run_query(bigquery.base_url, token, ungrouped).json()["error"]
    assert "neither grouped nor aggregated" in error["message"]


def test_bytes_processed_count_the_referenced_columns_of_the_partitions_scanned(
    bigquery: BigQueryBilling, keys: list[dict[str, str]]
) -> None:
    token = access_token(bigquery.base_url, keys[0])
    later = params("2025-03-10", "2025-03-12")
    whole = run_query(bigquery.base_url, token, queryParameters=later).json()
    pruned = run_query(
        bigquery.base_url,
        token,
        f"{QUERY} AND _PARTITIONTIME >= TIMESTAMP_SUB(@start, INTERVAL 1 DAY)",
        queryParameters=later,
    ).json()
    # Same rows, fewer partitions read: the other filters do not reduce the bytes.
    assert whole["totalRows"] == pruned["totalRows"]
    assert 0 < int(pruned["totalBytesProcessed"]) < int(whole["totalBytesProcessed"])
    assert int(pruned["totalBytesBilled"]) == 10 * 1024 * 1024  # the 10 MB minimum
    assert [j.bytes_processed for j in bigquery.jobs_log] == [
        int(whole["totalBytesProcessed"]),
        int(pruned["totalBytesProcessed"]),
    ]


def test_rows_appear_once_exported_and_carry_every_credit_type(
    bigquery: BigQueryBilling, keys: list[dict[str, str]]
) -> None:
    token = access_token(bigquery.base_url, keys[0])
    # 3 March 12:00 UTC: usage from 2 March on (exported a day and 3 h later) is not there yet.
    bigquery.clock = lambda: datetime(2025, 3, 3, 12, tzinfo=UTC)
    answer = run_query(bigquery.base_url, token).json()
    days = {datetime.fromtimestamp(float(r["f"][2]["v"]), UTC).date() for r in answer["rows"]}
    assert days == {date(2025, 3, 2)}
    types = {c["type"] for r in bigquery.rows for c in r["credits"]}
    assert types == set(CREDIT_TYPES)
    invoices = {r["invoice"]["month"] for r in bigquery.rows}
    assert invoices == {"202502", "202503"}  # 1 March's first hours are February's (Pacific)
