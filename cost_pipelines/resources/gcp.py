"""GCP as a Dagster resource: a service-account key signs a JWT (RS256) that Google's token
endpoint exchanges for a bearer token, then BigQuery jobs.query and getQueryResults pages are
followed with the shared retries. Each session counts the bytes its jobs processed and billed,
and reads the export_time watermark of a billing account from the warehouse (the time of the
last collection that reached today, see `last_collected`)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from clickhouse_connect.driver.client import Client
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from cost_pipelines.customers import GcpConfig
from cost_pipelines.resources.clickhouse import ClickHouseResource
from cost_pipelines.resources.rest import (
    ApiRefused,
    BearerToken,
    CredentialsRejected,
    RestApi,
    RestResource,
    endpoint,
    env_credential,
    exact_json,
)
from cost_pipelines.resources.retry import Paginator

BIGQUERY_URL = "https://bigquery.googleapis.com"
SCOPE = "https://www.googleapis.com/auth/bigquery.readonly"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_KEY_FIELDS = ("client_email", "private_key", "token_uri")


def google_error_text(response: httpx.Response) -> str:
    """BigQuery's error reason and message, or the token endpoint's error and description."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        reasons = [e.get("reason", "") for e in error.get("errors", [])]
        return (
            f"{', '.join(r for r in reasons if r) or error.get('status')}: {error.get('message')}"
        )
    if isinstance(error, str):
        return f"{error}: {body.get('error_description', '')}"
    return response.text[:200]


def _google_reasons(response: httpx.Response) -> list[str]:
    try:
        body = response.json()
    except ValueError:
        return []
    error = body.get("error") if isinstance(body, dict) else None
    errors = error.get("errors", []) if isinstance(error, dict) else []
    return [str(e.get("reason", "")) for e in errors if isinstance(e, dict)]


def bigquery_throttled(response: httpx.Response) -> str | None:
    """BigQuery answers a short-term rate limit with 403 and reason rateLimitExceeded; Google
    says to retry it with exponential backoff."""
    return "rateLimitExceeded" if "rateLimitExceeded" in _google_reasons(response) else None


def bigquery_over_quota(response: httpx.Response) -> str | None:
    """A longer-term quota (403 quotaExceeded): Google says to wait 10 minutes or more, so the
    run fails (the next one collects the window), saying so rather than blaming the key."""
    return "quotaExceeded" if "quotaExceeded" in _google_reasons(response) else None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def signed_assertion(key: Mapping[str, str], now: float, scope: str = SCOPE) -> str:
    """The JWT a service account presents to the token endpoint, signed with its private key."""
    private = serialization.load_pem_private_key(key["private_key"].encode(), password=None)
    if not isinstance(private, rsa.RSAPrivateKey):
        raise CredentialsRejected(f"service account {key['client_email']}: key is not RSA")
    header = {"alg": "RS256", "typ": "JWT", "kid": key.get("private_key_id", "")}
    claims = {
        "iss": key["client_email"],
        "scope": scope,
        "aud": key["token_uri"],
        "iat": int(now),
        "exp": int(now) + 3600,
    }
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = private.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64(signature)}"


def read_key_file(customer_id: str, path: str) -> dict[str, str]:
    """A service-account key file, checked; errors name the file, never its content."""
    try:
        key = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CredentialsRejected(
            f"customer {customer_id!r}: cannot read the service-account key file {path}: "
            f"{type(exc).__name__}"
        ) from None
    missing = [f for f in _KEY_FIELDS if not isinstance(key, dict) or not key.get(f)]
    if missing or key.get("type") != "service_account":
        raise CredentialsRejected(
            f"customer {customer_id!r}: {path} is not a service-account key file "
            f"(type service_account with {', '.join(_KEY_FIELDS)})"
        )
    return {k: str(v) for k, v in key.items()}


# The newest load of an account that covered its own day: a collection of the trailing window
# (scheduled, or a run config window reaching today). A backfill of past days leaves it alone.
_LAST_COLLECTED = """
SELECT max(loaded_at) FROM cost_loads
WHERE customer_id = {customer_id:String} AND provider = 'gcp'
  AND BillingAccountId = {account:String} AND charge_date = toDate(loaded_at)
"""


