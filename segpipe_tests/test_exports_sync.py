"""Destination syncs on a real DuckDB warehouse and real files, without Dagster."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from segpipe.config import DataDir
from segpipe.exports.destinations import (
    Channel,
    Destination,
    DestinationError,
    MissingSegments,
    audience_of,
    configured_pairs,
    load_destinations,
    resolve_pairs,
)
from segpipe.exports.sync import sync_destination, sync_is_unchanged
from segpipe.ingest.filenames import delivery_of
from segpipe.ingest.reader import read_file
from segpipe.ingest.validate import REASON
from segpipe.kinds import subscriber
from segpipe.vocabulary import SyncMode
from segpipe.warehouse.connection import connect
from segpipe.warehouse.segments import replace_members
from segpipe.warehouse.sql import frame, registered

START = datetime(2026, 11, 7, 6, 0)


class Warehouse:
    """A deployment's warehouse with people and segments set directly, synced by hand."""

    def __init__(self, root: Path):
        self.data = DataDir(root).ensure()
        self.clock = START

    def people(self, *rows: dict) -> None:
        columns = ["cons_id", "member_id", "email", "phone", "external_id", "first_name"]
        people = pl.DataFrame(
            [{c: row.get(c) for c in columns} for row in rows],
            schema={"cons_id": pl.Int64, **{c: pl.String for c in columns[1:]}},
        )
        # Everyone here consented to both channels: these tests are about keys and diffs.
        with connect(self.data.warehouse) as con, registered(con, "_people", people):
            con.execute(
                "INSERT INTO constituents (cons_id, member_id, email, phone, external_id, "
                "first_name, email_opt_in, sms_opt_in) SELECT *, TRUE, TRUE FROM _people"
            )

    def members(self, segment: str, *cons_ids: int) -> None:
        """The segment's members become exactly `cons_ids` (created if missing)."""
        with connect(self.data.warehouse) as con:
            segment_id = con.execute(
                "SELECT segment_id FROM segments WHERE name = ?", [segment]
            ).fetchall()
            segment_id = segment_id[0] if segment_id else None
            if segment_id is None:
                segment_id = (con.execute("SELECT count(*) + 1 FROM segments").fetchall()[0][0],)
                con.execute(
                    "INSERT INTO segments (segment_id, name, kind, description, created_at) "
                    "VALUES (?, ?, 'manual', NULL, ?)",
                    [segment_id[0], segment, self.clock],
                ).fetchall()
            rows = pl.DataFrame(
                {"segment_id": [segment_id[0]] * len(cons_ids), "cons_id": list(cons_ids)},
                schema={"segment_id": pl.Int64, "cons_id": pl.Int64},
            )
            target = pl.DataFrame({"segment_id": [segment_id[0]]})
            with registered(con, "_wanted", target), registered(con, "_rows", rows):
                replace_members(
                    con,
                    segments="_wanted",
                    members="_rows",
                    upload_id=None,
                    run_id="t",
                    at=self.clock,
                )

    def sync(self, destination: Destination, **options):
        self.clock += timedelta(hours=1)
        with connect(self.data.warehouse) as con:
            pairs = resolve_pairs(con, destination)
            return sync_destination(con, self.data, destination, pairs, at=self.clock, **options)

    def query(self, sql: str, params: list | None = None) -> pl.DataFrame:
        with connect(self.data.warehouse) as con:
            return frame(con, sql, params)

    def read(self, destination: str, audience: str, name: str) -> pl.DataFrame:
        path = self.data.exports / destination / audience / f"{name}.csv"
        return pl.read_csv(path, infer_schema=False)

    def keys(self, destination: str, audience: str, name: str) -> list[str]:
        return sorted(self.read(destination, audience, name)[:, 0].to_list())


