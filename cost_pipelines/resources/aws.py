"""AWS as a Dagster resource: boto3 clients built from one customer's credential references, with
throttling retried in our one retry helper and rejected credentials turned into a clear failure."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)
from dagster import ConfigurableResource

from cost_pipelines.customers import AwsConfig
from cost_pipelines.resources.retry import (
    CollectionFailure,
    Retry,
    RetryPolicy,
    call_with_retries,
    http_status_verdict,
    retry_after_seconds,
)

# Codes AWS answers when the keys are wrong, expired or not allowed: retrying cannot help.
CREDENTIAL_ERRORS = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredTokenException",
        "ExpiredToken",
        "AccessDeniedException",
        "AccessDenied",
        "SignatureDoesNotMatch",
        "InvalidSignatureException",
        "InvalidAccessKeyId",
        "AuthFailure",
    }
)
# Cost Explorer throttles with LimitExceededException; other services use these names.
THROTTLING_ERRORS = frozenset(
    {
        "LimitExceededException",
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "SlowDown",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalServerError",
        "InternalFailure",
        "RequestTimeout",
    }
)


class CredentialsRejected(CollectionFailure):
    """AWS refused the customer's credentials, or none could be found."""


class TruncatedAnswer(Exception):
    """A JSON-protocol answer whose body does not parse: cut short on the way."""


def require_complete_json(operation_model: Any, response_dict: dict[str, Any], **_: Any) -> None:
    """botocore's JSON parser turns a body it cannot parse into an ignored message, so a Cost
    Explorer page cut short on the way reads as a successful answer without any field: a window
    without costs. A successful JSON-protocol answer must parse (registered on `before-parse`)."""
    if response_dict.get("status_code") != 200 or operation_model.has_streaming_output:
        return
    if operation_model.service_model.resolved_protocol != "json":
        return
    body = response_dict.get("body")
    if not isinstance(body, bytes):
        return
    try:
        json.loads(body)
    except ValueError:
        raise TruncatedAnswer(
            f"a truncated answer ({len(body)} bytes that are not complete JSON)"
        ) from None


def classify_aws_error(exc: BaseException) -> Retry | None:
    """Throttling, 5xx, truncated answers, timeouts and dropped connections are retried (the
    transient errors botocore's own standard retries cover); everything else fails at once."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        meta = exc.response.get("ResponseMetadata", {})
        headers = meta.get("HTTPHeaders", {}) or {}
        code = str(error.get("Code", ""))
        if code in THROTTLING_ERRORS:
            return Retry(code, retry_after_seconds(headers))
        return http_status_verdict(int(meta.get("HTTPStatusCode", 0) or 0), headers)
    if isinstance(exc, TruncatedAnswer):
        return Retry(str(exc))
    if isinstance(exc, BotoConnectionError | HTTPClientError):
        return Retry(type(exc).__name__)
    return None


@dataclass
class AwsSession:
    """One customer's way into AWS: clients per service and calls with retries."""

    customer_id: str
    session: boto3.Session
    endpoint_url: str | None
    botocore_config: BotoConfig
    policy: RetryPolicy
    credentials_source: str
    _clients: list[Any] = field(default_factory=list)

    def client(
        self, service: str, region: str | None = None, endpoint_url: str | None = None
    ) -> Any:
        """A client for one service (at `endpoint_url` if given); closed with the session."""
        client = self.session.client(
            service,  # type: ignore[call-overload]
            region_name=region or self.session.region_name,
            endpoint_url=endpoint_url or self.endpoint_url,
            config=self.botocore_config,
        )
        client.meta.events.register("before-parse", require_complete_json)
        self._clients.append(client)
        return client

    def close(self) -> None:
        """Close every client this session vended (their connection pools)."""
        for client in self._clients:
            client.close()
        self._clients.clear()

    def call(self, operation: Callable[..., Any], what: str, **params: Any) -> Any:
        """Call one API operation with retries; credential failures become CredentialsRejected."""
        try:
            return call_with_retries(
                lambda: operation(**params), classify_aws_error, policy=self.policy, what=what
            )
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in CREDENTIAL_ERRORS:
                raise CredentialsRejected(
                    f"AWS rejected the credentials of customer {self.customer_id!r} "
                    f"({code}) from {self.credentials_source}: renew or fix them"
                ) from None
            raise
        except (NoCredentialsError, PartialCredentialsError) as exc:
            raise CredentialsRejected(
                f"no usable AWS credentials for customer {self.customer_id!r} "
                f"from {self.credentials_source}: {type(exc).__name__}"
            ) from None
        except BotoCoreError as exc:  # an answer botocore could not read; its text may hold URLs
            raise CollectionFailure(
                f"AWS: {what} failed for customer {self.customer_id!r}: {type(exc).__name__}"
            ) from None


def _env(customer_id: str, field: str, name: str | None) -> str | None:
    if name is None:
        return None
    value = os.environ.get(name)
    if not value:
        raise CredentialsRejected(
            f"customer {customer_id!r}: environment variable {name} "
            f"(providers.aws.credentials.{field}) is not set"
        )
    return value


@cache
def _boto_config(connect_s: float, read_s: float) -> BotoConfig:
    # botocore's own retries are off: ours honour Retry-After and are the same for every provider.
    return BotoConfig(
        retries={"max_attempts": 1, "mode": "standard"},
        connect_timeout=connect_s,
        read_timeout=read_s,
    )


class AwsResource(ConfigurableResource):  # type: ignore[type-arg]
    """Builds boto3 sessions from the customers file's references (env var names or a profile)."""

    retry_attempts: int = 5
    retry_base_delay_s: float = 1.0
    retry_max_delay_s: float = 120.0
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0

    @contextmanager
    def session(self, customer_id: str, config: AwsConfig) -> Iterator[AwsSession]:
        """One customer's AWS access for one collection; its clients are closed after."""
        creds = config.credentials
        names = [creds.access_key_id_env, creds.secret_access_key_env]
        if creds.access_key_id_env or creds.secret_access_key_env:
            if not all(names):
                raise CredentialsRejected(
                    f"customer {customer_id!r}: providers.aws.credentials needs both "
                    "access_key_id_env and secret_access_key_env"
                )
            source = "environment variables " + ", ".join(n for n in names if n)
        elif creds.profile:
            source = f"profile {creds.profile!r}"
        else:
            source = "the default AWS credential chain"
        try:
            session = boto3.Session(
                aws_access_key_id=_env(customer_id, "access_key_id_env", creds.access_key_id_env),
                aws_secret_access_key=_env(
                    customer_id, "secret_access_key_env", creds.secret_access_key_env
                ),
                aws_session_token=_env(customer_id, "session_token_env", creds.session_token_env),
                profile_name=creds.profile,
                region_name=config.region,
            )
        except (ProfileNotFound, BotoCoreError) as exc:
            raise CredentialsRejected(
                f"customer {customer_id!r}: cannot use {source}: {type(exc).__name__}"
            ) from None
        endpoint = os.environ.get(config.endpoint_url_env) if config.endpoint_url_env else None
        aws = AwsSession(
            customer_id=customer_id,
            session=session,
            endpoint_url=endpoint or None,
            botocore_config=_boto_config(self.connect_timeout_s, self.read_timeout_s),
            policy=RetryPolicy(
                self.retry_attempts, self.retry_base_delay_s, self.retry_max_delay_s
            ),
            credentials_source=source,
        )
        try:
            yield aws
        finally:
            aws.close()
