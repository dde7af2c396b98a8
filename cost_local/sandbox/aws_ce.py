"""A local AWS Cost Explorer for what moto 5.2.5 does not implement: the purchase
recommendations (GetSavingsPlansPurchaseRecommendation, GetReservationPurchaseRecommendation),
speaking Cost Explorer's JSON 1.1 protocol as botocore's service model describes it: POST /
with `X-Amz-Target: AWSInsightsIndexService.<Operation>`, a SigV4 Authorization header signed
with a key pair the sandbox issued (the signature is checked as AWS checks it), answers and
errors (`__type`) in application/x-amz-json-1.1, NextPageToken paging. Figures:
sandbox/commitments.py."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from cost_local.sandbox.bills import GeneratedLine
from cost_local.sandbox.commitments import (
    AWS_LOOKBACK,
    RI_SERVICES,
    TERM_MONTHS,
    UPFRONT_SHARE,
    aws_reservations,
    aws_savings_plan,
)
from cost_local.sandbox.simulator import Request, Response, Simulator

TARGET_PREFIX = "AWSInsightsIndexService."
CONTENT_TYPE = "application/x-amz-json-1.1"
_AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[A-Z0-9]+)/(?P<scope>(?P<day>\d{8})/"
    r"(?P<region>[a-z0-9-]+)/ce/aws4_request),\s*SignedHeaders=(?P<headers>[a-z0-9;-]+),"
    r"\s*Signature=(?P<signature>[0-9a-f]{64})$"
)
REGION_NAMES = {"us-east-1": "US East (N. Virginia)", "eu-west-1": "EU (Ireland)"}
_INSTANCE_DETAILS = {
    "Amazon Elastic Compute Cloud - Compute": (
        "EC2InstanceDetails",
        {"Platform": "Linux/UNIX", "Tenancy": "shared"},
    ),
    "Amazon Relational Database Service": (
        "RDSInstanceDetails",
        {
            "DatabaseEngine": "PostgreSQL",
            "DeploymentOption": "Single-AZ",
            "LicenseModel": "No license required",
        },
    ),
}
PAGE_SIZE = 20


class CostExplorerError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.response = Response(
            status,
            {"__type": f"com.amazonaws.ce#{code}", "Message": message},
            {"Content-Type": CONTENT_TYPE, "x-amzn-RequestId": str(uuid.uuid4())},
        )


class CostExplorerRecommendations(Simulator):
    """Purchase recommendations for the payer of the given lines, for callers signing with one
    of `access_keys` (access key id -> secret access key)."""

    def __init__(
        self,
        access_keys: Mapping[str, str],
        lines: Iterable[GeneratedLine] = (),
        today: date | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host=host, port=port)
        self.access_keys = dict(access_keys)
        self.set_lines(lines, today or datetime.now(UTC).date())

    def set_lines(self, lines: Iterable[GeneratedLine], today: date) -> None:
        """Recommend from these bills, generated in the morning of `today`."""
        with self.lock:
            self._lines = [x for x in lines if x.provider == "aws"]
            self.today = today

    def handle(self, request: Request) -> Response:
        try:
            if request.method != "POST" or request.path != "/":
                raise CostExplorerError(404, "UnknownOperationException", "Unknown operation")
            self._authorise(request)
            target = request.headers.get("x-amz-target", "")
            body = request.json() or {}
            if not isinstance(body, dict):
                raise CostExplorerError(400, "SerializationException", "Body is not an object")
            if target == TARGET_PREFIX + "GetSavingsPlansPurchaseRecommendation":
                return self._answer(self._savings_plans(body))
            if target == TARGET_PREFIX + "GetReservationPurchaseRecommendation":
                return self._answer(self._reservations(body))
            raise CostExplorerError(
                400, "UnknownOperationException", f"Operation {target!r} is not supported here"
            )
        except CostExplorerError as error:
            return error.response

    def _authorise(self, request: Request) -> None:
        match = _AUTHORIZATION.match(request.headers.get("authorization", ""))
        if match is None:
            raise CostExplorerError(
                400, "MissingAuthenticationTokenException", "Missing Authentication Token"
            )
        secret = self.access_keys.get(match["key"])
        if secret is None:
            raise CostExplorerError(
                400,
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            )
        expected = sigv4_signature(request, secret, match)
        if not hmac.compare_digest(expected, match["signature"]):
            raise CostExplorerError(
                400,
                "InvalidSignatureException",
                "The request signature we calculated does not match the signature you "
                "provided. Check your AWS Secret Access Key and signing method.",
            )

    def _answer(self, body: dict[str, Any]) -> Response:
        return Response(
            200, body, {"Content-Type": CONTENT_TYPE, "x-amzn-RequestId": str(uuid.uuid4())}
        )

    def _metadata(self) -> dict[str, str]:
        generated = datetime.combine(self.today, time(0, 30), UTC)
        return {
            "RecommendationId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"ce:{self.today}")),
            "GenerationTimestamp": generated.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "AdditionalMetadata": "",
        }

    def _savings_plans(self, body: dict[str, Any]) -> dict[str, Any]:
        sp_type = _choice(
            body,
            "SavingsPlansType",
            ("COMPUTE_SP", "EC2_INSTANCE_SP", "SAGEMAKER_SP", "DATABASE_SP"),
        )
        term = _choice(body, "TermInYears", tuple(TERM_MONTHS))
        payment = _choice(body, "PaymentOption", tuple(UPFRONT_SHARE))
        lookback = _choice(body, "LookbackPeriodInDays", tuple(AWS_LOOKBACK))
        scope = str(body.get("AccountScope") or "PAYER")
        with self.lock:
            lines, today = self._lines, self.today
        detail = (
            aws_savings_plan(lines, today, term, payment, lookback)
            if sp_type == "COMPUTE_SP"
            else None
        )
        details = []
        if detail is not None:
            offering = uuid.uuid5(uuid.NAMESPACE_URL, f"sp:{sp_type}:{term}:{payment}")
            details.append(
                {
                    "SavingsPlansDetails": {"OfferingId": str(offering)},
                    **detail,
                    "RecommendationDetailId": str(
                        uuid.uuid5(uuid.NAMESPACE_URL, f"sp:{today}:{term}:{payment}:{lookback}")
                    ),
                }
            )
        recommendation: dict[str, Any] = {
            "AccountScope": scope,
            "SavingsPlansType": sp_type,
            "TermInYears": term,
            "PaymentOption": payment,
            "LookbackPeriodInDays": lookback,
            "SavingsPlansPurchaseRecommendationDetails": details,
        }
        if detail is not None:
            recommendation["SavingsPlansPurchaseRecommendationSummary"] = {
                "EstimatedROI": detail["EstimatedROI"],
                "CurrencyCode": "USD",
                "EstimatedTotalCost": detail["EstimatedSPCost"],
                "CurrentOnDemandSpend": detail["EstimatedOnDemandCost"],
                "EstimatedSavingsAmount": detail["EstimatedSavingsAmount"],
                "TotalRecommendationCount": "1",
                "HourlyCommitmentToPurchase": detail["HourlyCommitmentToPurchase"],
                "EstimatedSavingsPercentage": detail["EstimatedSavingsPercentage"],
                "EstimatedMonthlySavingsAmount": detail["EstimatedMonthlySavingsAmount"],
                "EstimatedOnDemandCostWithCurrentCommitment": detail[
                    "EstimatedOnDemandCostWithCurrentCommitment"
                ],
            }
        return {"Metadata": self._metadata(), "SavingsPlansPurchaseRecommendation": recommendation}

    def _reservations(self, body: dict[str, Any]) -> dict[str, Any]:
        service = body.get("Service")
        if not service:
            raise CostExplorerError(400, "ValidationException", "Service is required")
        if service not in RI_SERVICES:
            raise CostExplorerError(
                400, "ValidationException", f"Service {service!r} is not supported"
            )
        term = _choice(body, "TermInYears", tuple(TERM_MONTHS), "ONE_YEAR")
        payment = _choice(body, "PaymentOption", tuple(UPFRONT_SHARE), "PARTIAL_UPFRONT")
        lookback = _choice(body, "LookbackPeriodInDays", tuple(AWS_LOOKBACK), "SEVEN_DAYS")
        scope = str(body.get("AccountScope") or "PAYER")
        with self.lock:
            lines, today = self._lines, self.today
        family_key, extra = _INSTANCE_DETAILS[service]
        details: list[dict[str, Any]] = []
        for found in aws_reservations(lines, today, service, term, payment, lookback):
            instance_type, region = found.pop("InstanceType"), found.pop("Region")
            family = instance_type.rsplit(".", 1)[0]
            details.append(
                {
                    "InstanceDetails": {
                        family_key: {
                            "Family": family,
                            "InstanceType": instance_type,
                            "Region": REGION_NAMES.get(region, region),
                            **extra,
                            "CurrentGeneration": True,
                            "SizeFlexEligible": True,
                        }
                    },
                    **found,
                }
            )
        offset = _offset(body.get("NextPageToken"))
        size = int(body.get("PageSize") or PAGE_SIZE)
        page = details[offset : offset + size]
        answer: dict[str, Any] = {"Metadata": self._metadata(), "Recommendations": []}
        if page:
            total = sum((Decimal(d["EstimatedMonthlySavingsAmount"]) for d in details), Decimal(0))
            on_demand = sum(
                (Decimal(d["EstimatedMonthlyOnDemandCost"]) for d in details), Decimal(0)
            )
            answer["Recommendations"].append(
                {
                    "AccountScope": scope,
                    "LookbackPeriodInDays": lookback,
                    "TermInYears": term,
                    "PaymentOption": payment,
                    "ServiceSpecification": {"EC2Specification": {"OfferingClass": "STANDARD"}},
                    "RecommendationDetails": page,
                    "RecommendationSummary": {
                        "TotalEstimatedMonthlySavingsAmount": format(total, "f"),
                        "TotalEstimatedMonthlySavingsPercentage": format(
                            (total / on_demand * 100).quantize(Decimal("0.01")), "f"
                        ),
                        "CurrencyCode": "USD",
                    },
                }
            )
        if offset + size < len(details):
            answer["NextPageToken"] = base64.urlsafe_b64encode(str(offset + size).encode()).decode()
        return answer


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def sigv4_signature(request: Request, secret: str, auth: re.Match[str]) -> str:
    """The Signature Version 4 signature of the request as AWS computes it: the canonical
    request over the signed headers, the string to sign for the credential scope, and the key
    derived from the secret, day, region and service."""
    names = auth["headers"].split(";")
    canonical_headers = "".join(
        f"{name}:{' '.join(request.headers.get(name, '').split())}\n" for name in names
    )
    query = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(request.query.items())
    )
    canonical = "\n".join(
        [
            request.method,
            quote(request.path or "/", safe="/-_.~"),
            query,
            canonical_headers,
            auth["headers"],
            hashlib.sha256(request.body).hexdigest(),
        ]
    )
    to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            request.headers.get("x-amz-date", ""),
            auth["scope"],
            hashlib.sha256(canonical.encode()).hexdigest(),
        ]
    )
    key = _hmac(("AWS4" + secret).encode(), auth["day"])
    for part in (auth["region"], "ce", "aws4_request"):
        key = _hmac(key, part)
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def _choice(
    body: dict[str, Any], name: str, allowed: tuple[str, ...], default: str | None = None
) -> str:
    value = body.get(name, default)
    if value is None:
        raise CostExplorerError(400, "ValidationException", f"{name} is required")
    if value not in allowed:
        raise CostExplorerError(
            400,
            "ValidationException",
            f"1 validation error detected: Value '{value}' at '{name}' failed to satisfy "
            f"constraint: Member must satisfy enum value set: [{', '.join(allowed)}]",
        )
    return str(value)


def _offset(token: Any) -> int:
    if not token:
        return 0
    try:
        return int(base64.urlsafe_b64decode(str(token)).decode())
    except ValueError:
        raise CostExplorerError(
            400, "InvalidNextTokenException", "The NextPageToken is invalid"
        ) from None
