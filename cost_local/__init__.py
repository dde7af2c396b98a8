"""The local stack: everything `make run` and the tests start in place of real clouds and a real
ClickHouse server (the embedded chDB warehouse endpoint, the provider sandbox, a local Dagster).
Installed with the `local` extra; production imports none of it."""