@pytest.fixture
def warehouse(tmp_path: Path) -> Warehouse:
    house = Warehouse(tmp_path / "deployment")
    house.people(
        {
            "cons_id": 1,
            "member_id": "RE-00017",
            "email": "ann@example.org",
            "external_id": "X1",
            "first_name": "Ann",
            "phone": "+12025550101",
        },
        {
            "cons_id": 2,
            "member_id": "cus_8f2a",
            "email": "bob@example.org",
            "external_id": "X2",
            "first_name": "Bob",
            "phone": "+12025550102",
        },
        {
            "cons_id": 3,
            "email": "cy@example.org",
            "external_id": "X3",
            "first_name": "Cy",
            "phone": "+442071838750",
        },
        {"cons_id": 4, "email": "dee@example.org", "external_id": None, "first_name": "Dee"},
        {"cons_id": 5, "email": "eve@example.org", "external_id": "  ", "first_name": "Eve"},
    )
    return house


SELLIGENT = Destination("selligent", "external_id", ("VIP list",), fields=("email", "first_name"))
SELLIGENT_ALL = Destination("selligent", "external_id", ("*",))


def test_cons_id_and_the_text_member_id_are_matching_keys(warehouse: Warehouse):
    warehouse.members("VIP list", 1, 2, 3)
    luminate = Destination("luminate", "member_id", ("VIP list",), fields=("cons_id",))
    copy = Destination("copy", "cons_id", ("VIP list",), fields=("member_id", "email"))
    by_member = warehouse.sync(luminate)
    warehouse.sync(copy)

    members = warehouse.read("luminate", "VIP_list", "members").sort("member_id")
    assert members.rows() == [("RE-00017", "1"), ("cus_8f2a", "2")]  # exactly as received
    assert by_member.pairs[0].skipped_no_key == 1  # Cy has no member id
    copied = warehouse.read("copy", "VIP_list", "members").sort("cons_id")
    assert copied.rows() == [
        ("1", "RE-00017", "ann@example.org"),
        ("2", "cus_8f2a", "bob@example.org"),
        ("3", None, "cy@example.org"),
    ]
    baseline = warehouse.query(
        "SELECT key_value, cons_id FROM sync_members WHERE destination = 'luminate' ORDER BY 2"
    )
    assert baseline.rows() == [("RE-00017", 1), ("cus_8f2a", 2)]

    warehouse.members("VIP list", 2, 3)
    warehouse.sync(luminate)
    assert warehouse.keys("luminate", "VIP_list", "removes") == ["RE-00017"]


def test_first_sync_adds_everyone_and_later_syncs_add_and_remove_exactly(warehouse: Warehouse):
    warehouse.members("VIP list", 1, 2)
    first = warehouse.sync(SELLIGENT)
    assert warehouse.keys("selligent", "VIP_list", "adds") == ["X1", "X2"]
    assert warehouse.keys("selligent", "VIP_list", "removes") == []

    warehouse.members("VIP list", 2, 3)
    warehouse.sync(SELLIGENT)
    assert warehouse.keys("selligent", "VIP_list", "members") == ["X2", "X3"]
    assert warehouse.keys("selligent", "VIP_list", "adds") == ["X3"]
    assert warehouse.keys("selligent", "VIP_list", "removes") == ["X1"]

    warehouse.sync(SELLIGENT)  # nothing changed: nothing to add or remove
    assert warehouse.keys("selligent", "VIP_list", "adds") == []
    assert warehouse.keys("selligent", "VIP_list", "removes") == []

    history = sorted((warehouse.data.exports / "selligent" / "VIP_list" / "history").iterdir())
    assert [h.name for h in history][0] == first.stamp
    assert len(history) == 3
    first_adds = pl.read_csv(history[0] / "adds.csv", infer_schema=False)
    assert sorted(first_adds["external_id"]) == ["X1", "X2"]
    assert first_adds.columns == ["external_id", "email", "first_name"]


