"""Erasure (`segpipe forget`, `forget_person_job`) through the real pipeline: afterwards no byte
under the data directory or the Dagster home names the person, and they never come back."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from segpipe.cli import main
from segpipe_tests.conftest import Deployment, copy_of, csv, deployment_at

SEGMENTS_YAML = """
destinations:
  - {name: newsletter, key: email, fields: [first_name, last_name], segments: [Friends]}
  - {name: crm, key: external_id, channel: none, segments: [Friends]}
  - {name: texts, format: attentive, domain: shop, key: phone, segments: [Friends]}
"""
PEOPLE = csv(
    "member_id,email,phone,external_id,first_name,last_name,email_opt_in,sms_opt_in",
    "M-1,ann@example.org,415-555-0101,EXT-11A1,Ann,Lee,yes,yes",
    "M-7001,Erin.Vasquez@Example.ORG,(503) 555-0199,EXT-77Q1,Erin,Vasquez,yes,yes",
    "M-2,bob@example.org,415-555-0102,EXT-22B2,Bob,Kim,yes,yes",
)
# Everything that names Erin, in every form it was written or exported in.
ERIN = [
    rb"erin\.vasquez@example\.org",
    rb"5035550199",
    rb"503\) 555-0199",
    rb"EXT-77Q1",
    rb"M-7001",
    rb"Vasquez",
]
ERIN_CONS_ID = 2  # the second person of the first file
ERIN_TABLES = ("interest_memberships", "segment_memberships", "membership_history", "events")
ANN = [rb"ann@example\.org", rb"4155550101", rb"415-555-0101", rb"EXT-11A1"]


def _files_naming(root: Path, patterns: list[bytes], skip: Path | None = None) -> list[str]:
    """Every file under `root` whose bytes match one of `patterns` (case aside)."""
    found = []
    for path in root.rglob("*"):
        if not path.is_file() or (skip and skip in path.parents):
            continue
        payload = path.read_bytes()
        found += [
            f"{path.relative_to(root)}: {p.decode()}"
            for p in patterns
            if re.search(p, payload, re.I)
        ]
    return found


def _rows_of_erin(deployment: Deployment) -> dict[str, int]:
    """table -> how many of its rows are Erin's (ERIN_TABLES)."""
    counts = deployment.queries(
        {t: f"SELECT count(*) FROM {t} WHERE cons_id = {ERIN_CONS_ID}" for t in ERIN_TABLES}
    )
    return {table: rows.item() for table, rows in counts.items()}


