"""The README's run command: the sample deployment through `segpipe run`."""

from segpipe_tests.conftest import Deployment


def test_sample_runs_end_to_end_and_reports_its_bad_file(sample: Deployment):
    code, printed = sample.run()

    assert code == 2, printed
    assert "segmentation_2026-11-06_missing_opt_column.csv" in printed
    assert "missing required column: one of opt, opt_in" in printed
    statuses = dict(sample.query("SELECT file_name, status FROM uploads").iter_rows())
    bad = "segmentation_2026-11-06_missing_opt_column.csv"
    assert statuses.pop(bad) == "rejected"
    assert set(statuses.values()) == {"applied"}
