"""The customers file: validated entry by entry, errors that name file, customer and field."""

from __future__ import annotations

import contextvars
from datetime import timedelta
from pathlib import Path

from fastapi import HTTPException

from cost_api import dependencies as deps
from cost_api.auth import ALL_CUSTOMERS, ApiKey
from cost_pipelines.customers import CUSTOMER_ID_PATTERN, AwsConfig, load_customers
from tests.support.customers import write_customers

GOOD_AWS = {"billing_account_id": "123456789012"}
EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "customers.example.yaml"


def test_the_commented_example_loads_without_errors() -> None:
    book = load_customers(EXAMPLE)
    assert book.errors == []
    assert set(book.customers) == {"acme", "globex"}
    assert set(book.customers["acme"].providers) == {"aws", "azure"}


def test_a_bad_entry_names_file_customer_and_field_and_the_others_still_load(
    tmp_path: Path,
) -> None:
    path = write_customers(
        tmp_path / "customers.yaml",
        {
            "acme": {"providers": {"aws": GOOD_AWS}},
            "globex": {"providers": {"aws": {"billing_account_id": "12"}}},
            "initech": {"providers": {"vultr": {"billing_account_ids": ["x"], "poll": "1h"}}},
        },
    )

    book = load_customers(path)

    assert set(book.customers) == {"acme"}
    assert book.errors == [
        f"{path}: customer 'globex': providers.aws.billing_account_id: "
        "String should match pattern '^\\d{12}$'",
        f"{path}: customer 'initech': providers.vultr.poll: Extra inputs are not permitted",
    ]
    # Invalid customers stay partitions, so their runs fail naming the bad field.
    assert book.partition_keys == ["acme", "globex", "initech"]


def test_a_secret_pasted_where_an_env_var_name_belongs_is_rejected_without_echoing_it(
    tmp_path: Path,
) -> None:
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    aws = {**GOOD_AWS, "credentials": {"secret_access_key_env": secret}}
    path = write_customers(tmp_path / "c.yaml", {"leaky": {"providers": {"aws": aws}}})

    book = load_customers(path)

    assert book.customers == {}
    [error] = book.errors
    assert "customer 'leaky': providers.aws.credentials.secret_access_key_env" in error
    assert "looks like a secret value" in error
    assert secret not in error


def test_provider_defaults_follow_cadence_and_price_and_can_be_overridden(tmp_path: Path) -> None:
    path = write_customers(
        tmp_path / "c.yaml",
        {
            "acme": {"providers": {"aws": GOOD_AWS, "gcp": {"billing_account_ids": ["b"]}}},
            "fast": {"providers": {"aws": {**GOOD_AWS, "min_poll_interval": "90m"}}},
        },
    )

    book = load_customers(path)

    aws = book.customers["acme"].providers["aws"]
    assert isinstance(aws, AwsConfig)
    assert aws.min_poll_interval == timedelta(hours=6)
    assert book.customers["acme"].providers["gcp"].min_poll_interval == timedelta(hours=1)
    assert book.customers["fast"].providers["aws"].min_poll_interval == timedelta(minutes=90)


def test_an_unreadable_or_malformed_file_gives_no_customers_and_the_reason(tmp_path: Path) -> None:
    missing = load_customers(tmp_path / "nope.yaml")
    assert missing.customers == {}
    assert missing.errors == [f"{tmp_path / 'nope.yaml'}: cannot read: No such file or directory"]

    (tmp_path / "list.yaml").write_text("- acme\n")
    assert load_customers(tmp_path / "list.yaml").errors == [
        f"{tmp_path / 'list.yaml'}: expected a top-level 'customers:' mapping of id -> entry"
    ]


def test_the_api_checks_customer_ids_by_the_customers_files_own_rule(tmp_path: Path) -> None:
    assert deps.CUSTOMER_ID_PATTERN is CUSTOMER_ID_PATTERN
    ids = ["acme", "a" * 63, "a" * 64, "Acme", "acme.corp", "acme_2-b", "-acme"]
    path = write_customers(
        tmp_path / "customers.yaml",
        {
            customer: {"providers": {"aws": {"billing_account_id": "123456789012"}}}
            for customer in ids
        },
    )
    loaded = set(load_customers(path).customers)
    assert loaded == {"acme", "a" * 63, "acme_2-b"}
    every_customer = ApiKey("ops", "0" * 64, frozenset({ALL_CUSTOMERS}))
    accepted = set()
    for customer in ids:
        try:
            # In a context of its own, as a request has: the check binds the customer to the
            # request's log records, which must not stay on this thread for later tests.
            accepted.add(
                contextvars.copy_context().run(deps.check_customer_access, customer, every_customer)
            )
        except HTTPException as refused:
            assert refused.status_code == 422 and "lowercase" in str(refused.detail)
    assert accepted == loaded


def test_budgets_and_alerts_are_validated_naming_the_field_and_never_echo_a_url(
    tmp_path: Path,
) -> None:
    url = "https://hooks.example.com/services/T000/B000/XXXXsecretXXXX"
    path = write_customers(
        tmp_path / "customers.yaml",
        {
            "acme": {
                "providers": {},
                "budgets": [
                    {"amount": "-5", "currency": "USD"},
                    {"amount": "10", "currency": "usd", "thresholds": [0]},
                ],
                "alerts": {"webhook_url_env": url},
            },
            "good": {
                "providers": {},
                "budgets": [{"amount": "1200.50", "currency": "EUR", "provider": "azure"}],
                "alerts": {"webhook_url_env": "GOOD_ALERTS_URL"},
            },
        },
    )
    book = load_customers(path)
    text = "\n".join(book.errors)
    for field in ("budgets.0.amount", "budgets.1.currency", "budgets.1.thresholds"):
        assert f"'acme': {field}:" in text
    assert "alerts.webhook_url_env" in text and "secret" not in text.replace("a secret value", "")
    assert url not in text
    [budget] = book.customers["good"].budgets
    assert (budget.id, budget.thresholds) == ("azure-EUR", (50, 80, 100))


def test_two_budgets_of_one_customer_cannot_share_a_name(tmp_path: Path) -> None:
    budget = {"amount": "10", "currency": "USD"}
    path = write_customers(
        tmp_path / "customers.yaml", {"acme": {"providers": {}, "budgets": [budget, budget]}}
    )
    [error] = load_customers(path).errors
    assert "budgets" in error and "same name" in error
