"""A local Google Cloud: the OAuth2 token endpoint (service-account JWT bearer grant, RS256
checked) and BigQuery's jobs.query / jobs.getQueryResults over the detailed billing export.

It has no SQL engine: it recognises the collector's kinds of query (see gcp_query: SELECT export
columns, or grouped by day with COUNT(*) and Google's net-cost sum, FROM the export table WHERE
billing_account_id / usage_start_time / export_time / _PARTITIONTIME compared with named
parameters) and answers anything else with BigQuery's own 400 error shape. A row is visible
once its export_time has passed, as in the real export; every job's processed and billed bytes
are answered as BigQuery counts them and kept in `jobs_log`."""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from cost_local.sandbox.bills import GeneratedLine
from cost_local.sandbox.gcp_export import (
    DEFAULT_EXPORT_DELAY,
    TABLE_PREFIX,
    cell,
    correction_rows,
    export_rows,
)
from cost_local.sandbox.gcp_query import BigQueryError, ParsedQuery, bytes_read, parse_query
from cost_local.sandbox.gcp_recommender import PATH as RECOMMENDER_PATH
from cost_local.sandbox.gcp_recommender import list_recommendations
from cost_local.sandbox.simulator import Request, Response, Simulator

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_QUERIES = re.compile(r"^/bigquery/v2/projects/(?P<project>[^/]+)/queries(?:/(?P<job>[^/]+))?$")
_KEPT_JOBS = 64
MIB = 1024 * 1024
MIN_BILLED_BYTES = 10 * MIB  # on-demand queries bill at least 10 MB per table referenced


@dataclass(frozen=True)
class JobRecord:
    """One query job as the sandbox ran it: what BigQuery reports having processed and billed."""

    query: str
    bytes_processed: int
    bytes_billed: int
    rows: int


@dataclass(frozen=True)
class BillingExport:
    """Where one billing account's detailed export lands, and which service accounts may read it."""

    project: str
    dataset: str
    billing_account_id: str
    readers: tuple[str, ...] = ()  # client emails; empty = any authenticated caller

    @property
    def table(self) -> str:
        suffix = self.billing_account_id.replace("-", "_")
        return f"{self.project}.{self.dataset}.{TABLE_PREFIX}{suffix}"


