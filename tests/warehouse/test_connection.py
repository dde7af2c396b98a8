"""Choosing between a real ClickHouse (CLICKHOUSE_URL) and the embedded endpoint."""

import pytest

from cost_pipelines.warehouse.connection import WarehouseSettings


def test_without_a_url_the_embedded_endpoint_on_the_warehouse_port_is_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CLICKHOUSE_URL", raising=False)
    monkeypatch.setenv("WAREHOUSE_PORT", "18123")
    assert WarehouseSettings().endpoint == ("http", "127.0.0.1", 18123, False)


def test_an_https_url_means_tls_and_the_secure_default_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CLICKHOUSE_URL", "https://abc.eu-west-1.aws.clickhouse.cloud")
    monkeypatch.setenv("CLICKHOUSE_PASSWORD", "s3cret-value")
    settings = WarehouseSettings()
    assert settings.endpoint == ("https", "abc.eu-west-1.aws.clickhouse.cloud", 8443, True)
    assert "s3cret-value" not in settings.describe()
    assert "s3cret-value" not in repr(settings)


def test_a_url_with_another_scheme_is_refused_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CLICKHOUSE_URL", "tcp://db:9000")
    with pytest.raises(ValueError, match="CLICKHOUSE_URL must look like http"):
        _ = WarehouseSettings().endpoint


def test_compression_is_off_on_loopback_and_on_for_a_server_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CLICKHOUSE_URL", raising=False)
    monkeypatch.delenv("CLICKHOUSE_COMPRESS", raising=False)
    assert WarehouseSettings().compress is False
    assert WarehouseSettings(clickhouse_url="http://localhost:8123").compress is False
    # An address outside this machine (resolving a literal address needs no network).
    assert WarehouseSettings(clickhouse_url="https://192.0.2.10:8443").compress is True


def test_compression_can_be_set_either_way(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLICKHOUSE_COMPRESS", raising=False)
    assert WarehouseSettings(clickhouse_compress=True).compress is True
    remote = WarehouseSettings(clickhouse_url="https://192.0.2.10:8443", clickhouse_compress=False)
    assert remote.compress is False
