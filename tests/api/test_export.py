"""GET .../export: the period's current lines as a FOCUS 1.2 file. Read back with pandas (CSV) and
pyarrow (Parquet), the file equals the stored lines to the last decimal, and its columns carry the
FOCUS 1.2 column IDs and data types."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cost_pipelines.warehouse.connection import WarehouseSettings, create_client
from cost_pipelines.warehouse.writer import CostWindow, replace_window
from tests.api.dataset import Dataset
from tests.support.api import Api
from tests.support.processes import WarehouseProcess

# FOCUS 1.2 (FOCUS_Spec tag v1.2, specification/columns/*.md): column ID -> (feature level,
# allows nulls, data type).
FOCUS_1_2: dict[str, tuple[str, bool, str]] = {
    "AvailabilityZone": ("Recommended", True, "String"),
    "BilledCost": ("Mandatory", False, "Decimal"),
    "BillingAccountId": ("Mandatory", False, "String"),
    "BillingAccountName": ("Mandatory", True, "String"),
    "BillingAccountType": ("Conditional", False, "String"),
    "BillingCurrency": ("Mandatory", False, "String"),
    "BillingPeriodEnd": ("Mandatory", False, "Date/Time"),
    "BillingPeriodStart": ("Mandatory", False, "Date/Time"),
    "CapacityReservationId": ("Conditional", True, "String"),
    "CapacityReservationStatus": ("Conditional", True, "String"),
    "ChargeCategory": ("Mandatory", False, "String"),
    "ChargeClass": ("Mandatory", True, "String"),
    "ChargeDescription": ("Mandatory", True, "String"),
    "ChargeFrequency": ("Recommended", False, "String"),
    "ChargePeriodEnd": ("Mandatory", False, "Date/Time"),
    "ChargePeriodStart": ("Mandatory", False, "Date/Time"),
    "CommitmentDiscountCategory": ("Conditional", True, "String"),
    "CommitmentDiscountId": ("Conditional", True, "String"),
    "CommitmentDiscountName": ("Conditional", True, "String"),
    "CommitmentDiscountQuantity": ("Conditional", True, "Decimal"),
    "CommitmentDiscountStatus": ("Conditional", True, "String"),
    "CommitmentDiscountType": ("Conditional", True, "String"),
    "CommitmentDiscountUnit": ("Conditional", True, "String"),
    "ConsumedQuantity": ("Conditional", True, "Decimal"),
    "ConsumedUnit": ("Conditional", True, "String"),
    "ContractedCost": ("Mandatory", False, "Decimal"),
    "ContractedUnitPrice": ("Conditional", True, "Decimal"),
    "EffectiveCost": ("Mandatory", False, "Decimal"),
    "InvoiceId": ("Recommended", True, "String"),
    "InvoiceIssuerName": ("Mandatory", False, "String"),
    "ListCost": ("Mandatory", False, "Decimal"),
    "ListUnitPrice": ("Conditional", True, "Decimal"),
    "PricingCategory": ("Conditional", True, "String"),
    "PricingCurrency": ("Conditional", True, "String"),
    "PricingCurrencyContractedUnitPrice": ("Conditional", True, "Decimal"),
    "PricingCurrencyEffectiveCost": ("Conditional", True, "Decimal"),
    "PricingCurrencyListUnitPrice": ("Conditional", True, "Decimal"),
    "PricingQuantity": ("Mandatory", True, "Decimal"),
    "PricingUnit": ("Mandatory", True, "String"),
    "ProviderName": ("Mandatory", False, "String"),
    "PublisherName": ("Mandatory", False, "String"),
    "RegionId": ("Conditional", True, "String"),
    "RegionName": ("Conditional", True, "String"),
    "ResourceId": ("Conditional", True, "String"),
    "ResourceName": ("Conditional", True, "String"),
    "ResourceType": ("Conditional", True, "String"),
    "ServiceCategory": ("Mandatory", False, "String"),
    "ServiceName": ("Mandatory", False, "String"),
    "ServiceSubcategory": ("Recommended", False, "String"),
    "SkuId": ("Conditional", True, "String"),
    "SkuMeter": ("Conditional", True, "String"),
    "SkuPriceDetails": ("Conditional", True, "JSON"),
    "SkuPriceId": ("Conditional", True, "String"),
    "SubAccountId": ("Conditional", True, "String"),
    "SubAccountName": ("Conditional", True, "String"),
    "SubAccountType": ("Conditional", True, "String"),
    "Tags": ("Conditional", True, "JSON"),
}
MANDATORY = {name for name, (level, _, _) in FOCUS_1_2.items() if level == "Mandatory"}
# Stored NULL where the source does not publish them (the project's rule), though FOCUS wants a
# value: the export keeps the truth.
UNSUPPLIED_BY_SOME_SOURCES = {"ListCost", "ContractedCost", "EffectiveCost", "PricingQuantity"}
# The shared data set stores no ProviderName (every collector does: see the `tagged` line).
NOT_IN_THE_DATA_SET = {"ProviderName", "InvoiceIssuerName", "PublisherName"}
PARQUET_TYPES = {
    "Decimal": pa.decimal128(38, 12),
    "Date/Time": pa.timestamp("ms", tz="UTC"),
    "String": pa.string(),
}


def parquet_type_is(focus_type: str, found: pa.DataType) -> bool:
    """FOCUS's data type as Parquet holds it exactly; Tags (JSON) as a map of strings."""
    if focus_type == "JSON":
        return bool(pa.types.is_map(found)) and (found.key_type, found.item_type) == (
            pa.string(),
            pa.string(),
        )
    return bool(found == PARQUET_TYPES[focus_type])


