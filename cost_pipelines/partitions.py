"""One partition per customer of the customers file, so each customer shows in the Dagster UI.

The partitions are dynamic (Dagster keeps them in its instance), not read when the code location
loads: the collection schedule syncs them with the file on every tick (`sync_customer_partitions`)
before it asks for runs, so a customer added to the file is a partition, and collected, at the
next tick without a restart. The API's trigger adds a customer's partition when it is missing
(a trigger may come before the first tick that saw the customer).

A customer removed from the file loses its partition at the next tick: the UI lists the customers
of the file, and a backfill of "all partitions" never launches runs for a customer nobody
collects any more. Nothing else goes: its costs stay in the warehouse (the API still answers
them), its runs and materializations stay in Dagster's history, and adding it back shows them
again. A file that cannot be read removes nobody."""

from __future__ import annotations

from dataclasses import dataclass

from dagster import DagsterInstance, DynamicPartitionsDefinition

from cost_pipelines.customers import CustomerBook
from cost_pipelines.runs import CUSTOMER_PARTITIONS

PARTITIONS_NAME = CUSTOMER_PARTITIONS
customer_partitions = DynamicPartitionsDefinition(name=PARTITIONS_NAME)


@dataclass(frozen=True)
class PartitionChanges:
    """The customer partitions a tick added and deleted."""

    added: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()

    def describe(self) -> str:
        parts = []
        if self.added:
            parts.append(f"added {', '.join(self.added)}")
        if self.deleted:
            parts.append(f"deleted {', '.join(self.deleted)} (no longer in the customers file)")
        return "customer partitions: " + "; ".join(parts) if parts else ""


def partition_changes(book: CustomerBook, existing: list[str]) -> PartitionChanges:
    """What makes the partitions equal the customers of the file (its invalid entries too: their
    runs then fail naming the bad field). An unreadable file deletes nothing."""
    wanted = set(book.partition_keys)
    have = set(existing)
    deleted = sorted(have - wanted) if book.readable else []
    return PartitionChanges(tuple(sorted(wanted - have)), tuple(deleted))


def sync_customer_partitions(instance: DagsterInstance, book: CustomerBook) -> PartitionChanges:
    """Add the partitions of new customers and delete those of removed ones, in the instance."""
    changes = partition_changes(book, list(instance.get_dynamic_partitions(PARTITIONS_NAME)))
    if changes.added:
        instance.add_dynamic_partitions(PARTITIONS_NAME, list(changes.added))
    for key in changes.deleted:
        # The partition key only: materializations and runs stay in the event log.
        instance.delete_dynamic_partition(PARTITIONS_NAME, key)
    return changes
