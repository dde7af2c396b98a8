"""The ClickHouse warehouse: connection settings, schema migrations, the window-replace write path
and the embedded ClickHouse HTTP endpoint (chDB) used when no server is configured."""