TAGS = {"team": 'web "blue"', "cost-center": "4711"}
COMPARED = [
    "ChargePeriodStart",
    "x_Provider",
    "BillingAccountId",
    "ServiceName",
    "ServiceCategory",
    "ChargeCategory",
    "ResourceId",
    "ResourceName",
    "RegionId",
    "BillingCurrency",
    "BilledCost",
    "EffectiveCost",
    "ListCost",
    "ContractedCost",
]


@pytest.fixture(scope="module")
def tagged(warehouse: WarehouseProcess, api: Api, dataset: Dataset) -> datetime:
    """One line of a customer of its own with tags whose values need JSON escaping."""
    client = create_client(
        WarehouseSettings(warehouse_port=warehouse.port, clickhouse_database=api.database)
    )
    day = api.today - timedelta(days=3)
    start = datetime.combine(day, time(0), UTC)
    line = {
        "ChargePeriodStart": start,
        "BilledCost": Decimal("0.000000123456"),
        "BillingCurrency": "USD",
        "ServiceName": "Amazon EC2",
        "ServiceCategory": "Compute",
        "ChargeCategory": "Usage",
        "ResourceId": "i-tagged",
        "ProviderName": "AWS",
        "Tags": TAGS,
    }
    window = CostWindow("tagged", "aws", "555555555555", day, day + timedelta(days=1))
    try:
        replace_window(client, window, pd.DataFrame([line]), source="test", run_id="run-1")
    finally:
        client.close()
    return start


def expected(lines: pd.DataFrame, customer_id: str) -> list[tuple[Any, ...]]:
    """The data set's current lines of the customer as the export must show them."""
    rows = lines[lines["customer_id"] == customer_id]
    out = []
    for r in rows.itertuples():
        resource = r.ResourceId or None
        out.append(
            (
                _instant(r.ChargePeriodStart),
                r.provider,
                r.BillingAccountId,
                r.ServiceName,
                r.ServiceCategory,
                r.ChargeCategory,
                resource,
                r.ResourceName or None,
                r.RegionId,
                r.BillingCurrency,
                *(_exact(getattr(r, c)) for c in COMPARED[-4:]),
            )
        )
    return sorted(out, key=repr)


def _instant(value: Any) -> str:
    """An instant as UTC ISO text, whichever type carried it (naive means UTC)."""
    stamp = pd.Timestamp(value)
    return (
        stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    ).isoformat()


def _exact(value: Any) -> Decimal | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    return Decimal(str(value)).normalize()


def export(api: Api, customer: str, provider: str = "all", **params: Any) -> Any:
    return api.get(f"/api/v2/costs/{customer}/{provider}/export", **params)


