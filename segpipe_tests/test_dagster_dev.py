"""segpipe as an operator sees it: the real `dagster dev` (webserver + daemon), files dropped in
the inbox, results read through the GraphQL API, then the UI in a real browser.

One `dagster dev` serves the whole module. The first batch is large enough to keep its run busy
while a second batch arrives, so the second run must queue behind it for the DuckDB warehouse.
"""

import os
import re
import shutil
import time
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from segpipe.warehouse.connection import connect
from segpipe.warehouse.sql import frame
from segpipe_tests import dagster_dev
from segpipe_tests.conftest import REPO, csv

# a real `dagster dev` (daemon, webserver) and a browser.
pytestmark = pytest.mark.e2e

PEOPLE, INTERESTS = 40_000, 6
BIG_CONSTITUENTS = "constituents_2026-11-01_import.csv"
BIG_SEGMENTATION = "segmentation_2026-11-02_bulk.csv"
SMALL_SEGMENTATION = "segmentation_2026-11-03_late.csv"
BAD_FILE = "segmentation_2026-11-04_missing_opt_column.csv"
# A destination the exports sensor keeps in step after every segment refresh.
DESTINATIONS = """destinations:
  - {name: crm, format: csv, key: email, fields: [member_id], segments: [Late News Opt-In]}
"""
# What the daemon's run queue logs on each pass that finds queued runs (dagster 1.13).
QUEUE_PASS = "Priority sorting and checking tag concurrency limits for queued runs."
UPLOAD_STAGES = ["raw_upload", "validated_upload", "resolved_upload", "applied_upload"]
SCREENSHOTS = REPO / "build" / "screenshots"
README_GRAPH = REPO / "segpipe_tests" / "ui" / "asset_graph.png"


def big_files(folder: Path) -> dict[str, Path]:
    """A constituent file and a segmentation file opting every person in and out of interests."""
    ids = pl.int_range(1, PEOPLE + 1, eager=True)
    people = pl.DataFrame(
        {"member_id": ids, "email": "person" + ids.cast(pl.String) + "@example.org"}
    ).with_columns(email_opt_in=pl.lit("yes"))
    memberships = people.select("member_id").join(
        pl.DataFrame({"interest_name": [f"Interest {n}" for n in range(INTERESTS)]}), how="cross"
    )
    memberships = memberships.with_columns(
        opt=pl.when(pl.col("member_id") % 4 == 0).then(pl.lit("out")).otherwise(pl.lit("in"))
    )
    paths = {
        BIG_CONSTITUENTS: folder / BIG_CONSTITUENTS,
        BIG_SEGMENTATION: folder / BIG_SEGMENTATION,
    }
    people.write_csv(paths[BIG_CONSTITUENTS])
    memberships.write_csv(paths[BIG_SEGMENTATION])
    return paths


def arrive(dev: dagster_dev.DagsterDev, folder: Path, name: str, content: Path | str) -> None:
    """Write under a temporary name and rename, as an SFTP client does, so the sensor never
    takes a half-written file."""
    partial = dev.data.inbox / f"{name}.part"
    if isinstance(content, Path):
        shutil.copy(content, partial)
    else:
        partial.write_text(content)
    os.rename(partial, dev.data.inbox / name)
    time.sleep(0.01)  # distinct modification times: arrival order


@pytest.fixture(scope="module")
def dev(tmp_path_factory):
    root = tmp_path_factory.mktemp("dagster_dev")
    started = time.monotonic()
    server = dagster_dev.start(root)
    print(f"dagster dev ready in {time.monotonic() - started:.1f}s")
    try:
        yield server
    finally:
        left = dagster_dev.stop(server)
        assert left == [], f"processes left behind by dagster dev: {left}"


@pytest.fixture(scope="module")
def delivered(dev, tmp_path_factory) -> dict[str, list[dict]]:
    """Two batches: the big one, and, while its run is going, a small file and a bad one.
    Returns the upload runs seen while the second batch waited (`waiting`)."""
    folder = tmp_path_factory.mktemp("files")
    dev.data.segments_yaml.write_text(DESTINATIONS)
    # The test holds the warehouse until the second batch's run is queued: the first run waits
    # for it, so the second batch arrives while the first run is going however fast the machine.
    holder = duckdb.connect(str(dev.data.warehouse))
    try:
        for name, path in big_files(folder).items():
            arrive(dev, folder, name, path)
        dev.wait_for("the first upload run to start", lambda: _upload_runs(dev, "STARTED"))
        arrive(
            dev, folder, SMALL_SEGMENTATION, csv("member_id,interest_name,opt", "1,Late News,in")
        )
        arrive(dev, folder, BAD_FILE, csv("email,interest_name", "person2@example.org,Late News"))
        dev.wait_for("the second batch to be registered", lambda: len(_partitions(dev)) == 4)
        dev.wait_for("a second upload run", lambda: _second_upload_run(dev))
        # Two passes of the run queue over it: a run free to go would have left the queue.
        passes = _queue_passes(dev)
        dev.wait_for(
            "two passes of the run queue",
            lambda: (
                _queue_passes(dev) >= passes + 2 or _second_upload_run(dev)[1]["status"] != "QUEUED"
            ),
        )
        waiting = _second_upload_run(dev)
    finally:
        holder.close()
    dev.wait_for("segments refreshed after both batches", lambda: _refreshed_after_uploads(dev))
    dev.wait_for("destinations synced after the refresh", lambda: _synced_after_segments(dev))
    dev.wait_for("every run to finish", dev.idle, timeout=60)
    return {"waiting": waiting}