def test_people_without_the_key_are_skipped_and_counted(warehouse: Warehouse):
    warehouse.members("VIP list", 1, 4, 5)
    result = warehouse.sync(SELLIGENT)

    assert warehouse.keys("selligent", "VIP_list", "members") == ["X1"]
    assert result.pairs[0].skipped_no_key == 2
    syncs = warehouse.query('SELECT * FROM syncs ORDER BY "at"')
    assert syncs.select("destination", "segment", "members", "adds", "removes", "skipped_no_key",
                        "path").row(0) == (
        "selligent", "VIP list", 1, 1, 0, 2, "exports/selligent/VIP_list",
    )  # fmt: skip


def test_a_changed_key_is_a_remove_of_the_old_value_and_an_add_of_the_new(warehouse: Warehouse):
    warehouse.members("VIP list", 1)
    warehouse.sync(SELLIGENT)
    warehouse.query("UPDATE constituents SET external_id = 'X1-NEW' WHERE cons_id = 1")
    warehouse.sync(SELLIGENT)
    assert warehouse.keys("selligent", "VIP_list", "adds") == ["X1-NEW"]
    assert warehouse.keys("selligent", "VIP_list", "removes") == ["X1"]


def test_upsert_destinations_only_ever_add(warehouse: Warehouse):
    upsert = Destination("crm", "email", ("VIP list",), mode=SyncMode.UPSERT)
    warehouse.members("VIP list", 1, 2)
    warehouse.sync(upsert), warehouse.sync(SELLIGENT)
    warehouse.members("VIP list", 2)
    warehouse.sync(upsert), warehouse.sync(SELLIGENT)
    assert warehouse.keys("crm", "VIP_list", "removes") == []
    assert warehouse.keys("selligent", "VIP_list", "removes") == ["X1"]
    assert warehouse.keys("crm", "VIP_list", "members") == ["bob@example.org"]

    warehouse.members("VIP list", 1, 2)  # back in: the upsert destination still has Ann
    warehouse.sync(upsert), warehouse.sync(SELLIGENT)
    assert warehouse.keys("crm", "VIP_list", "adds") == []
    assert warehouse.keys("selligent", "VIP_list", "adds") == ["X1"]
    # Each sync's row says its mode in the words of segments.yaml.
    modes = warehouse.query("SELECT DISTINCT destination, mode FROM syncs ORDER BY 1")
    assert modes.rows() == [("crm", "upsert"), ("selligent", "mirror")]


def test_spreadsheet_formulas_are_neutralized_but_e164_phones_are_not(warehouse: Warehouse):
    warehouse.people(
        {"cons_id": 10, "external_id": "=HYPERLINK(1)", "first_name": "+SUM(A1)",
         "phone": "+12025550110"},
        {"cons_id": 11, "external_id": "Y11", "first_name": "-2+3", "phone": "@cmd"},
        {"cons_id": 12, "external_id": "Y12", "first_name": "\tTab", "phone": "+1 202 555"},
        {"cons_id": 13, "external_id": "Y13", "first_name": "\rCR", "phone": "+12025550113"},
        {"cons_id": 14, "external_id": "Y14", "first_name": "Ann-Marie", "phone": "202-555"},
    )  # fmt: skip
    warehouse.members("Risky", 10, 11, 12, 13, 14)
    destination = Destination("sheet", "external_id", ("Risky",), fields=("first_name", "phone"))
    warehouse.sync(destination)

    rows = warehouse.read("sheet", "Risky", "members").sort("external_id")
    assert rows.rows() == [
        ("'=HYPERLINK(1)", "'+SUM(A1)", "+12025550110"),
        ("Y11", "'-2+3", "'@cmd"),
        ("Y12", "'\tTab", "'+1 202 555"),
        ("Y13", "'\rCR", "+12025550113"),
        ("Y14", "Ann-Marie", "202-555"),
    ]


def _unchanged_now(warehouse: Warehouse, destination: Destination) -> bool:
    with connect(warehouse.data.warehouse) as con:
        pairs = resolve_pairs(con, destination)
        return sync_is_unchanged(
            con, warehouse.data, destination, pairs, at=warehouse.clock + timedelta(hours=1)
        )


