"""A local Azure: the Entra ID client-credentials token endpoint and the Cost Management Query
API (`POST {scope}/providers/Microsoft.CostManagement/query`), answering as Microsoft documents:
positional rows, UsageDate as 20250131, nextLink paging, 429 with the QPU retry-after header,
Daily periods longer than a month silently cut from the start, and the ActualCost and
AmortizedCost views of cost details with reservations, savings plans, purchases, refunds and
resource ids in several casings (`azure_billing`)."""

from __future__ import annotations

import math
import re
import secrets
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from cost_local.sandbox.azure_billing import CostRecord, cost_records
from cost_local.sandbox.azure_query import (
    AzureError,
    aggregate,
    page_offset,
    parse_query,
    resource_group,
    skiptoken,
)
from cost_local.sandbox.azure_recommendations import reservation_recommendations
from cost_local.sandbox.bills import GeneratedLine
from cost_local.sandbox.simulator import Request, Response, Simulator

API_VERSIONS = ("2025-03-01", "2024-08-01", "2023-11-01", "2023-03-01")
QPU_RETRY_HEADER = "x-ms-ratelimit-microsoft.costmanagement-qpu-retry-after"
_QUERY = re.compile(r"^(?P<scope>/.+)/providers/microsoft\.costmanagement/query/?$", re.I)
_RECOMMENDATIONS = re.compile(
    r"^(?P<scope>/.+)/providers/microsoft\.consumption/reservationrecommendations/?$", re.I
)
_TOKEN = re.compile(r"^/(?P<tenant>[^/]+)/oauth2(?P<v2>/v2\.0)?/token$")


@dataclass(frozen=True)
class AzureApp:
    """An app registration (service principal) allowed to read costs in one tenant."""

    tenant_id: str
    client_id: str
    client_secret: str


