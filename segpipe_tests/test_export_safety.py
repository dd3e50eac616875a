"""Issue 20, items 6 to 9: hostile cells neutralized everywhere, names that cannot be exported
skipped alone, personal data masked by value, YAML aliases refused, stable members.csv order."""

from __future__ import annotations

import csv as csvlib
import io
import signal
import subprocess
import sys
import time

import polars as pl
import pytest

from segpipe.exports.destinations import Destination
from segpipe.segments.rules import SegmentDefinitionError, parse_definitions
from segpipe_tests.conftest import Deployment, csv
from segpipe_tests.test_exports_sync import Warehouse, warehouse  # noqa: F401 - the fixture

HOSTILE_EMAIL = '=HYPERLINK("http://evil.example/")@x.com'


def _cells(text: str) -> list[list[str]]:
    return list(csvlib.reader(io.StringIO(text)))


def test_attentive_files_neutralize_keys_and_segment_names(warehouse: Warehouse):  # noqa: F811
    warehouse.people({"cons_id": 20, "email": HOSTILE_EMAIL, "first_name": "Eve"})
    warehouse.members("-2-3", 20, 1)
    warehouse.members("-cmd", 2)
    attentive = Destination("att", "email", ("*",), format="attentive", domain="brand.com")

    result = warehouse.sync(attentive)

    text = (warehouse.data.root / result.delivery_files[0]).read_text()
    assert sorted(_cells(text)) == [
        ["'" + HOSTILE_EMAIL, "'-2-3"],
        ["ann@example.org", "'-2-3"],
        ["bob@example.org", "'-cmd"],
    ]


def test_members_csv_is_sorted_by_key(warehouse: Warehouse):  # noqa: F811
    people = 150_000  # enough rows for DuckDB to write a partition with several threads
    with_ids = pl.DataFrame({"cons_id": range(100, 100 + people)}).with_columns(
        external_id=pl.col("cons_id").cast(pl.String).str.reverse()
    )
    warehouse.people(*with_ids.to_dicts())
    ids = with_ids["cons_id"].to_list()
    warehouse.members("Big A", *ids)
    warehouse.members("Big B", *ids[::2])
    destination = Destination("crm", "external_id", ("Big A", "Big B"))

    warehouse.sync(destination)

    for audience in ("Big_A", "Big_B"):
        keys = warehouse.read("crm", audience, "members")["external_id"].to_list()
        assert keys == sorted(keys), audience


PEOPLE = csv(
    "member_id,email,first_name,email_opt_in,secondary_email,mobile_phone",
    "1,ana@example.org,Ana,yes,ana.private@example.net,(202) 555-0143",
    "2,ben@example.org,Ben,yes,ben.home@example.com,+44 20 7183 8750",
)


def test_previews_mask_emails_and_phones_whatever_the_column(deployment: Deployment):
    deployment.drop("constituents_a.csv", PEOPLE)
    deployment.drop(
        "events_a.csv",
        csv(
            "member_id,event,timestamp,referrer,callback",
            "1,page_view,2026-11-01T10:00:00Z,sent by zed@example.com,2025550199",
        ),
    )

    code, printed = deployment.run()

    assert code == 0, printed
    text = _event_log_text(deployment)
    for raw in ("ana.private@", "ben.home@", "555-0143", "7183 8750", "zed@", "2025550199"):
        assert raw not in text, raw
    assert "a***@example.net" in text and "***-***-0143" in text and "z***@example.com" in text


def _event_log_text(deployment: Deployment) -> str:
    instance = deployment.instance()
    texts = []
    for run in instance.get_runs():
        for entry in instance.all_logs(run.run_id):
            texts.append(str(entry.dagster_event) if entry.dagster_event else entry.message)
    return "\n".join(texts)


def test_reports_neutralize_hostile_cells(deployment: Deployment):
    deployment.drop("constituents_a.csv", PEOPLE)
    deployment.drop(
        "segmentation_a.csv",
        csv(
            "email,interest_name,opt",
            "=cmd|' /C calc'!A0,Weekly Digest,in",
            "ana@example.org,@SUM(1+1),maybe",
        ),
    )

    deployment.run()

    report = deployment.errors("segmentation_a.csv")
    cells = [c for row in report.rows() for c in row if c]
    assert cells, report
    assert not [c for c in cells if c[0] in "=+-@\t\r"], report
    assert "'=cmd|' /C calc'!A0" in cells


