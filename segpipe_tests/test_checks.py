"""Asset checks on `segments` and on `applied_upload`: they pass on good data and fail on data
corrupted in the warehouse, run by `segpipe run` in the same job as the asset they guard (the
upload checks by the upload step, after each batch)."""

import dagster as dg
import pytest

from segpipe_tests.conftest import Deployment, copy_of, csv

NEWSLETTER_OPT_IN = "Monthly Newsletter Opt-In"
SEGMENTS_CHECKS = ("references_resolve", "segment_sizes_are_steady")
UPLOAD_CHECKS = ("upload_counts_add_up", "subscriber_files_are_never_mixed")


def latest_check(deployment: Deployment, name: str) -> dg.AssetCheckEvaluation:
    asset = "applied_upload" if name in (*UPLOAD_CHECKS, "files_applied") else "segments"
    key = dg.AssetCheckKey(dg.AssetKey(asset), name)
    with deployment.instance() as instance:
        records = instance.event_log_storage.get_asset_check_execution_history(key, limit=1)
    assert records, f"check {name} never ran"
    return records[0].event.dagster_event.event_specific_data


def metadata(evaluation: dg.AssetCheckEvaluation, key: str):
    return evaluation.metadata[key].value


@pytest.fixture
def applied(applied_sample: Deployment, tmp_path, monkeypatch) -> Deployment:
    """The applied sample, a copy of its own: these tests corrupt it, then run again."""
    return copy_of(applied_sample, tmp_path / "deployment", monkeypatch)


def corrupt(deployment: Deployment, *statements: str) -> None:
    from segpipe.warehouse.connection import connect

    with connect(deployment.data.warehouse) as con:
        for statement in statements:
            con.execute(statement)


def another_upload(deployment: Deployment) -> None:
    """A new file, so that the next run runs the upload step and its checks."""
    deployment.drop("manual_segment_2026-11-09.csv", csv("segment,member_id", "Checked,M-1003"))


def test_every_check_passes_on_the_sample(applied_sample: Deployment):
    for name in (*SEGMENTS_CHECKS, *UPLOAD_CHECKS):
        assert latest_check(applied_sample, name).passed, name
    assert metadata(latest_check(applied_sample, "references_resolve"), "rows_broken") == 0


def test_a_rejected_file_fails_its_check_not_the_run(applied: Deployment):
    with applied.instance() as instance:
        (run,) = instance.get_runs(dg.RunsFilter(job_name="process_upload_job"))
    assert run.is_success  # the rejection is an outcome of the run, not a failed step
    rejected = latest_check(applied, "files_applied")
    assert not rejected.passed
    assert rejected.severity == dg.AssetCheckSeverity.ERROR
    # The sample's three deliberately bad files, each named with its problem.
    assert metadata(rejected, "files_rejected") == 3
    assert "segmentation_2026-11-06_missing_opt_column.csv: missing required column: one of " in (
        "\n".join(metadata(rejected, "rejected"))
    )

    another_upload(applied)
    code, printed = applied.run()

    assert code == 0, printed
    assert latest_check(applied, "files_applied").passed


def test_counts_check_fails_when_an_upload_loses_a_row(applied: Deployment):
    corrupt(
        applied,
        "UPDATE uploads SET rows_applied = rows_applied - 1 "
        "WHERE file_name = 'segmentation_2026-11-03_newsletter.csv'",
    )
    another_upload(applied)

    code, printed = applied.run()

    counts = latest_check(applied, "upload_counts_add_up")
    assert not counts.passed
    assert counts.severity == dg.AssetCheckSeverity.ERROR
    assert metadata(counts, "uploads_unbalanced") == 1
    assert "segmentation_2026-11-03_newsletter.csv" in metadata(counts, "first_unbalanced")
    assert code == 0, printed  # a failed check is reported in the UI; it does not fail the run
    assert latest_check(applied, "segment_sizes_are_steady").passed  # nothing moved


def test_references_check_fails_on_unknown_people_interests_and_duplicate_emails(
    applied: Deployment,
):
    segment_id = applied.query(
        "SELECT segment_id FROM segments WHERE kind = 'interest_group' LIMIT 1"
    ).item()
    corrupt(
        applied,
        f"INSERT INTO segment_memberships VALUES ({segment_id}, 987654, NULL, NULL)",
        "INSERT INTO interest_memberships SELECT cons_id, 424242, 'opted_in', NULL, NULL, NULL "
        "FROM constituents LIMIT 1",
        "INSERT INTO constituents SELECT * REPLACE (cons_id + 100000 AS cons_id) "
        "FROM constituents WHERE email IS NOT NULL LIMIT 1",
    )

    applied.run()

    references = latest_check(applied, "references_resolve")
    assert not references.passed
    assert metadata(references, "rows_broken") == 4
    problems = metadata(references, "problems")
    for problem in (
        "segment member names an unknown person",
        "interest membership names an unknown interest",
        "email shared by several constituents",
        "member_id shared by several constituents",  # the copied person kept its member id
    ):
        assert problem in problems


def test_size_alert_warns_when_a_segment_loses_most_of_its_members(applied: Deployment):
    before = applied.query(
        "SELECT count(*) FROM segment_members JOIN segments USING (segment_id) WHERE name = ?",
        [NEWSLETTER_OPT_IN],
    ).item()
    corrupt(
        applied,
        "DELETE FROM interest_memberships WHERE cons_id IN ("
        "  SELECT cons_id FROM interest_memberships JOIN interests USING (interest_id)"
        "  WHERE name = 'Monthly Newsletter' AND status = 'opted_in' ORDER BY cons_id LIMIT 4)"
        " AND interest_id = (SELECT interest_id FROM interests WHERE name = 'Monthly Newsletter')",
    )

    applied.run()

    alert = latest_check(applied, "segment_sizes_are_steady")
    assert not alert.passed
    assert alert.severity == dg.AssetCheckSeverity.WARN
    assert metadata(alert, "segments_moved") >= 1
    assert NEWSLETTER_OPT_IN in metadata(alert, "moves")
    assert f"| {before} |" in metadata(alert, "moves")


def test_mixed_subscriber_check_passes_then_catches_a_tampered_archive(applied: Deployment):
    assert latest_check(applied, "subscriber_files_are_never_mixed").passed
    assert metadata(latest_check(applied, "subscriber_files_are_never_mixed"), "mixed_files") == 0
    # An applied phone file whose archived bytes now hold an email too: the invariant is broken.
    phones = applied.upload("sirenDenim_subscriber_segment_20261104_1.csv")
    archived = applied.data.archive / phones["upload_id"] / phones["file_name"]
    archived.write_text(archived.read_text() + "someone@example.org,VIP Shoppers\n")
    another_upload(applied)

    applied.run()

    check = latest_check(applied, "subscriber_files_are_never_mixed")
    assert not check.passed
    assert metadata(check, "first_mixed") == "sirenDenim_subscriber_segment_20261104_1.csv"