def test_an_unchanged_destination_is_left_alone_and_any_change_syncs_it(warehouse: Warehouse):
    warehouse.members("VIP list", 1, 2, 4)
    assert not _unchanged_now(warehouse, SELLIGENT)  # never synced
    warehouse.sync(SELLIGENT)
    warehouse.members("VIP list", 1, 2, 3, 4)
    warehouse.sync(SELLIGENT)  # adds.csv now holds X3
    before, syncs = _snapshot(warehouse, "selligent"), warehouse.query("SELECT * FROM syncs")
    baseline = warehouse.query("SELECT * FROM sync_members ORDER BY key_value")

    assert _unchanged_now(warehouse, SELLIGENT)
    result = warehouse.sync(SELLIGENT, skip_unchanged=True)
    assert result.unchanged and result.pairs == []
    # No new files or history, no syncs row, the same baseline: the latest syncs row still
    # describes the files in place (its adds are adds.csv's X3).
    assert _snapshot(warehouse, "selligent") == before
    assert warehouse.query("SELECT * FROM syncs").equals(syncs)
    assert warehouse.query("SELECT * FROM sync_members ORDER BY key_value").equals(baseline)
    assert not list((warehouse.data.exports / "selligent").glob(".staging-*"))

    # Whatever a destination would be sent differently is a change: a field of a member...
    warehouse.query("UPDATE constituents SET first_name = 'Bobby' WHERE cons_id = 2")
    assert not _unchanged_now(warehouse, SELLIGENT)
    assert not warehouse.sync(SELLIGENT, skip_unchanged=True).unchanged
    assert warehouse.keys("selligent", "VIP_list", "adds") == []
    assert _unchanged_now(warehouse, SELLIGENT)
    # ... consent (Ann stops email: a remove) ...
    warehouse.query("UPDATE constituents SET email_opt_in = FALSE WHERE cons_id = 1")
    assert not _unchanged_now(warehouse, SELLIGENT)
    warehouse.sync(SELLIGENT, skip_unchanged=True)
    assert warehouse.keys("selligent", "VIP_list", "removes") == ["X1"]
    # ... and a member without the key, counted though never sent.
    warehouse.members("VIP list", 2, 3, 4, 5)
    assert not _unchanged_now(warehouse, SELLIGENT)
    assert warehouse.sync(SELLIGENT, skip_unchanged=True).pairs[0].skipped_no_key == 2
    # A destination's other fields are a different list too.
    wider = Destination("selligent", "external_id", ("VIP list",), fields=("email",))
    assert not _unchanged_now(warehouse, wider)


def _sync_configured(warehouse: Warehouse, destination: Destination, **options):
    """Sync `destination` as a run does: its configured pairs and the retired ones it owes."""
    warehouse.clock += timedelta(hours=1)
    with connect(warehouse.data.warehouse) as con:
        pairs = configured_pairs(con, [destination])
        return sync_destination(
            con, warehouse.data, destination, pairs, at=warehouse.clock, **options
        )


def test_a_segment_a_mirror_destination_stops_receiving_is_removed_from_it_once(
    warehouse: Warehouse,
):
    both = Destination("selligent", "external_id", ("VIP list", "Lapsed"))
    warehouse.members("VIP list", 1)
    warehouse.members("Lapsed", 2, 3)
    _sync_configured(warehouse, both)
    only_vip = Destination("selligent", "external_id", ("VIP list",))

    # Out of the destination's `segments:` (still a segment): its members are removed.
    synced = _sync_configured(warehouse, only_vip)
    assert [(p.pair.segment, p.members, p.removes) for p in synced.pairs] == [
        ("VIP list", 1, 0),
        ("Lapsed", 0, 2),
    ]
    assert warehouse.keys("selligent", "Lapsed", "removes") == ["X2", "X3"]
    assert warehouse.keys("selligent", "Lapsed", "members") == []
    assert (
        warehouse.query(
            "SELECT count(*) AS n FROM sync_members WHERE destination = 'selligent' "
            "AND segment_id = (SELECT segment_id FROM segments WHERE name = 'Lapsed')"
        )["n"][0]
        == 0
    )
    # Sent once: the next sync has nothing of it, and nothing to send at all.
    assert [p.pair.segment for p in _sync_configured(warehouse, only_vip).pairs] == ["VIP list"]
    with connect(warehouse.data.warehouse) as con:
        pairs = configured_pairs(con, [only_vip])
        assert sync_is_unchanged(con, warehouse.data, only_vip, pairs, at=warehouse.clock)


