"""`floe recover --from-storage`: the catalog database is lost, the warehouse is not. After the
recovery every table is back, with the current snapshot and the rows it had (read by PyIceberg)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pyarrow as pa
import pytest

from conftest import rest_catalog, unique_name
from floe_server import FloeServer, floe_binary


def rows(table) -> list[tuple]:
    return sorted(tuple(row.values()) for row in table.scan().to_arrow().to_pylist())


@pytest.fixture()
def own_server(tmp_path: Path, floe_log_dir: Path):
    server = FloeServer(tmp_path / "data", floe_log_dir / f"{unique_name('recover')}.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_a_lost_catalog_is_rebuilt_from_the_warehouse(own_server: FloeServer) -> None:
    catalog = rest_catalog(own_server.uri)
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("name", pa.string())])
    expected = {}
    for namespace in [("sales",), ("sales", "eu"), ("ops",)]:
        catalog.create_namespace(namespace)
        for name in ["orders", "refunds"]:
            table = catalog.create_table((*namespace, name), schema=schema)
            for batch in range(3):
                ids = [batch * 10 + i for i in range(4)]
                table.append(pa.table({"id": ids, "name": [f"{name}-{i}" for i in ids]}, schema=schema))
            table = catalog.load_table((*namespace, name))
            expected[(*namespace, name)] = (table.metadata.current_snapshot_id, rows(table))
    # A table dropped without purging leaves its folder behind, and the warehouse alone cannot tell
    # it from a live one: recovery brings it back too (docs/operations.md says so).
    catalog.create_table(("ops", "gone"), schema=schema)
    catalog.drop_table(("ops", "gone"))

    own_server.stop()
    for name in ["catalog.db", "catalog.db-wal", "catalog.db-shm"]:
        (own_server.data_dir / name).unlink(missing_ok=True)

    recovered = subprocess.run(
        [str(floe_binary()), "recover", "--data-dir", str(own_server.data_dir), "--from-storage", "main"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert recovered.returncode == 0, recovered.stderr
    assert "7 registered" in recovered.stdout, recovered.stdout

    own_server.start()
    catalog = rest_catalog(own_server.uri)
    for identifier, (snapshot_id, table_rows) in expected.items():
        table = catalog.load_table(identifier)
        assert table.metadata.current_snapshot_id == snapshot_id, identifier
        assert rows(table) == table_rows, identifier
    assert catalog.load_table(("ops", "gone")).metadata.current_snapshot_id is None
    # The recovered catalog takes commits again.
    table = catalog.load_table(("sales", "orders"))
    table.append(pa.table({"id": [999], "name": ["after"]}, schema=schema))
    assert (999, "after") in rows(catalog.load_table(("sales", "orders")))
