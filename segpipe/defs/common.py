"""Names the Dagster layer shares across domains: the warehouse pool, run tags, owners, asset keys.

One home for each, so a sensor in one domain and an asset in another cannot drift apart.
"""

import dagster as dg

# Every asset that opens the DuckDB file is in this pool: DuckDB allows one writing process per
# file, so runs queue for the pool instead of failing on the lock.
WAREHOUSE_POOL = "duckdb"
# Runs carrying this tag leave the run queue one at a time (segpipe/dagster.yaml).
SERIAL_TAG = {"segpipe/warehouse": "write"}
# Rule time windows count back from this instant when a run carries it (`segpipe run --as-of`).
AS_OF_TAG = "segpipe/as_of"
# A sync run tagged so writes every pair, changed or not: the daily sync, whose materializations
# keep EXPORTS_FRESHNESS meaning "synced today". Other runs leave unchanged destinations alone.
SYNC_ALL_TAG = "segpipe/sync_all"
# The process that ran a run, "<host>:<pid>:<process start time in clock ticks since boot>" (the
# start time tells a pid reused by another process): a later start can tell a killed run.
PROCESS_TAG = "segpipe/process"
# Runs whose warnings `segpipe run` sends itself: the warning sensors leave them alone.
WARNED_BY_TAG = "segpipe/warned_by"
OWNERS = ["team:audience-data"]
# Run config for runs driven in-process (`segpipe run`, the bench): the run log stays in the
# Dagster instance; the terminal gets segpipe's own progress lines and summary.
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}

RAW_UPLOAD = dg.AssetKey("raw_upload")
APPLIED_UPLOAD = dg.AssetKey("applied_upload")
SEGMENTS = dg.AssetKey("segments")
SEGMENT_EXPORT = dg.AssetKey("segment_export")
