"""One partition per customer of the customers file, so each customer shows in the Dagster UI."""

from __future__ import annotations

from dagster import StaticPartitionsDefinition

from cost_pipelines.customers import CustomerBook, load_customers_from_env


def customer_partitions(book: CustomerBook) -> StaticPartitionsDefinition:
    """The customer partitions of a customers file (invalid entries included: their runs then
    fail naming the bad field)."""
    return StaticPartitionsDefinition(book.partition_keys)


def customer_partitions_from_env() -> StaticPartitionsDefinition:
    """The partitions of the customers file CUSTOMERS_FILE points at, read when the code
    location loads."""
    return customer_partitions(load_customers_from_env())