class AzureCostManagement(Simulator):
    """Cost Management for the billing accounts and subscriptions found in the given lines."""

    def __init__(
        self,
        apps: Sequence[AzureApp],
        lines: Iterable[GeneratedLine] = (),
        *,
        page_size: int = 1000,
        qpu_per_10_seconds: int = 12,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host=host, port=port)
        self.apps = {(a.tenant_id, a.client_id): a for a in apps}
        self.page_size = page_size
        self.qpu_per_10_seconds = qpu_per_10_seconds
        self._tokens: dict[str, tuple[str, float]] = {}  # token -> (tenant, expiry)
        self._recent: dict[str, deque[float]] = defaultdict(deque)  # tenant -> query times
        self._forced_throttles: list[int] = []
        # Faults a test asks for: days the grouped queries leave out, and amounts the ungrouped
        # (total) queries add to a day.
        self.hidden_days: set[date] = set()
        self.total_offsets: dict[date, Decimal] = {}
        self.set_lines(lines)

    def set_lines(self, lines: Iterable[GeneratedLine], today: date | None = None) -> None:
        """Replace what the API reports with these bills' cost details (`cost_records`), and
        the reservation recommendations with those of these bills in the morning of `today`."""
        lines = list(lines)
        with self.lock:
            self._lines = lines
            self.today = today or datetime.now(UTC).date()
        self.set_records(cost_records(lines))

    def set_records(self, records: Iterable[CostRecord]) -> None:
        """Replace what the API reports with exactly these cost-details rows."""
        with self.lock:
            self._records = list(records)

    @property
    def records(self) -> list[CostRecord]:
        with self.lock:
            return list(self._records)

    def throttle(self, times: int = 1, *, retry_after: int = 1) -> None:
        """Answer the next `times` queries with 429, as when the tenant's QPU quota is spent."""
        with self.lock:
            self._forced_throttles.extend([retry_after] * times)

    @property
    def pending_throttles(self) -> int:
        with self.lock:
            return len(self._forced_throttles)

    def handle(self, request: Request) -> Response:
        try:
            if request.method == "POST" and (match := _TOKEN.match(request.path)):
                return self._token(match["tenant"], bool(match["v2"]), request.form())
            if request.method == "POST" and (match := _QUERY.match(request.path)):
                return self._query(match["scope"], request)
            if request.method == "GET" and (match := _RECOMMENDATIONS.match(request.path)):
                self._tenant_of(request)
                with self.lock:
                    lines, today = self._lines, self.today
                answer = reservation_recommendations(match["scope"], request.query, lines, today)
                return Response(200, answer)
            raise AzureError(404, "NotFound", f"No route for {request.method} {request.path}.")
        except AzureError as error:
            return error.response

    def _token(self, tenant: str, v2: bool, form: dict[str, str]) -> Response:
        app = self.apps.get((tenant, form.get("client_id", "")))
        if form.get("grant_type") != "client_credentials":
            return _aad_error(
                400,
                "unsupported_grant_type",
                70003,
                "The app requested an unsupported grant type 'client_credentials' is required.",
            )
        if app is None:
            return _aad_error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier "
                f"'{form.get('client_id', '')}' was not found in the directory "
                f"'{tenant}'.",
            )
        if not secrets.compare_digest(form.get("client_secret", ""), app.client_secret):
            return _aad_error(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. "
                "Ensure the secret being sent in the request is the client secret "
                f"value, not the client secret ID, for a secret added to app "
                f"'{app.client_id}'.",
            )
        token, lifetime = secrets.token_urlsafe(32), 3599
        with self.lock:
            self._tokens[token] = (tenant, time.time() + lifetime)
        if v2:
            body: dict[str, Any] = {
                "token_type": "Bearer",
                "expires_in": lifetime,
                "ext_expires_in": lifetime,
                "access_token": token,
            }
        else:  # the v1 endpoint writes its numbers as strings
            now = int(time.time())
            body = {
                "token_type": "Bearer",
                "expires_in": str(lifetime),
                "ext_expires_in": str(lifetime),
                "expires_on": str(now + lifetime),
                "not_before": str(now),
                "resource": form.get("resource", ""),
                "access_token": token,
            }
        return Response(200, body)

    def _tenant_of(self, request: Request) -> str:
        token = request.bearer()
        if token is None:
            raise AzureError(
                401,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
            )
        with self.lock:
            tenant, expiry = self._tokens.get(token, ("", 0.0))
        if not tenant:
            raise AzureError(401, "InvalidAuthenticationToken", "The access token is invalid.")
        if expiry < time.time():
            raise AzureError(
                401,
                "ExpiredAuthenticationToken",
                "The access token expiry UTC time is earlier than current UTC time.",
            )
        return tenant

    def _query(self, scope: str, request: Request) -> Response:
        version = request.query.get("api-version")
        if not version:
            raise AzureError(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        if version not in API_VERSIONS:
            raise AzureError(
                400,
                "InvalidApiVersionParameter",
                f"The api-version '{version}' is invalid. The supported versions "
                f"are '{','.join(API_VERSIONS)}'.",
            )
        tenant = self._tenant_of(request)
        if (throttled := self._throttled(tenant)) is not None:
            return throttled
        body = request.json()
        query = parse_query(body)
        records = self._scoped(scope)
        if query.grouping:
            records = [r for r in records if r.day not in self.hidden_days]
        columns, rows = aggregate(records, query)
        if not query.grouping and query.daily and self.total_offsets:
            rows = [
                [row[0] + self.total_offsets.get(_usage_date(row[1]), Decimal(0)), *row[1:]]
                for row in rows
            ]
        offset = page_offset(request.query.get("$skiptoken"), request.body)
        size = min(int(request.query.get("$top") or self.page_size), self.page_size)
        page = rows[offset : offset + size]
        next_link = None
        if offset + size < len(rows):
            token = skiptoken(offset + size, request.body)
            next_link = (
                f"{self.base_url}{scope}/providers/Microsoft.CostManagement/query"
                f"?api-version={version}&$skiptoken={token}"
            )
        query_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{scope}:{request.body!r}:{offset}")
        return Response(
            200,
            {
                "id": f"{scope.lstrip('/')}/providers/Microsoft.CostManagement/query/{query_id}",
                "name": str(query_id),
                "type": "Microsoft.CostManagement/query",
                "location": None,
                "sku": None,
                "eTag": None,
                "properties": {"nextLink": next_link, "columns": columns, "rows": page},
            },
        )

    def _throttled(self, tenant: str) -> Response | None:
        now = time.monotonic()
        with self.lock:
            if self._forced_throttles:
                return _too_many_requests(self._forced_throttles.pop(0))
            recent = self._recent[tenant]
            while recent and recent[0] <= now - 10:
                recent.popleft()
            if len(recent) >= self.qpu_per_10_seconds:
                return _too_many_requests(max(1, math.ceil(recent[0] + 10 - now)))
            recent.append(now)
        return None

    def _scoped(self, scope: str) -> list[CostRecord]:
        parts = scope.strip("/").split("/")
        lowered = [p.lower() for p in parts]
        with self.lock:
            records = self._records
        if lowered[:3] == ["providers", "microsoft.billing", "billingaccounts"] and len(parts) == 4:
            found = [x for x in records if x.billing_account_id.lower() == lowered[3]]
        elif lowered[:1] == ["subscriptions"] and len(parts) in (2, 4):
            found = [x for x in records if x.subscription_id.lower() == lowered[1]]
            if len(parts) == 4 and lowered[2] == "resourcegroups":
                found = [x for x in found if resource_group(x.resource_id) == lowered[3]]
        else:
            found = []
        if not found:
            raise AzureError(
                403,
                "AuthorizationFailed",
                "The client does not have authorization to perform action "
                f"'Microsoft.CostManagement/query/action' over scope '{scope}' or "
                "the scope is invalid.",
            )
        return found


def _usage_date(value: int) -> date:
    return date(value // 10000, value // 100 % 100, value % 100)


def _too_many_requests(retry_after: int) -> Response:
    seconds = str(retry_after)
    headers = {QPU_RETRY_HEADER: seconds, "Retry-After": seconds}
    body = {"error": {"code": "429", "message": "Too many requests. Please retry."}}
    return Response(429, body, headers)


def _aad_error(status: int, error: str, code: int, description: str) -> Response:
    trace = str(uuid.uuid4())
    stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%SZ")
    return Response(
        status,
        {
            "error": error,
            "error_description": f"AADSTS{code}: {description} Trace ID: {trace} "
            f"Timestamp: {stamp}",
            "error_codes": [code],
            "timestamp": stamp,
            "trace_id": trace,
            "correlation_id": str(uuid.uuid4()),
            "error_uri": f"https://login.microsoftonline.com/error?code={code}",
        },
    )
