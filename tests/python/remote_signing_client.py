"""PyIceberg as a remote-signing client, run by test_remote_signing.py in the signing venv (s3fs).

    python remote_signing_client.py CATALOG_URI WAREHOUSE NAMESPACE

Connects with no S3 keys of its own (the environment is emptied of AWS settings by the caller), asks
for remote signing, creates a table, appends twice and reads it back. Prints one JSON object: the
rows read, the table location, the data files, and the S3 settings the table's FileIO ended up with.
"""

from __future__ import annotations

import json
import sys

import pyarrow as pa
from pyiceberg.catalog.rest import RestCatalog

SCHEMA = pa.schema([pa.field("id", pa.int64()), pa.field("name", pa.string())])


def main() -> int:
    uri, warehouse, namespace = sys.argv[1:4]
    catalog = RestCatalog(
        "floe",
        uri=uri,
        warehouse=warehouse,
        **{
            # PyIceberg asks for vended-credentials unless told otherwise.
            "header.X-Iceberg-Access-Delegation": "remote-signing",
            # Only the fsspec FileIO signs through a REST signer.
            "py-io-impl": "pyiceberg.io.fsspec.FsspecFileIO",
        },
    )
    catalog.create_namespace(namespace)
    table = catalog.create_table((namespace, "signed"), schema=SCHEMA)
    table.append(pa.Table.from_pylist([{"id": 1, "name": "a"}, {"id": 2, "name": "b"}], schema=SCHEMA))
    table = catalog.load_table((namespace, "signed"))
    table.append(pa.Table.from_pylist([{"id": 3, "name": "c"}], schema=SCHEMA))
    reloaded = catalog.load_table((namespace, "signed"))
    rows = sorted(reloaded.scan().to_arrow().to_pylist(), key=lambda row: row["id"])
    print(
        json.dumps(
            {
                "rows": rows,
                "location": reloaded.location(),
                "data_files": sorted(task.file.file_path for task in reloaded.scan().plan_files()),
                "io": {k: v for k, v in reloaded.io.properties.items() if k.startswith("s3.")},
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