def test_a_deleted_segment_is_removed_from_mirror_destinations_under_the_guard(
    warehouse: Warehouse,
):
    from segpipe.warehouse.guard import RemovalHeld
    from segpipe.warehouse.segments import delete_segment

    everyone = Destination("crm", "email", ("*",), channel=Channel.NONE)
    warehouse.people(*({"cons_id": n, "email": f"p{n}@example.org"} for n in range(10, 40)))
    warehouse.members("Big list", *range(10, 40))
    warehouse.members("VIP list", 1)
    _sync_configured(warehouse, everyone)
    with connect(warehouse.data.warehouse) as con:
        delete_segment(con, "Big list", warehouse.clock)
        pairs = configured_pairs(con, [everyone])
        # A removal is pending: `segpipe run` must not call the exports unchanged.
        assert not sync_is_unchanged(con, warehouse.data, everyone, pairs, at=warehouse.clock)

    # All 30 leaving is more than the guard lets through: held, nothing written.
    with pytest.raises(RemovalHeld, match="'Big list' would lose 30 of its 30 members"):
        _sync_configured(warehouse, everyone)
    assert warehouse.keys("crm", "Big_list", "members") == [
        f"p{n}@example.org" for n in range(10, 40)
    ]

    synced = _sync_configured(warehouse, everyone, removal_limit=None)
    assert [(p.pair.segment, p.removes) for p in synced.pairs] == [
        ("VIP list", 0),
        ("Big list", 30),
    ]
    assert len(warehouse.keys("crm", "Big_list", "removes")) == 30
    assert warehouse.keys("crm", "Big_list", "members") == []
    assert [p.pair.segment for p in _sync_configured(warehouse, everyone).pairs] == ["VIP list"]


def test_a_segment_made_again_under_a_deleted_ones_name_gets_one_diff(warehouse: Warehouse):
    from segpipe.warehouse.segments import delete_segment

    warehouse.members("Lapsed", 1, 2)
    _sync_configured(warehouse, SELLIGENT_ALL)
    with connect(warehouse.data.warehouse) as con:
        delete_segment(con, "Lapsed", warehouse.clock)
        con.execute(  # a new segment, a new id, the same name and so the same folder
            "INSERT INTO segments (segment_id, name, kind, created_at) "
            "VALUES (99, 'Lapsed', 'manual', ?)",
            [warehouse.clock],
        )
    warehouse.members("Lapsed", 2, 3)
    synced = _sync_configured(warehouse, SELLIGENT_ALL)
    assert [(p.pair.segment_id, p.adds, p.removes) for p in synced.pairs] == [(99, 1, 1)]
    assert warehouse.keys("selligent", "Lapsed", "adds") == ["X3"]
    assert warehouse.keys("selligent", "Lapsed", "removes") == ["X1"]
    assert warehouse.query("SELECT DISTINCT segment_id FROM sync_members").rows() == [(99,)]