def test_names_that_cannot_be_exported_skip_only_that_segment(deployment: Deployment):
    deployment.data.segments_yaml.write_text(
        'destinations:\n  - {name: crm, key: email, segments: ["*"]}\n'
    )
    deployment.drop("constituents_a.csv", PEOPLE)
    long_name = "L" * 300
    deployment.drop(
        "manual_segment_a.csv",
        csv(
            "segment,email",
            "VIP list,ana@example.org",
            "VIP_list,ben@example.org",
            f"{long_name},ana@example.org",
            "Donors,ben@example.org",
        ),
    )

    code, printed = deployment.run()

    assert code == 0, printed
    assert "not exported: segment 'VIP" in printed and "already exports to the folder" in printed
    assert "longer than 200 bytes" in printed
    exported = sorted(p.name for p in (deployment.data.exports / "crm").iterdir())
    assert exported == ["Donors", "VIP_list"]  # one of the two; Donors still synced
    members = (deployment.data.exports / "crm" / "VIP_list" / "members.csv").read_text()
    assert len(members.splitlines()) == 2

    code, printed = deployment.run()  # and every later run still syncs
    assert code == 0, printed


# 318 bytes that PyYAML's safe_load would expand to 387 million list items (9**9).
ALIAS_BOMB = "\n".join(
    ["a: &a [" + ",".join(["x"] * 9) + "]"]
    + [
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]"
        for i in range(8)
    ]
    + ["segments: *i"]
)


def test_yaml_aliases_are_refused_at_once():
    started = time.monotonic()
    with pytest.raises(SegmentDefinitionError, match=r"line 2: YAML aliases \(\*a\)"):
        parse_definitions(ALIAS_BOMB)
    assert time.monotonic() - started < 1
    small = (
        "common: &rule {attribute: state, op: eq, value: CA}\n"
        "segments:\n  - name: X\n    all: [*rule]\n"
    )
    with pytest.raises(SegmentDefinitionError, match="YAML aliases"):
        parse_definitions(small)


def test_a_yaml_alias_bomb_fails_the_refresh_with_its_line(deployment: Deployment):
    deployment.data.segments_yaml.write_text(ALIAS_BOMB)
    deployment.drop("constituents_a.csv", PEOPLE)

    code, printed = deployment.run()

    assert code == 1
    assert "YAML aliases" in printed


KILLED_SWAP = """
import os, signal, sys
from datetime import datetime
from pathlib import Path

from segpipe.config import DataDir
from segpipe.exports import files
from segpipe.exports.destinations import Destination, resolve_pairs
from segpipe.exports.sync import sync_destination
from segpipe.warehouse.connection import connect

root, after = Path(sys.argv[1]), int(sys.argv[2])
moves = []
put = files.Swap.put


def killing_put(self, staged, target):
    if len(moves) == after:
        os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no rollback: as kill -9 does
    moves.append(target)
    put(self, staged, target)


files.Swap.put = killing_put
destination = Destination("crm", "external_id", ("VIP list", "Gala"))
with connect(root / "warehouse.duckdb") as con:
    pairs = resolve_pairs(con, destination)
    sync_destination(con, DataDir(root), destination, pairs, at=datetime(2026, 11, 8))
"""


def test_a_sync_killed_during_its_swap_is_undone_at_the_next_start(
    warehouse: Warehouse,  # noqa: F811
):
    from segpipe.exports.sync import finish_interrupted_syncs
    from segpipe.warehouse.connection import connect

    destination = Destination("crm", "external_id", ("VIP list", "Gala"))
    warehouse.members("VIP list", 1, 2)
    warehouse.members("Gala", 3)
    warehouse.sync(destination)
    folder = warehouse.data.exports / "crm"
    before = _files(folder)
    warehouse.members("VIP list", 2, 3)
    warehouse.members("Gala", 1)

    # 4 moves a segment (history, members, adds, removes): killed inside the second segment's
    killed = subprocess.run([sys.executable, "-c", KILLED_SWAP, str(warehouse.data.root), "5"])
    assert killed.returncode == -signal.SIGKILL
    assert _files(folder) != before  # half swapped: VIP list new, Gala old

    with connect(warehouse.data.warehouse) as con:
        undone = finish_interrupted_syncs(con, warehouse.data)

    assert len(undone) == 1
    assert _files(folder) == before
    assert not list(folder.glob(".staging-*"))
    warehouse.sync(destination)  # and the next sync's diff is exact against the last good one
    assert warehouse.keys("crm", "VIP_list", "adds") == ["X3"]
    assert warehouse.keys("crm", "VIP_list", "removes") == ["X1"]


def _files(folder) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in folder.rglob("*")
        if p.is_file() and ".staging-" not in str(p)
    }