def whole_history(api: Api) -> dict[str, str]:
    """A period holding every line of the data set (it goes back 130 days)."""
    start = api.today - timedelta(days=200)
    return {"start": start.isoformat(), "end": (api.today + timedelta(days=1)).isoformat()}


def test_csv_export_equals_the_stored_lines_to_the_last_decimal(
    api: Api, lines: pd.DataFrame
) -> None:
    response = export(api, "acme", format="csv", **whole_history(api))
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    period = whole_history(api)
    assert response.headers["content-disposition"] == (
        f'attachment; filename="focus-acme-all-{period["start"]}_{period["end"]}.csv"'
    )
    frame = pd.read_csv(
        io.BytesIO(response.content), dtype=str, keep_default_na=False, na_values=[""]
    )
    frame = frame.astype(object).where(frame.notna(), None)
    got = sorted(
        (
            _instant(datetime.strptime(r["ChargePeriodStart"], "%Y-%m-%dT%H:%M:%SZ")),
            *(r[c] for c in COMPARED[1:-4]),
            *(_exact(r[c]) for c in COMPARED[-4:]),
        )
        for r in frame.to_dict("records")
    )
    assert sorted(got, key=repr) == expected(lines, "acme")


def test_parquet_export_equals_the_stored_lines_with_focus_data_types(
    api: Api, lines: pd.DataFrame
) -> None:
    response = export(api, "umbrella", format="parquet", **whole_history(api))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.apache.parquet"
    assert response.headers["content-disposition"].endswith('.parquet"')
    table = pq.read_table(io.BytesIO(response.content))
    for name, (_, _, focus_type) in FOCUS_1_2.items():
        if name in table.column_names:
            assert parquet_type_is(focus_type, table.schema.field(name).type), name
    got = sorted(
        (
            _instant(r["ChargePeriodStart"]),
            *(r[c] for c in COMPARED[1:-4]),
            *(_exact(r[c]) for c in COMPARED[-4:]),
        )
        for r in table.to_pylist()
    )
    assert sorted(got, key=repr) == expected(lines, "umbrella")


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_the_columns_are_focus_1_2_column_ids_then_the_x_columns(
    api: Api, fmt: str, tagged: datetime
) -> None:
    response = export(api, "acme", format=fmt, **whole_history(api))
    table = _table(response.content, fmt)
    names = table.column_names
    focus = [n for n in names if not n.startswith("x_")]
    assert names == [*focus, *(n for n in names if n.startswith("x_"))]
    assert set(focus) <= set(FOCUS_1_2)
    assert set(focus) >= MANDATORY
    for name in focus:
        nulls_allowed = (
            FOCUS_1_2[name][1] or name in UNSUPPLIED_BY_SOME_SOURCES | NOT_IN_THE_DATA_SET
        )
        assert nulls_allowed or table.column(name).null_count == 0, name
    # Null Handling: absent values are null, never empty strings.
    for name in focus:
        if pa.types.is_string(table.schema.field(name).type):
            assert "" not in table.column(name).to_pylist(), name


def _table(content: bytes, fmt: str) -> pa.Table:
    if fmt == "parquet":
        return pq.read_table(io.BytesIO(content))
    frame = pd.read_csv(io.BytesIO(content), dtype=str, keep_default_na=False, na_values=[""])
    return pa.Table.from_pandas(frame, preserve_index=False)


def test_tags_are_a_json_object_in_csv_and_a_map_in_parquet(api: Api, tagged: datetime) -> None:
    csv = export(api, "tagged", "aws", format="csv", **whole_history(api))
    [row] = pd.read_csv(io.BytesIO(csv.content), dtype=str).to_dict("records")
    assert json.loads(row["Tags"]) == TAGS
    assert row["BilledCost"] == "0.000000123456"
    assert row["ChargePeriodStart"] == f"{tagged:%Y-%m-%dT%H:%M:%SZ}"
    assert row["x_Estimated"] == "false" and row["x_CollectionRunId"] == "run-1"
    parquet = export(api, "tagged", "aws", format="parquet", **whole_history(api))
    [line] = pq.read_table(io.BytesIO(parquet.content)).to_pylist()
    assert dict(line["Tags"]) == TAGS
    assert line["BilledCost"] == Decimal("0.000000123456")
    assert line["ChargePeriodStart"] == tagged
    assert line["ResourceName"] is None and line["RegionId"] is None
    names = ("ProviderName", "InvoiceIssuerName", "PublisherName")
    assert [line[n] for n in names] == [row[n] for n in names] == ["AWS"] * 3