def new_service_account_key(client_email: str, project_id: str, token_uri: str) -> dict[str, str]:
    """A service-account key file, the JSON a customer downloads from the Google Cloud console."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": secrets.token_hex(20),
        "private_key": pem,
        "client_email": client_email,
        "client_id": str(secrets.randbelow(10**20)),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "universe_domain": "googleapis.com",
    }


class BigQueryBilling(Simulator):
    """BigQuery holding the billing exports of the given lines, plus Google's token endpoint."""

    def __init__(
        self,
        service_account_keys: Iterable[Mapping[str, str]],
        exports: Sequence[BillingExport],
        lines: Iterable[GeneratedLine] = (),
        *,
        page_size: int = 1000,
        export_delay: timedelta = DEFAULT_EXPORT_DELAY,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host=host, port=port)
        self._public_keys = {key["client_email"]: _public_key(key) for key in service_account_keys}
        self.exports = {e.table: e for e in exports}
        self.page_size = page_size
        self.export_delay = export_delay  # sets each line's export time, hence its partition
        self._tokens: dict[str, tuple[str, float]] = {}
        self.clock = clock  # rows exported after clock() are not in the table yet
        # Faults to test reconciliation with: grouped queries answer the first group's NUMERIC
        # this much off; ungrouped queries lose the rows of this UTC usage day.
        self.net_skew = Decimal(0)
        self.lose_day: date | None = None
        self.jobs_log: list[JobRecord] = []
        # Who may list recommendations (client emails); None: any authenticated caller.
        self.recommender_readers: set[str] | None = None
        self._jobs: OrderedDict[str, tuple[ParsedQuery, list[list[Any]], bool]] = OrderedDict()
        self.set_lines(lines)

    def set_lines(self, lines: Iterable[GeneratedLine]) -> None:
        """Replace the export tables' content (e.g. with a restated, backfilled version)."""
        lines = list(lines)
        rows = export_rows(lines, self.export_delay)
        with self.lock:
            self._rows = rows
            self._lines = lines
            self.today = self.clock().date()

    @property
    def rows(self) -> list[dict[str, Any]]:
        """Every export row, exported or still to come (the ledger's raw records)."""
        with self.lock:
            return list(self._rows)

    def visible_rows(self) -> list[dict[str, Any]]:
        now = self.clock()
        return [r for r in self.rows if r["export_time"] <= now]

    def add_rows(self, rows: Iterable[dict[str, Any]]) -> None:
        with self.lock:
            self._rows = [*self._rows, *rows]

    def correct(
        self, account: str, usage_day: date, exported: datetime, remonetized: str = "0.5"
    ) -> list[dict[str, Any]]:
        """Google corrects the first regular row of `usage_day`: a negation and a re-monetized
        row, dated to that usage, exported (and invoiced) at `exported`. Returns them."""
        original = next(
            r
            for r in self.rows
            if r["billing_account_id"] == account
            and r["usage_start_time"].date() == usage_day
            and r["cost_type"] == "regular"
            and r["credits"]
        )
        added = correction_rows(original, exported, Decimal(remonetized))
        self.add_rows(added)
        return added

    def handle(self, request: Request) -> Response:
        try:
            if request.method == "POST" and request.path == "/token":
                return self._token(request.form())
            if request.method == "GET" and (match := RECOMMENDER_PATH.match(request.path)):
                email = self._caller(request)
                if self.recommender_readers is not None and email not in self.recommender_readers:
                    raise BigQueryError(
                        403,
                        "forbidden",
                        "Permission 'recommender.commitmentUtilizationRecommendations.list' "
                        f"denied on resource 'projects/{match['project']}'.",
                    )
                with self.lock:
                    lines, today = self._lines, self.today
                return Response(200, list_recommendations(match, request.query, lines, today))
            if match := _QUERIES.match(request.path):
                email = self._caller(request)
                if request.method == "POST" and not match["job"]:
                    return self._query(match["project"], email, request.json() or {})
                if request.method == "GET" and match["job"]:
                    return self._results(match["project"], match["job"], request.query)
            raise BigQueryError(404, "notFound", f"Not found: URL {request.path}")
        except BigQueryError as error:
            return error.response

    def _token(self, form: dict[str, str]) -> Response:
        def refuse(description: str, error: str = "invalid_grant") -> Response:
            return Response(400, {"error": error, "error_description": description})

        if form.get("grant_type") != JWT_BEARER:
            return refuse(
                f"Invalid grant_type: {form.get('grant_type', '')}", "unsupported_grant_type"
            )
        try:
            head, body, signature = form.get("assertion", "").split(".")
            header, claims = _b64json(head), _b64json(body)
        except ValueError:
            return refuse("Invalid JWT: the assertion is not a signed JWT.")
        public_key = self._public_keys.get(str(claims.get("iss")))
        if public_key is None:
            return refuse("Invalid grant: account not found")
        try:
            assert header.get("alg") == "RS256"
            public_key.verify(
                _b64(signature), f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256()
            )
        except Exception:
            return refuse("Invalid JWT Signature.")
        now = time.time()
        iat, exp = float(claims.get("iat", 0)), float(claims.get("exp", 0))
        if not (iat - 300 <= now <= exp and exp - iat <= 3600):
            return refuse(
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
                "timeframe. Check your iat and exp values in the JWT claim."
            )
        if claims.get("aud") != f"{self.base_url}/token":
            return refuse("Invalid JWT: audience does not match the token endpoint.")
        token = "ya29." + secrets.token_urlsafe(48)
        with self.lock:
            self._tokens[token] = (str(claims["iss"]), now + 3599)
        return Response(200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    def _caller(self, request: Request) -> str:
        token = request.bearer()
        with self.lock:
            email, expiry = self._tokens.get(token or "", ("", 0.0))
        if email and expiry > time.time():
            return email
        missing = token is None
        message = (
            "Request is missing required authentication credential."
            if missing
            else "Request had invalid authentication credentials."
        ) + (
            " Expected OAuth 2 access token, login cookie or other valid authentication "
            "credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."
        )
        raise BigQueryError(
            401,
            "required" if missing else "authError",
            message,
            detail="Login Required." if missing else "Invalid Credentials",
            location=("Authorization", "header"),
            headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
        )

    def _query(self, project: str, email: str, body: dict[str, Any]) -> Response:
        query = parse_query(body, self.exports)
        export = self.exports[query.table]
        if export.readers and email not in export.readers:
            table = query.table.replace(".", ":", 1)
            raise BigQueryError(
                403,
                "accessDenied",
                f"Access Denied: Table {table}: User does not have permission to query table "
                f"{table}, or perhaps it does not exist.",
            )
        account = export.billing_account_id
        stored = [r for r in self.visible_rows() if r["billing_account_id"] == account]
        scanned = [r for r in stored if query.scanned(r)]
        processed = sum(bytes_read(r, query.reads()) for r in scanned)
        billed = max(MIN_BILLED_BYTES, -(-processed // MIB) * MIB)
        matched = [r for r in scanned if query.matches(r)]
        if self.lose_day is not None and not query.grouped:
            matched = [r for r in matched if r["usage_start_time"].date() != self.lose_day]
        result = query.answer(matched)
        numeric = [i for i, (_, f) in enumerate(query.columns) if f["type"] == "NUMERIC"]
        if self.net_skew and result and numeric:
            result[0][numeric[0]] += self.net_skew
        with self.lock:
            job_id = f"job_{uuid.uuid4().hex}"
            int64 = bool((body.get("formatOptions") or {}).get("useInt64Timestamp"))
            self._jobs[job_id] = (query, result, int64)
            self.jobs_log.append(JobRecord(str(body.get("query")), processed, billed, len(result)))
            while len(self._jobs) > _KEPT_JOBS:
                self._jobs.popitem(last=False)
        limit = body.get("maxResults")
        answer = self._page(project, job_id, 0, int(limit) if limit else None)
        answer["totalBytesProcessed"] = str(processed)
        answer["totalBytesBilled"] = str(billed)
        return Response(200, {"kind": "bigquery#queryResponse", **answer})

    def _results(self, project: str, job_id: str, params: Mapping[str, str]) -> Response:
        token = params.get("pageToken") or ""
        try:
            offset = int(base64.urlsafe_b64decode(token.encode()).decode() or 0) if token else 0
        except ValueError:
            raise BigQueryError(400, "invalid", f"Invalid page token: {token}") from None
        limit = int(params["maxResults"]) if params.get("maxResults") else None
        answer = self._page(project, job_id, offset, limit)
        return Response(200, {"kind": "bigquery#getQueryResultsResponse", **answer})

    def _page(self, project: str, job_id: str, offset: int, limit: int | None) -> dict[str, Any]:
        with self.lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise BigQueryError(404, "notFound", f"Not found: Job {project}:US.{job_id}")
        query, rows, int64 = job
        size = min(limit or self.page_size, self.page_size)
        page = rows[offset : offset + size]
        answer: dict[str, Any] = {
            "schema": {"fields": [f for _, f in query.columns]},
            "jobReference": {"projectId": project, "jobId": job_id, "location": "US"},
            "totalRows": str(len(rows)),
            "jobComplete": True,
            "cacheHit": False,
        }
        if page:  # BigQuery leaves out `rows` when there are none
            answer["rows"] = [
                {
                    "f": [
                        {"v": cell(value, f, int64_timestamps=int64)}
                        for value, (_, f) in zip(r, query.columns, strict=True)
                    ]
                }
                for r in page
            ]
        if offset + size < len(rows):
            answer["pageToken"] = base64.urlsafe_b64encode(str(offset + size).encode()).decode()
        return answer


def _public_key(key_file: Mapping[str, str]) -> rsa.RSAPublicKey:
    private = serialization.load_pem_private_key(key_file["private_key"].encode(), password=None)
    if not isinstance(private, rsa.RSAPrivateKey):
        raise ValueError(f"{key_file['client_email']}: a service-account key is an RSA key")
    return private.public_key()


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64json(text: str) -> dict[str, Any]:
    value = json.loads(_b64(text))
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value
