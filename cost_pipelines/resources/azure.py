"""Azure as a Dagster resource: an app registration's client-credentials token from Entra ID and
Cost Management queries whose every nextLink page is followed with the shared retries (429 waits
as long as the QPU retry-after header says)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from cost_pipelines.customers import AzureConfig
from cost_pipelines.resources.rest import (
    BearerToken,
    RestApi,
    RestResource,
    endpoint,
    env_credential,
    exact_json,
)
from cost_pipelines.resources.retry import Paginator

LOGIN_URL = "https://login.microsoftonline.com"
MANAGEMENT_URL = "https://management.azure.com"
API_VERSION = "2025-03-01"


def azure_error_text(response: httpx.Response) -> str:
    """Azure's error code and message (ARM shape) or Entra's error and AADSTS code."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return f"{error.get('code')}: {str(error.get('message', ''))[:300]}"
    if isinstance(error, str):
        codes = body.get("error_codes") or ["?"]
        return f"{error} (AADSTS{codes[0]})"
    return response.text[:200]


@dataclass
class AzureSession:
    """One customer's Cost Management access."""

    api: RestApi
    management_url: str

    @property
    def requests(self) -> int:
        return self.api.requests

    def billing_account_scope(self, billing_account_id: str) -> str:
        return f"/providers/Microsoft.Billing/billingAccounts/{billing_account_id}"

    def query(self, scope: str, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """The `properties` of every page of one query (nextLink answers the same body)."""
        first = (
            f"{self.management_url}{scope}/providers/Microsoft.CostManagement/query"
            f"?api-version={API_VERSION}"
        )

        def fetch(next_link: str | None) -> dict[str, Any]:
            response = self.api.request(
                "POST", next_link or first, f"Cost Management query {scope}", json=body
            )
            return dict(exact_json(response)["properties"])

        yield from Paginator(fetch, lambda page: page.get("nextLink"))


class AzureResource(RestResource):
    """Opens Cost Management sessions from the customers file's env var names."""

    @contextmanager
    def session(self, customer_id: str, config: AzureConfig) -> Iterator[AzureSession]:
        """One customer's Cost Management access for one collection; closed after."""

        def secret(key: str) -> str:
            return env_credential(customer_id, "azure", config.credentials, key)

        tenant, client_id, client_secret = (
            secret("tenant_id"),
            secret("client_id"),
            secret("client_secret"),
        )
        sandbox = endpoint(config.endpoint_url_env, "")  # one local server plays both hosts
        token_url = f"{sandbox or LOGIN_URL}/{tenant}/oauth2/v2.0/token"
        form = {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": client_secret,
            "scope": "https://management.azure.com/.default",
        }
        with self.open_api(
            customer_id, "Azure Cost Management", error_text=azure_error_text
        ) as api:

            def exchange() -> Mapping[str, Any]:
                # Entra answers 400 for unknown apps and tenants, 401 for a wrong secret.
                kwargs: dict[str, Any] = {"authenticated": False, "token_exchange": True}
                return dict(api.request("POST", token_url, "Entra ID", data=form, **kwargs).json())

            api.auth_headers = BearerToken(exchange).headers
            yield AzureSession(api, sandbox or MANAGEMENT_URL)
