"""The sandbox's demo customer: fresh credentials for every simulator, the environment file that
hands them to the collectors, and the customers file that points the `demo` customer at the
simulators (by environment variable NAMES, as a real customers file does)."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cost_local.sandbox.azure import AzureApp
from cost_local.sandbox.catalog import Account, demo_accounts
from cost_local.sandbox.gcp import BillingExport, new_service_account_key

CUSTOMER_ID = "demo"
ENV_FILE_NAME = "sandbox.env"
GCP_PROJECT = "demo-billing"
GCP_DATASET = "billing_export"


@dataclass(frozen=True)
class DemoSecrets:
    """What the collectors need to reach the simulators; regenerated on every sandbox start."""

    aws_access_key_id: str
    aws_secret_access_key: str
    azure_app: AzureApp
    gcp_key: dict[str, str]
    vultr_api_key: str


def new_secrets(gcp_token_uri: str) -> DemoSecrets:
    return DemoSecrets(
        aws_access_key_id="AKIA" + secrets.token_hex(8).upper(),
        aws_secret_access_key=secrets.token_urlsafe(30),
        azure_app=AzureApp("sandbox-tenant", "sandbox-cost-reader", secrets.token_urlsafe(24)),
        gcp_key=new_service_account_key(
            f"cost-reader@{GCP_PROJECT}.iam.gserviceaccount.com", GCP_PROJECT, gcp_token_uri
        ),
        vultr_api_key=secrets.token_hex(18).upper(),
    )


def accounts() -> dict[str, Account]:
    return {a.provider: a for a in demo_accounts(CUSTOMER_ID)}


def gcp_export() -> BillingExport:
    return BillingExport(GCP_PROJECT, GCP_DATASET, accounts()["gcp"].billing_account_id)


def environment(urls: dict[str, str], demo: DemoSecrets, gcp_key_file: Path) -> dict[str, str]:
    """The variables the demo customer's entry names, with their values."""
    return {
        "SANDBOX_AWS_ENDPOINT": urls["aws"],
        "SANDBOX_AWS_CE_ENDPOINT": urls.get("aws_ce", urls["aws"]),
        "SANDBOX_AWS_ACCESS_KEY_ID": demo.aws_access_key_id,
        "SANDBOX_AWS_SECRET_ACCESS_KEY": demo.aws_secret_access_key,
        "SANDBOX_AZURE_ENDPOINT": urls["azure"],
        "SANDBOX_AZURE_TENANT_ID": demo.azure_app.tenant_id,
        "SANDBOX_AZURE_CLIENT_ID": demo.azure_app.client_id,
        "SANDBOX_AZURE_CLIENT_SECRET": demo.azure_app.client_secret,
        "SANDBOX_BIGQUERY_ENDPOINT": urls["gcp"],
        "SANDBOX_GCP_KEY_FILE": str(gcp_key_file),
        "SANDBOX_VULTR_ENDPOINT": urls["vultr"],
        "SANDBOX_VULTR_API_KEY": demo.vultr_api_key,
    }


def customers_document() -> dict[str, Any]:
    """The customers file of the sandbox: the demo customer on all four simulators."""
    by_provider = accounts()
    return {
        "customers": {
            CUSTOMER_ID: {
                "name": "Demo (sandbox)",
                "providers": {
                    "aws": {
                        "billing_account_id": by_provider["aws"].billing_account_id,
                        "credentials": {
                            "access_key_id_env": "SANDBOX_AWS_ACCESS_KEY_ID",
                            "secret_access_key_env": "SANDBOX_AWS_SECRET_ACCESS_KEY",
                        },
                        "endpoint_url_env": "SANDBOX_AWS_ENDPOINT",
                    },
                    "azure": {
                        "billing_account_ids": [by_provider["azure"].billing_account_id],
                        "credentials": {
                            "tenant_id": "SANDBOX_AZURE_TENANT_ID",
                            "client_id": "SANDBOX_AZURE_CLIENT_ID",
                            "client_secret": "SANDBOX_AZURE_CLIENT_SECRET",
                        },
                        "endpoint_url_env": "SANDBOX_AZURE_ENDPOINT",
                        "tag_keys": ["team", "env"],
                    },
                    "gcp": {
                        "billing_account_ids": [by_provider["gcp"].billing_account_id],
                        "credentials": {"service_account_file": "SANDBOX_GCP_KEY_FILE"},
                        "options": {"dataset": f"{GCP_PROJECT}.{GCP_DATASET}"},
                        "endpoint_url_env": "SANDBOX_BIGQUERY_ENDPOINT",
                    },
                    "vultr": {
                        "billing_account_ids": [by_provider["vultr"].billing_account_id],
                        "credentials": {"api_key": "SANDBOX_VULTR_API_KEY"},
                        "endpoint_url_env": "SANDBOX_VULTR_ENDPOINT",
                    },
                },
                # About a month of the demo's bills: the forecast reaches 80% early on.
                "budgets": [
                    {"name": "usd-total", "amount": "15000", "currency": "USD"},
                    {"amount": "7000", "currency": "EUR", "provider": "azure"},
                ],
                # Cost Explorer's recommendations from the sandbox's own server (moto has none);
                # GCP's Recommender for the projects and regions the demo granted; the demo's
                # Savings Plan is used ~87%: below this threshold, so it is reported.
                "recommendations": {
                    "aws": {"endpoint_url_env": "SANDBOX_AWS_CE_ENDPOINT"},
                    "gcp": {
                        "projects": [sub.id for sub in by_provider["gcp"].sub_accounts],
                        "locations": list(by_provider["gcp"].regions),
                    },
                    "min_utilisation": "0.9",
                },
                # Set DEMO_ALERTS_WEBHOOK_URL before `make run` to receive the alert events.
                "alerts": {"webhook_url_env": "DEMO_ALERTS_WEBHOOK_URL"},
            }
        }
    }


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, atomically (readers never see half of it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    partial.replace(path)


def write_environment_file(path: Path, variables: dict[str, str]) -> None:
    lines = ["# Written by cost-sandbox on every start: the demo customer's sandbox credentials."]
    lines += [f"{name}={value}" for name, value in variables.items()]
    write_private(path, "\n".join(lines) + "\n")


def read_environment_file(path: Path) -> dict[str, str]:
    """The variables cost-sandbox wrote, for the process that starts Dagster (`make run`)."""
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            out[name.strip()] = value
    return out


def write_customers_file(path: Path) -> None:
    write_private(path, yaml.safe_dump(customers_document(), sort_keys=False))
