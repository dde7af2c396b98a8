"""One way to reach ClickHouse for the whole project: a real server via CLICKHOUSE_URL, or the
embedded cost-warehouse endpoint on loopback."""

from __future__ import annotations

import ipaddress
import socket
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

EMBEDDED_HOST = "127.0.0.1"
CONNECT_TIMEOUT_S = 5
QUERY_TIMEOUT_S = 60


class WarehouseSettings(BaseSettings):
    """Where ClickHouse is. Unset CLICKHOUSE_URL means the embedded endpoint on WAREHOUSE_PORT."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    clickhouse_url: str | None = Field(
        default=None,
        description="http(s)://host:port of a ClickHouse server or ClickHouse Cloud; "
        "unset = the embedded endpoint",
    )
    clickhouse_user: str = "default"
    clickhouse_password: SecretStr = SecretStr("")
    clickhouse_database: str = "default"
    clickhouse_cluster: str | None = Field(
        default=None, description="Cluster name: migrations use ON CLUSTER and Replicated engines"
    )
    warehouse_host: str = EMBEDDED_HOST
    warehouse_port: int = 8123
    clickhouse_query_timeout_s: int = QUERY_TIMEOUT_S
    clickhouse_compress: bool | None = Field(
        default=None,
        description="Compress what goes to and comes from ClickHouse (lz4); unset = only when "
        "the server is not on this machine (on loopback it costs CPU and saves nothing)",
    )
    cost_retention_days: int = Field(
        default=90,
        ge=1,
        description="Days superseded loads are kept for point-in-time reads (as_of) before the "
        "retention job deletes them",
    )

    @cached_property
    def endpoint(self) -> tuple[str, str, int, bool]:
        """(scheme, host, port, secure) of the server this project talks to."""
        if not self.clickhouse_url:
            return ("http", self.warehouse_host, self.warehouse_port, False)
        parts = urlsplit(self.clickhouse_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"CLICKHOUSE_URL must look like http(s)://host:port, got scheme {parts.scheme!r}"
            )
        secure = parts.scheme == "https"
        return (parts.scheme, parts.hostname, parts.port or (8443 if secure else 8123), secure)

    @property
    def compress(self) -> bool:
        if self.clickhouse_compress is not None:
            return self.clickhouse_compress
        _, host, _, _ = self.endpoint
        return not is_loopback(host)

    def describe(self) -> str:
        """Where we connect, for logs: never includes the password."""
        scheme, host, port, _ = self.endpoint
        return f"{scheme}://{host}:{port}/{self.clickhouse_database}"


def is_loopback(host: str) -> bool:
    """True if every address `host` resolves to is a loopback address (this machine)."""
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


# On a cluster (see schema.DDLContext) a window is published by inserting its rows, then its
# per-day pointers, through the Distributed tables, both to the customer's shard. For readers to
# see the old window or the new one and nothing else: the insert returns only once the shard has
# the rows (synchronous distributed insert) on a majority of its replicas (quorum), so the pointer
# insert starts after; the pointers are one insert, one block, one part (atomic on each replica);
# and a read only uses replicas that have every quorum insert (sequential consistency), so no
# replica shows pointers whose rows it has not fetched yet.
CLUSTER_SETTINGS: dict[str, Any] = {
    "insert_distributed_sync": 1,
    "insert_quorum": "auto",
    "select_sequential_consistency": 1,
}


def client_settings(settings: WarehouseSettings) -> dict[str, Any]:
    """Session settings every query of this deployment carries."""
    return dict(CLUSTER_SETTINGS) if settings.clickhouse_cluster else {}


def create_client(settings: WarehouseSettings | None = None, **overrides: Any) -> Client:
    """A clickhouse-connect client for the configured warehouse. Create once and reuse it: it has
    no session id, so one client is safe to share between threads."""
    settings = settings or WarehouseSettings()
    _, host, port, secure = settings.endpoint
    kwargs: dict[str, Any] = {
        "host": host,
        "port": port,
        "secure": secure,
        "username": settings.clickhouse_user,
        "password": settings.clickhouse_password.get_secret_value(),
        "database": settings.clickhouse_database,
        "connect_timeout": CONNECT_TIMEOUT_S,
        "send_receive_timeout": settings.clickhouse_query_timeout_s,
        "autogenerate_session_id": False,
        "compress": settings.compress,
    }
    if cluster_settings := client_settings(settings):
        kwargs["settings"] = cluster_settings
    kwargs.update(overrides)
    return clickhouse_connect.get_client(**kwargs)
