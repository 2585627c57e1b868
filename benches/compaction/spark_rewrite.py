"""Spark 3.5's `rewrite_data_files` on one table of a running Floe, timed: the baseline of
benches/compaction.rs. Prints one JSON line: seconds (the procedure call only, not the JVM start),
and the procedure's own counts.

Run by the bench with the compat venv's python (pyspark 3.5.9) and the Iceberg runtime jar that
`scripts/test.sh compat` caches; see ../compaction.rs.
"""

import argparse
import json
import os
import tempfile
import time

from pyspark.sql import SparkSession


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--uri", required=True)
    parser.add_argument("--table", required=True, help="namespace.table")
    parser.add_argument("--jar", required=True)
    parser.add_argument("--target-file-size-bytes", type=int, required=True)
    args = parser.parse_args()

    scratch = tempfile.mkdtemp(prefix="floe-bench-spark-")
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    os.environ["SPARK_LOCAL_DIRS"] = os.path.join(scratch, "local")
    builder = SparkSession.builder.master("local[2]").appName("floe-compaction-bench")
    for key, value in {
        "spark.jars": args.jar,
        "spark.sql.extensions": "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions",
        "spark.sql.catalog.floe": "org.apache.iceberg.spark.SparkCatalog",
        "spark.sql.catalog.floe.type": "rest",
        "spark.sql.catalog.floe.uri": args.uri,
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.sql.shuffle.partitions": "2",
        "spark.default.parallelism": "2",
        "spark.sql.warehouse.dir": os.path.join(scratch, "spark-warehouse"),
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={scratch}",
    }.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    try:
        # Warm the session (catalog, table load) so that the timing is the rewrite alone.
        spark.sql(f"SELECT count(*) FROM floe.{args.table}").collect()
        started = time.perf_counter()
        result = spark.sql(
            f"CALL floe.system.rewrite_data_files(table => '{args.table}', options => map("
            f"'min-input-files', '2', 'target-file-size-bytes', '{args.target_file_size_bytes}'))"
        ).collect()[0]
        seconds = time.perf_counter() - started
        rows = spark.sql(f"SELECT count(*) FROM floe.{args.table}").collect()[0][0]
    finally:
        spark.stop()
    print(
        json.dumps(
            {
                "seconds": seconds,
                "rewritten_files": result["rewritten_data_files_count"],
                "added_files": result["added_data_files_count"],
                "rewritten_bytes": result["rewritten_bytes_count"],
                "rows_after": rows,
            }
        )
    )


if __name__ == "__main__":
    main()
