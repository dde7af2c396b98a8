"""How the project talks to ClickHouse: connection settings, schema migrations and the
window-replace write path. The embedded endpoint used when no server is configured lives in
`cost_local.warehouse`."""