def _snapshot(warehouse: Warehouse, destination: str) -> dict[str, bytes]:
    folder = warehouse.data.exports / destination
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("failing_at", ["staged", "swapped"])
def test_a_failed_sync_leaves_files_and_baseline_as_they_were(
    warehouse: Warehouse, failing_at: str
):
    warehouse.members("VIP list", 1, 2)
    warehouse.sync(SELLIGENT)
    before = _snapshot(warehouse, "selligent")
    baseline = warehouse.query("SELECT * FROM sync_members ORDER BY key_value")

    warehouse.members("VIP list", 2, 3)
    seen = []

    def fail(stage: str):
        if stage == failing_at:
            # at "swapped" the new files are in place, and must be taken back
            seen.append(warehouse.keys("selligent", "VIP_list", "members"))
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        warehouse.sync(SELLIGENT, checkpoint=fail)

    assert _snapshot(warehouse, "selligent") == before
    assert warehouse.query("SELECT * FROM sync_members ORDER BY key_value").equals(baseline)
    assert warehouse.query("SELECT count(*) AS n FROM syncs")["n"][0] == 1
    assert not list((warehouse.data.exports / "selligent").glob(".staging-*"))
    assert seen == [["X1", "X2"] if failing_at == "staged" else ["X2", "X3"]]

    warehouse.sync(SELLIGENT)  # the next sync is still exact against the last good one
    assert warehouse.keys("selligent", "VIP_list", "adds") == ["X3"]
    assert warehouse.keys("selligent", "VIP_list", "removes") == ["X1"]


def test_attentive_files_round_trip_through_the_subscriber_upload_rules(warehouse: Warehouse):
    warehouse.members("VIP list", 1, 2, 3, 4)
    warehouse.members("Gala-2026 guests", 2)
    warehouse.members("Bad/Name?", 1)
    attentive = Destination("attentive", "phone", ("*",), format="attentive", domain="sirendenim")

    result = warehouse.sync(attentive, attentive_max_rows=2)

    names = [Path(f).name for f in result.delivery_files]
    assert names == [f"sirendenim_subscriber_segment_20261107_{n}.csv" for n in (1, 2)]
    assert result.skipped_segments == ["Bad/Name?"]
    rows = []
    for name in names:
        delivery = delivery_of(name)
        assert (delivery.domain, delivery.day.isoformat()) == ("sirendenim", "2026-11-07")
        lines = (warehouse.data.exports / "attentive" / name).read_text().splitlines()
        assert 1 <= len(lines) <= 2
        rows += [line.split(",") for line in lines]
    assert sorted(rows) == sorted(
        [
            ["2025550101", "VIP list"],
            ["2025550102", "Gala-2026 guests"],
            ["2025550102", "VIP list"],
            ["+442071838750", "VIP list"],  # not a US number: E.164 as it is
        ]
    )
    # Each file through segpipe's own subscriber upload rules (name, no header, one kind of
    # identifier, phone format, segment names): every row accepted, as the people's phones.
    received = []
    for name in names:
        path = warehouse.data.exports / "attentive" / name
        checked = subscriber.validate(name, read_file(path, header=False, columns=2))
        assert checked[REASON].is_null().all(), checked.filter(pl.col(REASON).is_not_null())
        received += checked.select("phone", "segment").rows()
    assert sorted(received) == [
        ("+12025550101", "VIP list"),
        ("+12025550102", "Gala-2026 guests"),
        ("+12025550102", "VIP list"),
        ("+442071838750", "VIP list"),
    ]

    # A second sync the same day is that day's delivery: one file now, the stale _2 is gone.
    warehouse.members("VIP list", 1)
    warehouse.members("Gala-2026 guests")
    again = warehouse.sync(attentive, attentive_max_rows=2)
    assert [Path(f).name for f in again.delivery_files] == [names[0]]
    left = sorted(p.name for p in (warehouse.data.exports / "attentive").glob("*.csv"))
    assert left == [names[0]]
    assert (warehouse.data.exports / "attentive" / names[0]).read_text() == "2025550101,VIP list\n"


def test_attentive_by_email(warehouse: Warehouse):
    warehouse.members("VIP list", 1, 2)
    attentive = Destination("att", "email", ("VIP list",), format="attentive", domain="brand.com")
    result = warehouse.sync(attentive)
    text = (warehouse.data.root / result.delivery_files[0]).read_text()
    assert text.splitlines() == ["ann@example.org,VIP list", "bob@example.org,VIP list"]
    assert delivery_of(Path(result.delivery_files[0]).name).part == 1