def _queue_passes(dev) -> int:
    """How many times the daemon's run queue has looked at queued runs (its log says so)."""
    return dev.log.read_text(errors="replace").count(QUEUE_PASS)


def _second_upload_run(dev) -> list[dict] | None:
    """The upload runs, first started first, once the second has been submitted (else None)."""
    runs = _upload_runs(dev)
    if len(runs) < 2 or any(r["status"] == "NOT_STARTED" for r in runs):
        return None
    return sorted(runs, key=lambda r: r["startTime"] or float("inf"))


def _upload_runs(dev, *statuses: str) -> list[dict]:
    runs = [r for r in dev.runs() if r["jobName"] == "process_upload_job"]
    return [r for r in runs if r["status"] in statuses] if statuses else runs


def _partitions(dev) -> list[str]:
    data = dev.graphql(
        """{ assetNodeOrError(assetKey: {path: ["raw_upload"]}) {
             ... on AssetNode { partitionKeys } } }"""
    )
    return data["assetNodeOrError"]["partitionKeys"]


def _segment_runs(dev) -> list[dict]:
    """Refreshes requested after uploads (refresh_segments_job), or by the automation
    condition that follows segments.yaml (an asset selection)."""
    return [
        r
        for r in dev.runs()
        if r["jobName"] == "refresh_segments_job"
        or {"path": ["segments"]} in (r["assetSelection"] or [])
    ]


def _refreshed_after_uploads(dev) -> bool:
    uploads = _upload_runs(dev)
    if len(uploads) < 2 or any(r["status"] not in dagster_dev.FINISHED for r in uploads):
        return False
    last_upload = max(r["endTime"] for r in uploads)
    return any(
        r["status"] == "SUCCESS" and r["startTime"] >= last_upload for r in _segment_runs(dev)
    )


def _synced_after_segments(dev) -> bool:
    refreshed = [r["endTime"] for r in _segment_runs(dev) if r["status"] == "SUCCESS"]
    syncs = [r for r in dev.runs() if r["jobName"] == "sync_destinations_job"]
    return bool(refreshed) and any(
        r["status"] == "SUCCESS" and r["startTime"] >= max(refreshed) for r in syncs
    )


def _materializations(dev, asset: str, partitions: list[str] | None = None) -> list[dict]:
    data = dev.graphql(
        """query($path: [String!]!, $partitions: [String!]) {
             assetOrError(assetKey: {path: $path}) { ... on Asset {
               assetMaterializations(partitions: $partitions) { partition runId
                 metadataEntries { label __typename
                   ... on IntMetadataEntry { intValue }
                   ... on MarkdownMetadataEntry { mdStr } } } } } }""",
        path=[asset],
        partitions=partitions,
    )
    return data["assetOrError"]["assetMaterializations"]


def _metadata(materialization: dict) -> dict:
    return {
        e["label"]: e.get("intValue", e.get("mdStr")) for e in materialization["metadataEntries"]
    }


def _upload_id(partitions: list[str], file_name: str) -> str:
    (key,) = [k for k in partitions if file_name.lower() in k]
    return key


def test_sensor_registers_each_file_as_a_partition_in_arrival_order(dev, delivered):
    partitions = _partitions(dev)
    names = [BIG_CONSTITUENTS, BIG_SEGMENTATION, SMALL_SEGMENTATION, BAD_FILE]
    assert [_upload_id(partitions, n) for n in names] == partitions
    assert list(dev.data.inbox.iterdir()) == []


def test_second_batch_queued_behind_the_first_instead_of_failing_on_the_lock(dev, delivered):
    # While the first run held the warehouse's slot, the second waited in the queue.
    first, second = delivered["waiting"]
    assert (first["status"], second["status"]) == ("STARTED", "QUEUED")
    first, second = sorted(_upload_runs(dev), key=lambda r: r["startTime"])
    assert first["status"] == "SUCCESS"
    assert second["startTime"] >= first["endTime"]  # waited for the warehouse
    # Its batch holds the deliberately bad file: an outcome (a failed check), not a failed run.
    assert second["status"] == "SUCCESS"
    partitions = _partitions(dev)
    small = _materializations(dev, "applied_upload", [_upload_id(partitions, SMALL_SEGMENTATION)])
    assert _metadata(small[0])["rows_applied"] == 1
    assert _materializations(dev, "applied_upload", [_upload_id(partitions, BAD_FILE)]) == []