@pytest.fixture(scope="module")
def applied_history(tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    """Two runs that put Erin in every table, the archive, a report and the exports: once per
    module (each test erases from a copy, `history`)."""
    with deployment_at(tmp_path_factory.mktemp("history") / "deployment") as deployment:
        return _put_erin_everywhere(deployment)


@pytest.fixture
def history(applied_history: Deployment, tmp_path: Path, monkeypatch) -> Deployment:
    """A copy of `applied_history` (warehouse, files, Dagster home), Erin in it everywhere."""
    deployment = copy_of(applied_history, tmp_path / "deployment", monkeypatch)
    # The test can fail: before erasure, Erin is everywhere.
    assert len(_files_naming(deployment.data.root, ERIN)) > 10
    assert all(_rows_of_erin(deployment).values())
    return deployment


def _put_erin_everywhere(deployment: Deployment) -> Deployment:
    deployment.data.segments_yaml.write_text(SEGMENTS_YAML)
    deployment.drop("constituents_2026-11-01.csv", PEOPLE)
    deployment.drop(
        "segmentation_2026-11-02.csv",
        csv("email,interest_name,opt", "erin.vasquez@example.org,Newsletter,in",
            "ann@example.org,Newsletter,in"),
    )  # fmt: skip
    deployment.drop(
        "events_2026-11-03.csv",
        csv(
            "email,event,timestamp,url",
            "erin.vasquez@example.org,page_view,2026-11-03T10:00:00Z,/a",
            "erin.vasquez@example.org,page_view,not a time,/b",
            "ann@example.org,page_view,not a time,/c",
        ),
    )
    friends = csv("segment,member_id", "Friends,M-1", "Friends,M-7001", "Friends,M-2")
    deployment.drop("manual_segment_2026-11-04.csv", friends)
    code, printed = deployment.run()
    assert code == 0, printed
    deployment.drop("constituents_2026-11-05.csv", csv("member_id,first_name", "M-2,Robert"))
    code, printed = deployment.run()
    assert code == 0, printed
    return deployment


def test_forget_removes_the_person_from_every_byte(history: Deployment):
    root = history.data.root
    code = main(["forget", "--email", " ERIN.vasquez@example.org", "--data-dir", str(root)])
    assert code == 0
    assert _files_naming(root, ERIN) == []

    people = history.query("SELECT member_id, first_name FROM constituents ORDER BY 1").rows()
    assert people == [("M-1", "Ann"), ("M-2", "Robert")]
    assert _rows_of_erin(history) == dict.fromkeys(ERIN_TABLES, 0)
    erased = history.query("SELECT identifier_kind, identifier_hash FROM erasures ORDER BY 1")
    assert erased["identifier_kind"].to_list() == [
        "cons_id", "email", "external_id", "member_id", "phone",
    ]  # fmt: skip
    assert all(re.fullmatch("[0-9a-f]{64}", h) for h in erased["identifier_hash"])

    # The archive keeps everyone else's rows byte for byte; each rewrite is on its upload.
    archived = next(history.data.archive.glob("*/constituents_2026-11-01.csv")).read_text()
    assert archived == PEOPLE.replace(
        "M-7001,Erin.Vasquez@Example.ORG,(503) 555-0199,EXT-77Q1,Erin,Vasquez,yes,yes\n", ""
    )
    rewrites = history.query("SELECT file_name, rows_removed FROM archive_rewrites ORDER BY 1")
    assert rewrites.rows() == [
        ("constituents_2026-11-01.csv", 1),
        ("events_2026-11-03.csv", 2),
        ("manual_segment_2026-11-04.csv", 1),
        ("segmentation_2026-11-02.csv", 1),
    ]
    # Ann's rejected event is still reported; the exports still carry Ann and Bob.
    assert len(history.errors("events_2026-11-03.csv")) == 1
    members = (root / "exports" / "newsletter" / "Friends" / "members.csv").read_text()
    assert members.splitlines() == [
        "email,first_name,last_name", "ann@example.org,Ann,Lee", "bob@example.org,Robert,Kim",
    ]  # fmt: skip


def test_an_erased_person_sent_again_is_ignored(history: Deployment):
    root = history.data.root
    assert main(["forget", "--phone", "503.555.0199", "--data-dir", str(root)]) == 0
    history.drop(
        "constituents_2026-11-06.csv",
        csv("email,first_name,email_opt_in", "erin.vasquez@example.org,Erin,yes",
            "cy@example.org,Cy,yes"),
    )  # fmt: skip
    history.drop("manual_segment_2026-11-07.csv", csv("segment,external_id", "Friends,EXT-77Q1"))
    code, printed = history.run()
    assert code == 0, printed
    upload = history.upload("constituents_2026-11-06.csv")
    assert (upload["rows_applied"], upload["rows_ignored"]) == (1, 1)
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    errors = history.errors("constituents_2026-11-06.csv")
    assert errors.select("line", "outcome", "reason").rows() == [
        ("2", "ignored", f"erased on {today}")
    ]
    assert history.errors("manual_segment_2026-11-07.csv")["reason"].to_list() == [
        f"erased on {today}"
    ]
    emails = history.query("SELECT email FROM constituents ORDER BY 1")["email"].to_list()
    assert emails == ["ann@example.org", "bob@example.org", "cy@example.org"]
    # The new files are archived as received; nothing else names her again.
    assert _files_naming(root, ERIN, skip=history.data.archive) == []


def test_forget_person_job_erases_and_scrubs_its_own_run_config(history: Deployment):
    from segpipe.definitions import defs

    job = defs().resolve_job_def("forget_person_job")
    with history.instance() as instance:
        result = job.execute_in_process(
            instance=instance,
            run_config={"ops": {"forget_person": {"config": {"phone": "(415) 555-0101"}}}},
        )
        assert result.success
    assert history.query("SELECT count(*) FROM constituents WHERE member_id = 'M-1'").item() == 0
    assert _files_naming(history.data.root, ANN) == []
    assert _files_naming(history.data.root, ERIN) != []  # only the person named was erased


def test_forget_refuses_an_identifier_that_cannot_name_anyone(history: Deployment, capsys):
    from segpipe.definitions import defs

    root = history.data.root
    assert main(["forget", "--email", "not-an-email", "--data-dir", str(root)]) == 1
    assert "cannot forget: email: not a valid email" in capsys.readouterr().err
    config = {"email": "a@b.org", "cons_id": "7"}  # two identifiers: which person is meant?
    with history.instance() as instance:
        result = (
            defs()
            .resolve_job_def("forget_person_job")
            .execute_in_process(
                instance=instance,
                run_config={"ops": {"forget_person": {"config": config}}},
                raise_on_error=False,
            )
        )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "give exactly one of email, phone, member_id, cons_id (2 given)" in str(
        failure.step_failure_data.user_failure_data.description
    )
    assert history.query("SELECT count(*) FROM constituents").item() == 3


def test_the_check_finds_an_erased_person_written_back_behind_segpipes_back(tmp_path: Path):
    from segpipe.warehouse.connection import connect
    from segpipe.warehouse.erasures import ErasedPeople, erase_people, returned_people

    found = ErasedPeople()
    found.add("email", "gone@example.org")
    with connect(tmp_path / "w.duckdb") as con:
        erase_people(con, found, datetime(2026, 11, 30))
        assert returned_people(con) == 0
        con.execute("INSERT INTO constituents (cons_id, email) VALUES (5, 'kept@example.org')")
        assert returned_people(con) == 0
        con.execute("INSERT INTO constituents (cons_id, email) VALUES (6, 'gone@example.org')")
        assert returned_people(con) == 1


def test_forget_also_clears_the_before_images_of_undone_uploads(history: Deployment):
    """`segpipe undo` keeps what an upload changed (Erin's old name, email, phone) in
    upload_before_<table>; an undone upload's images stay there, and erasure removes them too."""
    root = history.data.root
    history.drop("constituents_2026-11-06.csv", csv("member_id,first_name", "M-7001,Erina"))
    code, printed = history.run()
    assert code == 0, printed
    upload_id = history.query(
        "SELECT upload_id FROM uploads WHERE file_name = 'constituents_2026-11-06.csv'"
    ).item()
    assert main(["undo", upload_id, "--data-dir", str(root)]) == 0
    images = history.query(
        f"SELECT count(*) FROM upload_before_constituents WHERE cons_id = {ERIN_CONS_ID} "
        "AND email IS NOT NULL"
    ).item()
    assert images > 0  # the test can fail: the undone upload's image names her

    assert main(["forget", "--member-id", "M-7001", "--data-dir", str(root)]) == 0
    assert _files_naming(root, ERIN) == []


def test_forget_also_clears_the_before_images_of_suppression_files(history: Deployment):
    """A suppression file's before-images name the identifier itself (what `segpipe undo` lifts
    again); erasure removes them with the suppression, or an undo would bring it back."""
    root = history.data.root
    history.drop("suppression_2026-11-06.csv", csv("phone,reason", "503-555-0199,stop"))
    code, printed = history.run()
    assert code == 0, printed
    images = "SELECT count(*) FROM upload_before_suppressions WHERE identifier = '+15035550199'"
    assert history.query(images).item() == 1  # the test can fail: the image names her phone

    assert main(["forget", "--member-id", "M-7001", "--data-dir", str(root)]) == 0
    assert history.query(images).item() == 0
    assert _files_naming(root, ERIN) == []