def _yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "segments.yaml"
    path.write_text(text)
    return path


def test_destinations_load_and_ignore_the_segments_key(tmp_path: Path):
    path = _yaml(
        tmp_path,
        """
segments:
  - name: High value donors
    all: [{attribute: lifetime_value, op: gt, value: 25000}]
destinations:
  - {name: selligent, format: csv, key: external_id, fields: [email, first_name], segments: [A]}
  - {name: attentive, format: attentive, domain: sirendenim, key: phone, segments: ["*"]}
  - {name: crm, key: email, mode: upsert, segments: [A]}
""",
    )
    selligent, attentive, crm = load_destinations(path)
    assert selligent.columns == ("external_id", "email", "first_name")
    # Read once into the vocabulary: mirror unless segments.yaml says otherwise.
    assert (selligent.mode, crm.mode) == (SyncMode.MIRROR, SyncMode.UPSERT)
    assert isinstance(selligent.mode, SyncMode) and isinstance(crm.mode, SyncMode)
    assert attentive.all_segments and attentive.domain == "sirendenim"
    assert load_destinations(tmp_path / "missing.yaml") == []


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("{name: s, key: fax, segments: [A]}", "destination 's': unknown key 'fax'"),
        ("{name: s, key: email, format: xml, segments: [A]}", "unknown format 'xml'"),
        (
            "{name: s, key: email, mode: sync, segments: [A]}",
            "destination 's': unknown mode 'sync'; one of mirror, upsert",
        ),
        ("{name: s, key: email, mode: Mirror, segments: [A]}", "unknown mode 'Mirror'"),
        ("{name: s, key: email, mode: [mirror], segments: [A]}", "unknown mode ['mirror']"),
        ("{name: s, key: email, channel: [sms], segments: [A]}", "unknown channel ['sms']"),
        ("{name: s, key: email, format: [csv], segments: [A]}", "unknown format ['csv']"),
        ("{name: s, key: email}", "`segments` must list"),
        ("{name: s, key: email, format: attentive, segments: [A]}", "attentive needs a `domain`"),
        ("{name: s, key: member_id, format: attentive, domain: d, segments: [A]}", "phone or an"),
        ("{name: ../up, key: email, segments: [A]}", "needs a `name`"),
        ("{name: s, key: email, segments: [A], colour: red}", "unknown setting(s) colour"),
    ],
)
def test_bad_destinations_are_refused_naming_the_destination(tmp_path, entry, message):
    with pytest.raises(DestinationError, match=re.escape(message)):
        load_destinations(_yaml(tmp_path, f"destinations:\n  - {entry}\n"))


def test_unknown_fields_are_refused_and_unknown_segments_left_out_once_the_warehouse_is_known(
    warehouse: Warehouse,
):
    warehouse.members("VIP list", 1)
    missing = []
    with connect(warehouse.data.warehouse) as con:
        pairs = configured_pairs(
            con, [Destination("s", "email", ("VIP list", "Nope"))], missing=missing.append
        )
        assert [p.segment for p in pairs] == ["VIP list"]  # the known one still syncs
        assert missing == [MissingSegments("s", ("Nope",))]
        with pytest.raises(DestinationError, match="'s': unknown field\\(s\\) shoe_size"):
            configured_pairs(con, [Destination("s", "email", ("VIP list",), fields=("shoe_size",))])
        pairs = configured_pairs(con, [Destination("s", "email", ("vip LIST",))])
    assert [(p.segment, p.audience, p.partition_key) for p in pairs] == [
        ("VIP list", "VIP_list", "s/VIP_list")
    ]


def test_audience_names_stay_inside_the_export_folder():
    assert audience_of("Monthly Newsletter Opt-In") == "Monthly_Newsletter_Opt-In"
    assert audience_of("../../etc") == "____etc"
    assert audience_of(".hidden") == "_hidden"
    assert audience_of("a/b\\c") == "a_b_c"