def test_upload_metadata_is_numeric_and_masks_people(dev, delivered):
    key = _upload_id(_partitions(dev), BIG_SEGMENTATION)
    (applied,) = _materializations(dev, "applied_upload", [key])
    metadata = _metadata(applied)
    assert metadata["rows_in"] == PEOPLE * INTERESTS
    assert metadata["rows_applied"] == PEOPLE * INTERESTS
    people = _upload_id(_partitions(dev), BIG_CONSTITUENTS)
    (validated,) = _materializations(dev, "validated_upload", [people])
    preview = _metadata(validated)["preview"]
    assert "p***@example.org" in preview
    assert "person1@example.org" not in preview


def test_segments_refresh_on_their_own_with_numeric_sizes_and_checks(dev, delivered):
    latest = _materializations(dev, "segments")[0]
    sizes = _metadata(latest)
    assert sizes["size: Interest 0 Opt-In"] == PEOPLE - PEOPLE // 4
    assert sizes["size: Interest 0 Opt-Out"] == PEOPLE // 4
    assert sizes["size: Late News Opt-In"] == 1
    with dg.DagsterInstance.from_config(str(dev.data.root.parent / "dagster_home")) as instance:
        key = dg.AssetCheckKey(dg.AssetKey("segments"), "references_resolve")
        (record,) = instance.event_log_storage.get_asset_check_execution_history(key, limit=1)
        assert record.run_id == latest["runId"]
        assert record.event.dagster_event.event_specific_data.passed
        # The upload checks run with each batch: the latest one passed.
        key = dg.AssetCheckKey(dg.AssetKey("applied_upload"), "upload_counts_add_up")
        (record,) = instance.event_log_storage.get_asset_check_execution_history(key, limit=1)
        assert record.event.dagster_event.event_specific_data.passed


def test_warehouse_holds_every_applied_upload(dev, delivered):
    # Read only now: every run has finished, and DuckDB admits one process per file.
    with connect(dev.data.warehouse) as con:
        statuses = dict(frame(con, "SELECT file_name, status FROM uploads").iter_rows())
        opted = frame(con, "SELECT status, count(*) AS n FROM interest_memberships GROUP BY 1")
    assert statuses == {
        BIG_CONSTITUENTS: "applied",
        BIG_SEGMENTATION: "applied",
        SMALL_SEGMENTATION: "applied",
        BAD_FILE: "rejected",
    }
    counts = dict(opted.iter_rows())
    assert counts["opted_out"] == PEOPLE // 4 * INTERESTS
    assert counts["opted_in"] == (PEOPLE - PEOPLE // 4) * INTERESTS + 1
    audience = dev.data.exports / "crm" / "Late_News_Opt-In"
    assert pl.read_csv(audience / "members.csv").rows() == [("person1@example.org", 1)]
    # Added exactly once, by whichever sync first saw the second batch (a refresh may run
    # between the batches, and each refresh is followed by a sync).
    added = [
        row
        for adds in sorted(audience.glob("history/*/adds.csv"))
        for row in pl.read_csv(adds).rows()
    ]
    assert added == [("person1@example.org", 1)]


CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
        )
        yield browser.new_page(viewport={"width": 1500, "height": 800})
        browser.close()


def _open(page, url: str) -> None:
    """Go to `url`, past the first-visit welcome dialog when it shows up."""
    page.goto(url)
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.wait_for(timeout=3_000)
        skip.click()
    except Exception:  # playwright's TimeoutError: no dialog this time
        pass


def _screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.screenshot(path=path)
    return path


def test_ui_shows_the_lineage_from_raw_upload_to_exports(dev, delivered, page):
    from playwright.sync_api import expect

    # Around segments: every upload stage upstream of it, the exports downstream.
    _open(page, f"{dev.url}/assets/segments?view=lineage&lineageScope=neighbors&lineageDepth=5")
    for asset in [*UPLOAD_STAGES, "segments", "segment_export"]:
        expect(page.get_by_text(asset, exact=True).first).to_be_visible(timeout=30_000)
    expect(page.get_by_text("Loading...")).to_have_count(0, timeout=30_000)
    page.wait_for_timeout(1000)  # let the graph settle before the picture
    graph = _screenshot(page, "asset_graph.png")
    if os.environ.get("SEGPIPE_UPDATE_README_GRAPH"):  # the README's picture, refreshed on demand
        shutil.copy(graph, README_GRAPH)


def test_ui_shows_an_upload_partitions_metadata(dev, delivered, page):
    from playwright.sync_api import expect

    key = _upload_id(_partitions(dev), BIG_SEGMENTATION)
    _open(page, f"{dev.url}/assets/applied_upload?view=partitions&partition={key}")
    for label in ("rows_in", "rows_applied", "preview"):
        expect(page.get_by_text(label, exact=True).first).to_be_visible(timeout=30_000)
    _screenshot(page, "applied_upload_partition.png")
    rows = PEOPLE * INTERESTS  # shown as 240000 or 240,000 depending on the UI's locale
    expect(page.get_by_text(re.compile(rf"^{rows:,}$|^{rows}$")).first).to_be_visible()
