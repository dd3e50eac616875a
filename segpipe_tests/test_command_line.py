"""`segpipe` as a user types it: what status, members and run print, and their exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from segpipe import cli
from segpipe.config import WAREHOUSE_ENV
from segpipe_tests.conftest import REPO, Deployment, copy_of, csv


def _status(deployment: Deployment, capsys: pytest.CaptureFixture, *flags: str) -> str:
    capsys.readouterr()
    assert cli.main(["status", "--data-dir", str(deployment.data.root), *flags]) == 0
    return capsys.readouterr().out


def _listed(printed: str) -> list[str]:
    """The upload ids `segpipe status` printed, in order."""
    return [line.split("upload_id: ")[1] for line in printed.splitlines() if "upload_id: " in line]


def test_status_shows_a_file_with_an_old_mtime_that_was_run_last(
    applied_sample: Deployment,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
):
    deployment = copy_of(applied_sample, tmp_path / "deployment", monkeypatch)
    for n in range(3):  # more uploads than status lists (20): the sample has 18
        deployment.drop(f"constituents_more_{n}.csv", csv("email", f"p{n}@example.org"))
    assert deployment.run()[0] == 0
    # Written a day before any other file (an old export found in a folder), run just now.
    old = "constituents_found_in_a_drawer.csv"
    deployment.drop(old, csv("email", "late@example.org"), arrival=-86_400)
    assert deployment.run()[0] == 0

    uploads = _status(deployment, capsys).split("\nSegments")[0]
    assert old in uploads
    # Listed last: the most recently settled, whatever its mtime says.
    assert uploads.rstrip().splitlines()[-2].strip().startswith(old)
    # 22 uploads: the 20 settled last by default, said so; `--limit 0` lists every one.
    assert len(_listed(uploads)) == 20
    assert "(2 earlier upload(s) not shown; `segpipe status --limit 0` lists all)" in uploads
    everything = _status(deployment, capsys, "--limit", "0")
    assert len(_listed(everything)) == 22 and "not shown" not in everything
    assert _listed(everything)[2:] == _listed(uploads)


def test_status_limit_lists_the_uploads_settled_last(
    applied_sample: Deployment, capsys: pytest.CaptureFixture
):
    settled = applied_sample.query(
        "SELECT upload_id FROM uploads ORDER BY applied_at NULLS FIRST, upload_id"
    )["upload_id"].to_list()
    assert len(settled) == 18  # fewer than the default 20: every one, nothing said hidden
    printed = _status(applied_sample, capsys)
    assert _listed(printed) == settled and "not shown" not in printed

    printed = _status(applied_sample, capsys, "--limit", "5")
    assert _listed(printed) == settled[-5:]
    assert "(13 earlier upload(s) not shown; `segpipe status --limit 0` lists all)" in printed
    assert "\nSegments" in printed  # segments and exports as always

    with pytest.raises(SystemExit) as stopped:
        cli.main(["status", "--data-dir", str(applied_sample.data.root), "--limit", "-1"])
    assert stopped.value.code == 2
    assert "--limit: expected a whole number, 0 or more, not '-1'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command", [["run", "--as-of", "yesterday"], ["members", "VIP", "--as-of", "2026-13-01"]]
)
def test_an_as_of_that_is_no_date_is_a_usage_error_naming_the_form(
    command: list[str], capsys: pytest.CaptureFixture
):
    with pytest.raises(SystemExit) as stopped:
        cli.main(command)
    assert stopped.value.code == 2
    (said,) = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert said.endswith(
        "argument --as-of: expected an ISO 8601 date or date-time such as 2026-11-07 or "
        f"2026-11-07T09:30:00, not {command[-1]!r}"
    )


def _members(deployment: Deployment, capsys: pytest.CaptureFixture, *args: str):
    """`segpipe members ARGS`: (exit code, the cons_ids printed, stderr)."""
    capsys.readouterr()
    code = cli.main(["members", *args, "--data-dir", str(deployment.data.root)])
    printed = capsys.readouterr()
    rows = printed.out.splitlines()[1:]
    return code, {int(row.split(",")[0]) for row in rows}, printed.err


def _in_domain(deployment: Deployment, segment: str, domain: str) -> set[int]:
    rows = deployment.query(
        "SELECT m.cons_id FROM segment_memberships m JOIN segments s USING (segment_id) "
        "WHERE s.name = ? AND s.domain = ?",
        [segment, domain],
    )
    return set(rows["cons_id"])


def test_members_takes_the_label_status_prints_and_refuses_an_ambiguous_name(
    applied_sample: Deployment,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
):
    deployment = copy_of(applied_sample, tmp_path / "deployment", monkeypatch)
    denim = "VIP Shoppers (sirendenim)"
    assert f"  {denim} " in _status(deployment, capsys)
    vip = _in_domain(deployment, "VIP Shoppers", "sirendenim")
    assert vip
    assert _members(deployment, capsys, denim)[:2] == (0, vip)
    later = "2100-01-01T00:00:00"
    assert _members(deployment, capsys, denim, "--as-of", later)[:2] == (0, vip)
    assert _members(deployment, capsys, "vip shoppers")[:2] == (0, vip)  # one domain: plain works

    # The other brand's Attentive account gets a "VIP Shoppers" too.
    deployment.drop(
        "sirenoutlet_subscriber_segment_20261110.csv",
        "maria.alvarez@example.org,VIP Shoppers\r\n",
    )
    assert deployment.run()[0] == 0
    outlet = "VIP Shoppers (sirenoutlet)"
    assert f"  {outlet} " in _status(deployment, capsys)
    maria = _in_domain(deployment, "VIP Shoppers", "sirenoutlet")
    assert len(maria) == 1 and maria != vip
    assert _members(deployment, capsys, outlet)[:2] == (0, maria)
    assert _members(deployment, capsys, outlet, "--as-of", later)[:2] == (0, maria)
    assert _members(deployment, capsys, denim)[:2] == (0, vip)

    code, printed, error = _members(deployment, capsys, "VIP Shoppers")
    assert code == 1 and not printed
    assert f"'{denim}'" in error and f"'{outlet}'" in error


def test_a_warehouse_path_in_a_missing_folder_is_one_line_and_exit_1(
    deployment: Deployment, tmp_path: Path
):
    """A typo in $SEGPIPE_WAREHOUSE (or an unmounted share): every command says so in one line
    naming the path and what to do, with no traceback, and `run` leaves the inbox as it was."""
    missing = tmp_path / "not_mounted" / "segpipe.duckdb"
    dropped = deployment.drop("constituents_a.csv", csv("email", "ann@example.org"))
    env = {**os.environ, "PYTHONPATH": str(REPO), WAREHOUSE_ENV: str(missing)}
    root = str(deployment.data.root)
    for command in (["run"], ["run", "--dry-run"], ["status"], ["members", "VIP"], ["undo", "x"]):
        done = subprocess.run(
            [sys.executable, "-m", "segpipe.cli", *command, "--data-dir", root],
            env=env,
            capture_output=True,
            text=True,
        )
        said = done.stderr.strip().splitlines()
        assert done.returncode == 1, (command, done.stdout, done.stderr)
        assert len(said) == 1 and "Traceback" not in done.stderr, (command, done.stderr)
        assert str(missing) in said[0] and f"{missing.parent} does not exist" in said[0]
        assert f"set {WAREHOUSE_ENV}" in said[0]
    assert dropped.exists()  # not taken into the archive
    assert not missing.parent.exists()


def _attentive(phones: range, segment: str = "Loyal Fans") -> str:
    # Attentive's own shape: 10-digit US phone, segment name, no header, CRLF line ends.
    return "".join(f"415555{n:04d},{segment}\r\n" for n in phones)


def test_a_held_file_is_called_held_with_how_to_release_it_not_rejected(deployment: Deployment):
    people = [f"p{n}@example.org,+1415555{n:04d},y" for n in range(30)]
    deployment.drop("constituents_fans.csv", csv("email,phone,sms_opt_in", *people))
    deployment.drop("acme_subscriber_segment_20261101.csv", _attentive(range(30)))
    assert deployment.run()[0] == 0
    # A truncated delivery: 25 of Loyal Fans' 30 members would leave.
    deployment.drop("acme_subscriber_segment_20261102.csv", _attentive(range(5)))

    code, printed = deployment.run()

    assert code == 2, printed
    closing = printed.rstrip().splitlines()[-1]
    assert closing.startswith("segpipe: 1 file(s) held by the removal guard")
    assert "`segpipe run --allow-large-removals`" in closing
    assert "rejected" not in printed.split("\nSegments")[1]  # after the uploads, no "rejected"
    assert deployment.upload("acme_subscriber_segment_20261102.csv")["status"] == "held"


def test_run_json_without_dry_run_is_a_usage_error_and_runs_nothing(
    deployment: Deployment, tmp_path: Path, capsys: pytest.CaptureFixture
):
    dropped = deployment.drop("constituents_a.csv", csv("email", "ann@example.org"))
    report = tmp_path / "effect.json"
    with pytest.raises(SystemExit) as stopped:
        cli.main(["run", "--json", str(report), "--data-dir", str(deployment.data.root)])
    said = capsys.readouterr().err
    assert stopped.value.code == 2
    assert said.startswith("usage: segpipe run")
    assert "error: --json only goes with --dry-run" in said
    assert dropped.exists() and not deployment.data.warehouse.exists()  # nothing ran
    assert not report.exists()


def _run(deployment: Deployment, capsys: pytest.CaptureFixture, *flags: str) -> tuple[int, str]:
    """`segpipe run FLAGS` as typed: (exit code, stdout and stderr)."""
    capsys.readouterr()
    code = cli.main(["run", *flags, "--data-dir", str(deployment.data.root)])
    printed = capsys.readouterr()
    return code, printed.out + printed.err


def test_the_removal_guard_is_lifted_per_run_by_the_flag_never_by_the_environment(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
):
    people = [f"p{n}@example.org,+1415555{n:04d},y" for n in range(30)]
    deployment.drop("constituents_fans.csv", csv("email,phone,sms_opt_in", *people))
    both = _attentive(range(30)) + _attentive(range(30), segment="Big Fans")
    deployment.drop("acme_subscriber_segment_20261101.csv", both)
    assert _run(deployment, capsys)[0] == 0

    # Set once in a shell profile: it lifts nothing, and the run says it is ignored.
    monkeypatch.setenv("SEGPIPE_ALLOW_LARGE_REMOVALS", "1")
    truncated = _attentive(range(5)) + _attentive(range(30), segment="Big Fans")
    deployment.drop("acme_subscriber_segment_20261102.csv", truncated)
    code, printed = _run(deployment, capsys)
    assert code == 2, printed
    assert deployment.upload("acme_subscriber_segment_20261102.csv")["status"] == "held"
    assert "SEGPIPE_ALLOW_LARGE_REMOVALS is set and ignored" in printed
    monkeypatch.delenv("SEGPIPE_ALLOW_LARGE_REMOVALS")

    # The flag: this run applies the held file, says so, and its Dagster runs carry the tag.
    code, printed = _run(deployment, capsys, "--allow-large-removals")
    assert code == 0, printed
    assert "removal guard lifted for this run" in printed
    assert deployment.upload("acme_subscriber_segment_20261102.csv")["status"] == "applied"
    assert len(deployment.members("Loyal Fans")) == 5
    with deployment.instance() as instance:
        upload_run = instance.get_runs(dg.RunsFilter(job_name="process_upload_job"), limit=1)[0]
    assert upload_run.tags.get("segpipe/allow_large_removals") == "true"

    # The next run, in the same process, is guarded again.
    deployment.drop(
        "acme_subscriber_segment_20261103.csv",
        _attentive(range(5)) + _attentive(range(5), segment="Big Fans"),
    )
    code, printed = _run(deployment, capsys)
    assert code == 2, printed
    assert deployment.upload("acme_subscriber_segment_20261103.csv")["status"] == "held"
    assert "removal guard lifted" not in printed
    assert len(deployment.members("Big Fans")) == 30


def test_segment_delete_takes_the_label_and_never_guesses_between_domains(
    applied_sample: Deployment,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
):
    deployment = copy_of(applied_sample, tmp_path / "deployment", monkeypatch)
    deployment.drop(
        "sirenoutlet_subscriber_segment_20261110.csv",
        "maria.alvarez@example.org,VIP Shoppers\r\n",
    )
    assert deployment.run()[0] == 0
    vip = _in_domain(deployment, "VIP Shoppers", "sirendenim")

    def delete(name: str) -> tuple[int, str]:
        capsys.readouterr()
        code = cli.main(["segment", "delete", name, "--data-dir", str(deployment.data.root)])
        printed = capsys.readouterr()
        return code, printed.out + printed.err

    code, said = delete("VIP Shoppers")
    assert code == 1
    assert "'VIP Shoppers (sirendenim)'" in said and "'VIP Shoppers (sirenoutlet)'" in said
    assert len(_in_domain(deployment, "VIP Shoppers", "sirenoutlet")) == 1  # nothing deleted

    code, said = delete("VIP Shoppers (sirenoutlet)")
    assert (code, said) == (
        0,
        "deleted subscriber segment 'VIP Shoppers (sirenoutlet)': 1 membership(s) removed, "
        "no people deleted\n",
    )
    assert not _in_domain(deployment, "VIP Shoppers", "sirenoutlet")
    assert _in_domain(deployment, "VIP Shoppers", "sirendenim") == vip


def test_status_into_a_pipe_closed_early_stops_without_a_traceback(applied_sample: Deployment):
    """`segpipe status | head -1`: the reader leaves after one line; segpipe stops quietly."""
    status = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "segpipe.cli",
            "status",
            "--data-dir",
            str(applied_sample.data.root),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},  # every line written at once: the pipe breaks
    )
    status.stdout.readline()
    status.stdout.close()
    _, err = status.communicate(timeout=120)
    assert b"Traceback" not in err and b"BrokenPipeError" not in err, err.decode()
    assert status.returncode == 1


def test_run_lists_its_files_in_the_order_they_applied(deployment: Deployment):
    """Files of one modification time apply in name order as received; the closing list follows
    that order, not the upload ids', which hold the masked names (`c***@example.org.csv` sorted
    first, and read as if it had applied first and lost)."""
    names = ["constituents_1.csv", "constituents_5.csv", "constituents_9_from_z@example.org.csv"]
    for n, name in enumerate(names):
        deployment.drop(name, csv("member_id,first_name", f"T-1,From{n}"), arrival=0)

    code, printed = deployment.run()

    assert code == 0, printed
    summary = printed.split("\nUploads", 1)[1].split("\nSegments", 1)[0]
    shown = ["constituents_1.csv", "constituents_5.csv", "c***@example.org.csv"]
    assert all(s in summary for s in shown), summary
    assert sorted(shown, key=summary.index) == shown, summary
    assert deployment.query("SELECT first_name FROM constituents")["first_name"].to_list() == [
        "From2"
    ]


def test_a_dry_run_on_a_new_deployment_creates_nothing(tmp_path: Path, capsys):
    """`segpipe run --dry-run` where nothing has run yet: the effect is shown and the folder
    holds only what the user put there (no archive/, exports/, rejected/ or staging/ made)."""
    root = tmp_path / "new"
    (root / "inbox").mkdir(parents=True)
    (root / "inbox" / "constituents_a.csv").write_text(csv("member_id,first_name", "N-1,Nia"))
    before = sorted(p.relative_to(root) for p in root.rglob("*"))

    code = cli.main(["run", "--dry-run", "--data-dir", str(root)])

    assert code == 0
    assert "dry run of 1 new file(s)" in capsys.readouterr().out
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before
    (root / "inbox" / "constituents_a.csv").unlink()
    assert cli.main(["run", "--dry-run", "--data-dir", str(root)]) == 0
    assert "Total: 0 file(s); people created 0" in capsys.readouterr().out  # no "()"


def test_history_tells_an_unknown_member_id_from_one_without_entries(
    deployment: Deployment, capsys
):
    deployment.drop("constituents_a.csv", csv("member_id,first_name", "M-4,Mo"))
    assert deployment.run()[0] == 0
    capsys.readouterr()

    history = ["history", "--data-dir", str(deployment.data.root), "--member-id"]
    assert cli.main([*history, "M-4"]) == 0
    assert "member_id 'M-4' has no segment or interest entries yet" in capsys.readouterr().err
    assert cli.main([*history, "NOPE"]) == 1
    assert "member_id 'NOPE' is no constituent's" in capsys.readouterr().err


def test_history_labels_a_subscriber_segment_with_its_domain_as_status_does(
    applied_sample: Deployment, capsys
):
    (member_id, label), *_ = applied_sample.query(
        "SELECT c.member_id, s.name || ' (' || s.domain || ')' FROM membership_history h "
        "JOIN constituents c USING (cons_id) JOIN segments s USING (segment_id) "
        "WHERE s.domain IS NOT NULL AND c.member_id IS NOT NULL ORDER BY ALL"
    ).rows()
    capsys.readouterr()
    root = str(applied_sample.data.root)

    assert cli.main(["history", "--data-dir", root, "--member-id", member_id]) == 0
    assert f" {label} " in capsys.readouterr().out
    assert cli.main(["status", "--data-dir", root]) == 0
    assert label in capsys.readouterr().out
