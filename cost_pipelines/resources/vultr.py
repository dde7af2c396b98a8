"""Vultr as a Dagster resource: Bearer API key, cursor paging (`per_page` up to 500, stop when
`meta.links.next` is empty) and 429s retried with backoff by the shared retry helper."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx

from cost_pipelines.customers import VultrConfig
from cost_pipelines.resources.rest import (
    RestApi,
    RestResource,
    endpoint,
    env_credential,
    exact_json,
)
from cost_pipelines.resources.retry import Paginator

VULTR_URL = "https://api.vultr.com"
PER_PAGE = 500


def vultr_error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    return str(body.get("error", body))[:300] if isinstance(body, dict) else response.text[:200]


@dataclass
class VultrSession:
    """One customer's Vultr billing access."""

    api: RestApi
    base_url: str

    @property
    def requests(self) -> int:
        return self.api.requests

    def pages(self, path: str, name: str) -> Iterator[list[dict[str, Any]]]:
        """The `name` list of every page of a cursor-paged collection (amounts as Decimal)."""

        def fetch(cursor: str | None) -> dict[str, Any]:
            params = {"per_page": str(PER_PAGE), **({"cursor": cursor} if cursor else {})}
            response = self.api.request("GET", f"{self.base_url}{path}", path, params=params)
            return dict(exact_json(response))

        for page in Paginator(
            fetch, lambda page: page.get("meta", {}).get("links", {}).get("next")
        ):
            yield list(page.get(name, []))

    def pending_charges(self) -> list[dict[str, Any]]:
        path = "/v2/billing/pending-charges"
        response = self.api.request("GET", f"{self.base_url}{path}", path)
        return list(exact_json(response).get("pending_charges", []))

    def account(self) -> tuple[str, Decimal | None]:
        """The account's name and its pending charges total (/v2/account), the latter
        independent of the items."""
        path = "/v2/account"
        response = self.api.request("GET", f"{self.base_url}{path}", path)
        account = exact_json(response).get("account", {})
        value = account.get("pending_charges")
        pending = None if value is None or value == "" else Decimal(str(value))
        return str(account.get("name") or ""), pending


class VultrResource(RestResource):
    """Opens Vultr sessions with the API key the customers file names by env var."""

    @contextmanager
    def session(self, customer_id: str, config: VultrConfig) -> Iterator[VultrSession]:
        """One customer's Vultr access for one collection; its HTTP client is closed after."""
        key = env_credential(customer_id, "vultr", config.credentials, "api_key")
        with self.open_api(customer_id, "Vultr", error_text=vultr_error_text) as api:
            api.auth_headers = lambda: {"Authorization": f"Bearer {key}"}
            yield VultrSession(api, endpoint(config.endpoint_url_env, VULTR_URL))