def last_collected(client: Client, customer_id: str, account: str) -> datetime | None:
    """When this account's export was last collected up to today, from the warehouse's own
    load pointers; None when it never was."""
    params = {"customer_id": customer_id, "account": account}
    [[value]] = client.query(_LAST_COLLECTED, parameters=params).result_rows
    if not isinstance(value, datetime) or value.year < 2000:  # max() over no rows: the epoch
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass
class GcpSession:
    """One customer's BigQuery access."""

    api: RestApi
    bigquery_url: str
    # account -> when it was last collected up to today (None: never, or no warehouse given)
    collected_at: Callable[[str], datetime | None] = lambda account: None
    bytes_processed: int = 0
    bytes_billed: int = 0
    jobs: int = 0
    _seen: set[str] = field(default_factory=set)

    @property
    def requests(self) -> int:
        return self.api.requests

    def _count(self, page: Mapping[str, Any]) -> None:
        """A job's bytes, once per job (its first answer that reports them)."""
        job = str((page.get("jobReference") or {}).get("jobId", ""))
        if job in self._seen or "totalBytesProcessed" not in page:
            return
        self._seen.add(job)
        self.jobs += 1
        self.bytes_processed += int(page["totalBytesProcessed"])
        self.bytes_billed += int(page.get("totalBytesBilled") or 0)

    def query(self, project: str, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Every page of one query's results (jobs.query, then getQueryResults by pageToken).
        BigQuery leaves `rows` out of a page without rows, so the pages' rows are counted
        against the job's totalRows: pages that lost theirs fail the collection instead of
        reading as days without costs (which would replace the window with nothing)."""
        base = f"{self.bigquery_url}/bigquery/v2/projects/{project}/queries"
        job: dict[str, str] = {}
        received = 0
        total = 0

        def fetch(page_token: str | None) -> dict[str, Any]:
            if page_token is None:
                page = exact_json(self.api.request("POST", base, "BigQuery jobs.query", json=body))
                job.update(page["jobReference"])
            else:
                page = self._results(base, job, {"pageToken": page_token})
            while not page.get("jobComplete", True):  # long queries: wait on the job
                page = self._results(base, job, {"timeoutMs": "10000"})
            self._count(page)
            return dict(page)

        for page in Paginator(fetch, lambda page: page.get("pageToken")):
            total = int(page["totalRows"])  # in every answer of a complete job
            received += len(page.get("rows", []))
            yield page
        if received != total:
            raise ApiRefused(
                f"BigQuery: job {job.get('jobId', '')} answered {received} of its {total} rows "
                "(pages without their rows): nothing was written; the window keeps its "
                "previous data"
            )

    def _results(self, base: str, job: dict[str, str], params: dict[str, str]) -> Any:
        url = f"{base}/{job['jobId']}"
        params = {
            **params,
            "location": job.get("location", ""),
            "formatOptions.useInt64Timestamp": "true",
        }
        return exact_json(self.api.request("GET", url, "BigQuery getQueryResults", params=params))


class GcpResource(RestResource):
    """Opens BigQuery sessions from a service-account key file named by an env var. `warehouse`
    is where the export_time watermark is read from (the collector's own loads); without it
    every scheduled run re-reads the whole restatement horizon."""

    warehouse: ClickHouseResource | None = None

    @contextmanager
    def session(
        self, customer_id: str, config: GcpConfig, scope: str = SCOPE
    ) -> Iterator[GcpSession]:
        """One customer's BigQuery access for one collection (or another API's, with its OAuth
        `scope`); its HTTP client is closed after."""
        path = env_credential(customer_id, "gcp", config.credentials, "service_account_file")
        key = read_key_file(customer_id, path)
        with self.open_api(
            customer_id,
            "BigQuery",
            error_text=google_error_text,
            throttled=bigquery_throttled,
            over_quota=bigquery_over_quota,
        ) as api:

            def exchange() -> Mapping[str, Any]:
                # A fresh signed assertion for each exchange: it is only valid for an hour.
                assertion = signed_assertion(key, time.time(), scope)
                form = {"grant_type": JWT_BEARER, "assertion": assertion}
                kwargs: dict[str, Any] = {"authenticated": False, "token_exchange": True}
                answer = api.request("POST", key["token_uri"], "Google OAuth2", data=form, **kwargs)
                return dict(answer.json())

            api.auth_headers = BearerToken(exchange).headers
            warehouse = self.warehouse

            def collected_at(account: str) -> datetime | None:
                if warehouse is None:
                    return None
                return last_collected(warehouse.get_client(), customer_id, account)

            yield GcpSession(api, endpoint(config.endpoint_url_env, BIGQUERY_URL), collected_at)
