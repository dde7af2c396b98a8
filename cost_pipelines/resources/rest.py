"""What the REST collectors (Azure, GCP, Vultr) share: an httpx client whose every request goes
through the one retry helper, JSON read with exact decimals, credentials read from environment
variables by name, and provider refusals turned into messages users can act on."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NoReturn

import httpx
from dagster import ConfigurableResource

from cost_pipelines.resources.retry import (
    CollectionFailure,
    Retry,
    RetryPolicy,
    call_with_retries,
    http_status_verdict,
    retry_after_seconds,
)

USER_AGENT = "cost-pipelines/0.1"


class CredentialsRejected(CollectionFailure):
    """The provider refused the customer's credentials or they could not be found."""


class ApiRefused(CollectionFailure):
    """The provider answered a request with an error that another try cannot fix."""


class _HttpAnswer(Exception):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


def classify_http_error(exc: BaseException) -> Retry | None:
    """Throttling, 5xx and dropped connections are retried, honouring Retry-After."""
    if isinstance(exc, _HttpAnswer):
        return http_status_verdict(exc.response.status_code, exc.response.headers)
    if isinstance(exc, httpx.TransportError):
        return Retry(type(exc).__name__)
    return None


def exact_json(response: httpx.Response) -> Any:
    """The body as JSON, numbers with a fraction as Decimal: every digit the provider sent."""
    return json.loads(response.content, parse_float=Decimal)


def env_credential(
    customer_id: str, provider: str, credentials: Mapping[str, str], key: str
) -> str:
    """The value of the environment variable the customers file names for this credential."""
    name = credentials.get(key)
    if not name:
        raise CredentialsRejected(
            f"customer {customer_id!r}: providers.{provider}.credentials.{key} is missing "
            "(the name of the environment variable holding it)"
        )
    value = os.environ.get(name)
    if not value:
        raise CredentialsRejected(
            f"customer {customer_id!r}: environment variable {name} "
            f"(providers.{provider}.credentials.{key}) is not set"
        )
    return value


# Renew a bearer token this long before it expires: a long paging run outlives a token.
TOKEN_MARGIN_S = 120


@dataclass
class BearerToken:
    """An OAuth2 access token, fetched again shortly before it expires. `exchange` asks the
    identity provider and returns its JSON answer ({access_token, expires_in})."""

    exchange: Callable[[], Mapping[str, Any]]
    value: str = ""
    expires_at: float = 0.0

    def headers(self) -> Mapping[str, str]:
        if time.monotonic() > self.expires_at - TOKEN_MARGIN_S:
            body = self.exchange()
            self.value = str(body["access_token"])
            self.expires_at = time.monotonic() + float(body.get("expires_in", 3599))
        return {"Authorization": f"Bearer {self.value}"}


@dataclass
class RestApi:
    """One customer's HTTP access to one provider API; counts every request it sends."""

    customer_id: str
    title: str  # "Azure Cost Management", used in messages
    http: httpx.Client
    policy: RetryPolicy
    # Headers for each attempt (a fresh bearer token when the last one expired).
    auth_headers: Callable[[], Mapping[str, str]] = dict
    # How the provider writes its error message in a body, for refusals users can act on.
    error_text: Callable[[httpx.Response], str] = lambda r: r.text[:300]
    # A limit the provider answers with another status than 429, by its reason (None: not one).
    # `throttled` is short-term and retried like a 429 (BigQuery's 403 rateLimitExceeded);
    # `over_quota` is refused at once, but never as a credentials problem (403 quotaExceeded).
    throttled: Callable[[httpx.Response], str | None] = lambda r: None
    over_quota: Callable[[httpx.Response], str | None] = lambda r: None
    requests: int = field(default=0)

    def request(
        self,
        method: str,
        url: str,
        what: str,
        *,
        authenticated: bool = True,
        token_exchange: bool = False,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send with retries; a 401/403 becomes CredentialsRejected, other 4xx ApiRefused.
        For a token exchange (`what` names the identity provider) every 4xx is a rejection."""
        extra_headers = kwargs.pop("headers", {})

        def attempt() -> httpx.Response:
            self.requests += 1
            auth = self.auth_headers() if authenticated else {}
            headers = {**auth, **extra_headers}
            response = self.http.request(method, url, headers=headers, **kwargs)
            if response.status_code >= 400:
                raise _HttpAnswer(response)
            return response

        def classify(exc: BaseException) -> Retry | None:
            if isinstance(exc, _HttpAnswer) and (reason := self.throttled(exc.response)):
                return Retry(reason, retry_after_seconds(exc.response.headers))
            return classify_http_error(exc)

        try:
            return call_with_retries(attempt, classify, policy=self.policy, what=what)
        except _HttpAnswer as answer:
            if token_exchange and answer.response.status_code < 500:
                raise CredentialsRejected(
                    f"{what} rejected the credentials of customer {self.customer_id!r} "
                    f"({self.error_text(answer.response)}): renew or fix them"
                ) from None
            self.refuse(answer.response, what)
        except httpx.HTTPError as exc:
            raise ApiRefused(f"{self.title}: {what} failed: {type(exc).__name__}") from None

    def refuse(self, response: httpx.Response, what: str) -> NoReturn:
        status = response.status_code
        detail = self.error_text(response)
        limit = self.over_quota(response) or self.throttled(response)
        if status in (401, 403) and not limit:
            raise CredentialsRejected(
                f"{self.title} rejected the credentials of customer {self.customer_id!r} "
                f"(HTTP {status}: {detail}): renew or fix them"
            )
        raise ApiRefused(f"{self.title}: {what} was refused (HTTP {status}: {detail})")

    def close(self) -> None:
        self.http.close()


class RestResource(ConfigurableResource):  # type: ignore[type-arg]
    """Retry and timeout settings every REST collector resource shares."""

    retry_attempts: int = 5
    retry_base_delay_s: float = 1.0
    retry_max_delay_s: float = 120.0
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 120.0

    @contextmanager
    def open_api(
        self,
        customer_id: str,
        title: str,
        *,
        error_text: Callable[[httpx.Response], str] = lambda r: r.text[:300],
        throttled: Callable[[httpx.Response], str | None] = lambda r: None,
        over_quota: Callable[[httpx.Response], str | None] = lambda r: None,
    ) -> Iterator[RestApi]:
        """One customer's HTTP client for one provider, closed when the collection is done."""
        timeout = httpx.Timeout(self.read_timeout_s, connect=self.connect_timeout_s)
        api = RestApi(
            customer_id=customer_id,
            title=title,
            http=httpx.Client(timeout=timeout, headers={"User-Agent": USER_AGENT}),
            policy=RetryPolicy(
                self.retry_attempts, self.retry_base_delay_s, self.retry_max_delay_s
            ),
            error_text=error_text,
            throttled=throttled,
            over_quota=over_quota,
        )
        try:
            yield api
        finally:
            api.close()


def endpoint(config_env: str | None, default: str) -> str:
    """The provider's real base URL, or the one the named environment variable holds (sandbox)."""
    value = os.environ.get(config_env) if config_env else None
    return (value or default).rstrip("/")