def test_the_x_columns_hold_the_stored_collection_facts(
    api: Api, warehouse: WarehouseProcess, tagged: datetime
) -> None:
    client = create_client(
        WarehouseSettings(warehouse_port=warehouse.port, clickhouse_database=api.database)
    )
    try:
        [stored] = client.query(
            "SELECT toString(load_id), source, collected_at "
            "FROM costs_current(customer_id = 'tagged')"
        ).result_rows
    finally:
        client.close()
    parquet = export(api, "tagged", "aws", format="parquet", **whole_history(api))
    [line] = pq.read_table(io.BytesIO(parquet.content)).to_pylist()
    load_id, source, collected_at = stored  # the client gives naive UTC
    assert (line["x_LoadId"], line["x_Source"]) == (load_id, source)
    assert line["x_CollectedAt"] == collected_at.replace(tzinfo=UTC)
    assert (line["x_CustomerId"], line["x_Provider"]) == ("tagged", "aws")


def test_the_period_and_provider_choose_the_lines(api: Api, lines: pd.DataFrame) -> None:
    start, end = api.today - timedelta(days=10), api.today - timedelta(days=3)
    response = export(api, "acme", "aws", format="parquet", start=str(start), end=str(end))
    table = pq.read_table(io.BytesIO(response.content))
    days = {t.date() for t in table.column("ChargePeriodStart").to_pylist()}
    assert days and all(start <= d < end for d in days)
    chosen = lines[
        (lines["customer_id"] == "acme")
        & (lines["provider"] == "aws")
        & lines["day"].between(start, end - timedelta(days=1))
    ]
    assert table.num_rows == len(chosen)


def test_a_period_without_lines_is_a_file_with_the_columns_only(api: Api) -> None:
    response = export(api, "acme", format="csv", start="2001-01-01", end="2001-02-01")
    assert response.status_code == 200
    assert response.text.splitlines()[0].startswith('"BilledCost","BillingAccountId"')
    assert len(response.text.splitlines()) == 1


@pytest.mark.parametrize(
    ("params", "parameter"),
    [({"format": "xlsx"}, "format"), ({"fromat": "csv"}, "fromat"), ({"days": 0}, "days")],
)
def test_bad_parameters_are_a_422_naming_them(
    api: Api, params: dict[str, Any], parameter: str
) -> None:
    response = export(api, "acme", **params)
    assert response.status_code == 422
    assert [e["loc"][-1] for e in response.json()["detail"]] == [parameter]


def test_a_key_exports_only_its_customers(api: Api) -> None:
    assert export(api, "globex", token=api.scoped_token).status_code == 403
    assert export(api, "acme", token=api.scoped_token).status_code == 200
    assert api.client.get("/api/v2/costs/acme/all/export").status_code == 401


def test_the_openapi_document_names_both_media_types(api: Api) -> None:
    operation = api.client.get("/openapi.json").json()["paths"][
        "/api/v2/costs/{customer_id}/{provider}/export"
    ]["get"]
    assert set(operation["responses"]["200"]["content"]) == {
        "text/csv; charset=utf-8",
        "application/vnd.apache.parquet",
    }
    [fmt] = [p for p in operation["parameters"] if p["name"] == "format"]
    assert fmt["in"] == "query"


def test_dates_are_utc_iso_8601_in_csv(api: Api) -> None:
    response = export(api, "acme", "gcp", format="csv", days=5)
    frame = pd.read_csv(io.BytesIO(response.content), dtype=str)
    for column in ("ChargePeriodStart", "ChargePeriodEnd", "BillingPeriodStart"):
        for text in frame[column]:
            assert datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").date() >= date(2000, 1, 1)
