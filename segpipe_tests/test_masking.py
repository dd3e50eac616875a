"""No raw email or phone number in any message built from file content (SPEC section 3), through
`segpipe run`: identifiers are fed into every message path (a whole-file rejection quoting a
header, row reasons quoting values, previews, a CR-only file), then the Dagster event log of
every run, `uploads.error` and the printed summary are scanned for them."""

import re

import pytest
from dagster._serdes import serialize_value

from segpipe.ingest.masking import mask
from segpipe_tests.conftest import Deployment, csv

FILES = {
    "constituents_people.csv": csv(
        "member_id,email,phone,first_name,sms_opt_in",
        "1,ana@example.org,202-555-0101,Ana,yes",
        "2,ben@example.org,(202) 555-0102,Ben,yes",
    ),
    # Whole-file rejections whose message quotes the header.
    "segmentation_dup_header.csv": csv(
        "email,interest_name,opt,ines.alves@example.org,Ines.Alves@Example.org",
        "ana@example.org,Digest,in,,",
    ),
    "constituents_reserved.csv": csv("email,_202-555-0188", "ana@example.org,x"),
    # Row reasons quoting a value: an unknown member_id, a foreign interest, a segment name.
    "segmentation_reasons.csv": csv(
        "member_id,email,foreign_interest,interest_name,opt",
        "2025550166,,,Digest,in",
        ",ana@example.org,(202) 555-0177,,in",
        ",ben@example.org,,Digest,in",
    ),
    "manual_segment_names.csv": csv(
        "segment,email,action", "kim.lee@example.org,ana@example.org,remove"
    ),
    # Classic Mac line endings with emails in every row (its header once read as the rows).
    "segmentation_mac.csv": "\r".join(
        ["email,interest_name,opt", "ana@example.org,Mac,in", "ben@example.org,Mac,in", ""]
    ),
}
EMAIL = r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"
PHONE = r"\+?1?[\s.-]?\(?\d{3}\)?[\s.-]?\d{3}[\s.-]?\d{4}|_\d{3}-\d{3}-\d{4}"


def identifiers() -> set[str]:
    """Every email and phone the files carry, as written and as segpipe normalizes them."""
    found = set()
    for content in FILES.values():
        for value in re.findall(EMAIL, content):
            found |= {value, value.lower()}
        for value in re.findall(PHONE, content):
            digits = re.sub(r"\D", "", value)
            found |= {value.strip("_ "), digits[-10:], "+1" + digits[-10:]}
    return found


def event_log_text(deployment: Deployment) -> str:
    with deployment.instance() as instance:
        runs = instance.get_runs()
        entries = [entry for run in runs for entry in instance.all_logs(run.run_id)]
    assert runs and entries
    return "\n".join(serialize_value(entry) for entry in entries)


def test_no_raw_identifier_reaches_the_event_log_errors_or_output(deployment: Deployment):
    for name, content in FILES.items():
        deployment.drop(name, content)

    code, printed = deployment.run()

    assert code == 2
    log = event_log_text(deployment)
    errors = "\n".join(deployment.query("SELECT error FROM uploads")["error"].drop_nulls())
    scanned = {"event log": log, "uploads.error": errors, "segpipe run output": printed}
    raw = identifiers()
    assert len(raw) >= 15  # the files do carry identifiers: a scan that finds none proves nothing
    leaks = {(place, value) for place, text in scanned.items() for value in raw if value in text}
    assert leaks == set()
    # Each path did carry its identifier, masked: the scan looked where they went.
    assert "header names column 'i***@example.org' twice" in errors
    assert "column names may not start with '_' ('_***-***-0188')" in errors
    for shown in (
        "i***@example.org",
        "_***-***-0188",
        "constituent not found: no member_id ***-***-0166",
        "no cross-reference for foreign_interest ***-***-0177",
        "no segment named k***@example.org to remove from",
        "a***@example.org",
    ):
        assert shown in log, shown
    mac = deployment.upload("segmentation_mac.csv")
    assert (mac["status"], mac["rows_applied"], mac["error"]) == ("applied", 2, None)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("header names column 'jane.doe@example.org' twice", "column 'j***@example.org' twice"),
        ("no member_id 2025550166", "no member_id ***-***-0166"),
        ("phones (202) 555-0123, +44 20 7946 0958", "phones ***-***-0123, ***-***-0958"),
        ("segment Jane+VIP@Example.org is data-driven", "segment J***@Example.org is"),
        # What is not an identifier stays readable: ids, line numbers, dates.
        ("unknown interest_id 42 on line 1234567", "unknown interest_id 42 on line 1234567"),
        ("invalid timestamp 2026-11-04 10:15:00", "invalid timestamp 2026-11-04 10:15:00"),
    ],
)
def test_the_masking_rule(text, shown):
    assert shown in mask(text)
