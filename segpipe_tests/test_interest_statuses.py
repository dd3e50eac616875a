"""Segmentation uploads change people's interest statuses, and only what changes is written."""

from segpipe_tests.conftest import Deployment, csv

PEOPLE = csv(
    "member_id,email,first_name,email_opt_in",
    "1,ana@example.org,Ana,yes",
    "2,ben@example.org,Ben,yes",
    "3,cy@example.org,Cy,yes",
)


def memberships(deployment: Deployment) -> dict[int, tuple]:
    """member_id -> (status, since, upload file that set it) for the interest Weekly Digest."""
    rows = deployment.query(
        """SELECT m.cons_id, m.status, m.since, u.file_name
           FROM interest_memberships m JOIN interests i USING (interest_id)
           JOIN uploads u ON u.upload_id = m.upload_id WHERE i.name = 'Weekly Digest'"""
    )
    return {member: (status, since, file) for member, status, since, file in rows.rows()}


def history(deployment: Deployment) -> list[tuple]:
    return deployment.query(
        """SELECT h.cons_id, h.change, u.file_name FROM membership_history h
           JOIN uploads u USING (upload_id) WHERE h.interest_id IS NOT NULL ORDER BY ALL"""
    ).rows()


def test_a_repeated_status_keeps_its_start_and_a_changed_one_moves_it(deployment: Deployment):
    deployment.drop("constituents_a.csv", PEOPLE)
    deployment.drop(
        "segmentation_first.csv",
        csv("member_id,interest_name,opt", "1,Weekly Digest,in", "2,Weekly Digest,in"),
    )
    assert deployment.run()[0] == 0
    before = memberships(deployment)

    deployment.drop(
        "segmentation_second.csv",
        csv(
            "member_id,interest_name,opt",
            "1,Weekly Digest,yes",  # the same status, written another way
            "2,Weekly Digest,out",
            "3,Weekly Digest,in",
        ),
    )
    assert deployment.run()[0] == 0
    after = memberships(deployment)

    assert after[1] == before[1]  # untouched: same start, still set by the first file
    assert after[2][0] == "opted_out" and after[2][2] == "segmentation_second.csv"
    assert after[2][1] > before[2][1]
    assert after[3][:1] == ("opted_in",) and after[3][2] == "segmentation_second.csv"
    assert history(deployment) == [
        (1, "opted_in", "segmentation_first.csv"),
        (2, "opted_in", "segmentation_first.csv"),
        (2, "opted_out", "segmentation_second.csv"),
        (3, "opted_in", "segmentation_second.csv"),
    ]
    # Every row of the second file still counts as applied: it was read, matched and holds.
    assert deployment.upload("segmentation_second.csv")["rows_applied"] == 3
    assert deployment.members("Weekly Digest Opt-In") == {1, 3}
    assert deployment.members("Weekly Digest Opt-Out") == {2}
