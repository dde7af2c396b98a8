"""cost-warehouse: the chDB ClickHouse engine behind the ClickHouse HTTP interface, on loopback."""
