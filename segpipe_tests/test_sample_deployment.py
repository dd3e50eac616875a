"""The README's run command: the sample deployment through `segpipe run`."""

from segpipe_tests.conftest import Deployment

REJECTED = {
    "segmentation_2026-11-06_missing_opt_column.csv": "missing required column: one of opt, opt_in",
    "sirendenim_subscriber_segment_20261101.csv": "stale delivery: 2026-11-01 is older than",
    "sirenoutlet_subscriber_segment_20261105.csv": "file mixes phone numbers and emails",
}


def test_sample_runs_end_to_end_and_reports_its_bad_files(sample: Deployment):
    code, printed = sample.run()

    assert code == 2, printed
    for file_name, problem in REJECTED.items():
        assert file_name in printed
        assert problem in printed
    statuses = dict(sample.query("SELECT file_name, status FROM uploads").iter_rows())
    assert list(statuses.values()).count("applied") == len(statuses) - len(REJECTED) == 12
    assert {name for name, status in statuses.items() if status == "rejected"} == set(REJECTED)
    sizes = dict(
        sample.query(
            "SELECT s.name, count(m.member_id) FROM segments s "
            "LEFT JOIN segment_members m USING (segment_id) "
            "WHERE s.kind IN ('manual', 'subscriber') GROUP BY s.name"
        ).iter_rows()
    )
    # VIP Shoppers is the 2026-11-04 delivery's two files together, not the 11-03 one.
    assert sizes == {
        "Board Prospects": 3,
        "Gala Volunteers": 2,
        "VIP Shoppers": 3,
        "Cart Abandoners": 2,
        "Winter Sale": 1,
        "Outlet Newsletter": 2,
    }
