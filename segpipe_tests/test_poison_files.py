"""Issue 20, items 2 and 9: a poison file is that file's rejection, with a reason, and never
blocks the inbox; the same rows re-sent compressed, from Windows or from Excel are duplicates.
Every poison file is generated here, none is committed."""

from __future__ import annotations

import gzip

import pytest

from segpipe_tests.conftest import Deployment, csv

PEOPLE = csv(
    "member_id,email,first_name,email_opt_in",
    "1,ana@example.org,Ana,yes",
    "2,ben@example.org,Ben,yes",
)
OPT_INS = csv(
    "email,interest_name,opt",
    "ana@example.org,Weekly Digest,in",
    "ben@example.org,Weekly Digest,out",
)
EVENTS = csv(
    "member_id,event,timestamp,url",
    "1,page_view,2026-11-01T10:00:00Z,/donate",
    "2,page_view,2026-11-01T11:00:00Z,/about",
)


def _bomb(decoded_bytes: int) -> bytes:
    """A gzip file of short CSV lines expanding to `decoded_bytes` from a few MB: one member
    compressed once, repeated (a multi-member gzip is still one valid gzip file)."""
    block = b"email,interest_name,opt\n" + b"ana@example.org,Weekly Digest,in\n" * 2_000_000
    member = gzip.compress(block, compresslevel=9)
    return member * (decoded_bytes // len(block) + 1)


def _corrupted(payload: bytes) -> bytes:
    middle = len(payload) // 2
    return (
        payload[:middle]
        + bytes(b ^ 0xFF for b in payload[middle : middle + 64])
        + payload[middle + 64 :]
    )


def _poison() -> dict[str, bytes]:
    big = OPT_INS.encode() * 2_000  # repeats compress to a few KB
    return {
        "segmentation_truncated.csv.gz": gzip.compress(big)[:-200],
        "segmentation_corrupted.csv.gz": _corrupted(gzip.compress(big, compresslevel=1)),
        "segmentation_bomb.csv.gz": _bomb(300 * 1024**2),
        "segmentation_long_line.csv": (
            b"email,interest_name,opt\n" + b"x" * (3 * 1024**2) + b",Weekly Digest,in\n"
        ),
        "segmentation_huge_cell.csv": (
            b"email,interest_name,opt\nana@example.org,Weekly Digest,in\n"
            b"ben@example.org," + b"y" * (300 * 1024) + b",in\n"
        ),
    }


EXPECTED = {
    "segmentation_truncated.csv.gz": "gzip file is truncated",
    "segmentation_corrupted.csv.gz": "not a valid gzip file",
    "segmentation_bomb.csv.gz": "larger than 64 MiB once decoded",
    "segmentation_long_line.csv": "line 2 is longer than 1 MiB",
    "segmentation_huge_cell.csv": "line 3 has a value longer than 256 KiB",
}


def test_poison_files_are_rejected_and_the_other_files_apply(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
):
    # The decoded-size limit lowered for the test: the bomb stops at 64 MiB instead of 2 GiB.
    monkeypatch.setenv("SEGPIPE_MAX_FILE_BYTES", str(64 * 1024**2))
    deployment.drop("constituents_a.csv", PEOPLE)
    for name, payload in _poison().items():
        deployment.drop(name, payload)
    deployment.drop("segmentation_good.csv", OPT_INS)

    code, printed = deployment.run()

    assert code == 2, printed
    for name, reason in EXPECTED.items():
        upload = deployment.upload(name)
        assert upload["status"] == "rejected", (name, upload)
        assert reason in upload["error"], (name, upload["error"])
    assert deployment.upload("segmentation_good.csv")["status"] == "applied"
    statuses = deployment.query("SELECT status FROM interest_memberships ORDER BY status")
    assert statuses["status"].to_list() == ["opted_in", "opted_out"]  # ana in, ben out

    deployment.drop("segmentation_later.csv", OPT_INS.replace(",in\n", ",out\n", 1))
    code, printed = deployment.run()  # the poison files never block a later run
    assert code == 0, printed
    assert deployment.upload("segmentation_later.csv")["status"] == "applied"


def test_the_same_rows_resent_compressed_or_from_windows_or_excel_are_duplicates(
    deployment: Deployment,
):
    deployment.drop("constituents_a.csv", PEOPLE)
    deployment.drop("events_a.csv", EVENTS)
    deployment.run()
    resent = {
        "events_a.csv.gz": gzip.compress(EVENTS.encode()),
        "events_crlf.csv": EVENTS.replace("\n", "\r\n").encode(),
        "events_excel.csv": b"\xef\xbb\xbf" + EVENTS.replace("\n", "\r\n").encode(),
        "events_no_final_newline.csv": EVENTS.rstrip("\n").encode(),
    }
    for name, payload in resent.items():
        deployment.drop(name, payload)

    code, printed = deployment.run()

    assert code == 0, printed
    original = deployment.upload("events_a.csv")["upload_id"]
    for name in resent:
        upload = deployment.upload(name)
        assert (upload["status"], upload["duplicate_of"]) == ("duplicate", original), name
    assert deployment.query("SELECT count(*) AS n FROM events")["n"].item() == 2


def test_a_changed_row_is_not_a_duplicate(deployment: Deployment):
    deployment.drop("constituents_a.csv", PEOPLE)
    deployment.drop("events_a.csv", EVENTS)
    deployment.run()
    deployment.drop("events_b.csv.gz", gzip.compress(EVENTS.replace("/about", "/faq").encode()))

    code, printed = deployment.run()

    assert code == 0, printed
    assert deployment.upload("events_b.csv.gz")["status"] == "applied"
    assert deployment.query("SELECT count(*) AS n FROM events")["n"].item() == 4
