"""No raw email or phone number in any message built from file content (SPEC section 3), through
`segpipe run`: identifiers are fed into every message path (a whole-file rejection quoting a
header, row reasons quoting values, previews, a CR-only file, file names a sender chose), then
the Dagster event log, run tags and partition keys of every run, `uploads.error`, the errors
files' reasons, the upload ids and what `segpipe run`, its dry run and `segpipe status` print
are scanned for them."""

import re

import polars as pl
import pytest
from dagster._serdes import serialize_value

from segpipe import cli
from segpipe.defs.uploads.partitions import uploads_partitions
from segpipe.ingest.masking import display_name, mask
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
    # Customer.io ids are often addresses (or numbers): a member id nobody has is quoted back.
    "manual_segment_cio_ids.csv": csv(
        "segment,id", "Gala,rae.cho@example.org", "Gala,212-555-0187"
    ),
    # A segment a file names after a person: created, so its name reaches the segments
    # asset's size metadata and what `segpipe run` and `segpipe status` print.
    "manual_segment_named_after.csv": csv(
        "segment,email", "Friends of lou.park@example.org,ana@example.org"
    ),
    # Classic Mac line endings with emails in every row (its header once read as the rows).
    "segmentation_mac.csv": "\r".join(
        ["email,interest_name,opt", "ana@example.org,Mac,in", "ben@example.org,Mac,in", ""]
    ),
    # Names a sender chose, carrying a person's address or number: the kind is read from the
    # name as received (these two apply), every place that shows the name masks it.
    "manual_segment_vip_list_from_jane.doe@example.org.csv": csv(
        "segment,email", "VIP,ana@example.org", "VIP,ben@example.org"
    ),
    "constituents_callback_2025550123.csv": csv("email,first_name", "cy@example.org,Cy"),
}
# The callback file's bytes again under a plain name: a duplicate, its error names the first.
DUPLICATE = "constituents_again.csv"
# Refused whole (no interest column): its name goes into the check naming refused files; it
# arrives last, so the run's partition range tags end with its upload id.
LAST = ("segmentation_for_jane.doe@example.org.csv", csv("email,opt", "ana@example.org,in"))
# What the names above carry, as the upload ids had it too (`@` slugged away).
IN_NAMES = {"jane.doe", "2025550123", "5550123"}
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


def dagster_ui_text(deployment: Deployment) -> dict[str, str]:
    """What the Dagster UI shows of the runs besides their event log: the upload partition
    keys, the runs' tags, and the uploads' materialization metadata (each value)."""
    with deployment.instance() as instance:
        keys = instance.get_dynamic_partitions(uploads_partitions.name)
        tags = [f"{k}={v}" for run in instance.get_runs() for k, v in run.tags.items()]
        metadata = [
            serialize_value(value)
            for run in instance.get_runs()
            for entry in instance.all_logs(run.run_id)
            if (materialized := entry.asset_materialization)
            and materialized.asset_key.to_user_string() in ("raw_upload", "applied_upload")
            for value in materialized.metadata.values()
        ]
    assert keys and tags and metadata
    return {
        "partition keys": "\n".join(keys),
        "run tags": "\n".join(tags),
        "upload metadata": "\n".join(metadata),
    }


def raw_upload_metadata(deployment: Deployment, upload_id: str) -> dict:
    """The `raw_upload` metadata of partition `upload_id`, values as plain values."""
    with deployment.instance() as instance:
        (found,) = [
            materialized.metadata
            for run in instance.get_runs()
            for entry in instance.all_logs(run.run_id)
            if (materialized := entry.asset_materialization)
            and materialized.asset_key.to_user_string() == "raw_upload"
            and materialized.partition == upload_id
        ]
    return {key: value.value for key, value in found.items()}


def test_no_raw_identifier_reaches_the_event_log_errors_or_output(
    deployment: Deployment, capsys: pytest.CaptureFixture
):
    for name, content in FILES.items():
        deployment.drop(name, content)
    deployment.drop(DUPLICATE, FILES["constituents_callback_2025550123.csv"])
    deployment.drop(*LAST)
    # Not a regular file: refused, and said so by its display name.
    (deployment.data.inbox / "constituents_link_2025550123.csv").symlink_to("/etc/hostname")

    # The dry run first (it changes nothing): it prints each file's refused rows by reason.
    root = str(deployment.data.root)
    capsys.readouterr()
    assert cli.main(["run", "--dry-run", "--data-dir", root]) == 2
    dry_run = capsys.readouterr().out
    code, printed = deployment.run()
    capsys.readouterr()
    assert cli.main(["status", "--data-dir", root]) == 0
    status = capsys.readouterr().out

    assert code == 2
    # The dry run took what the run took: the link refused, not read as the file it names.
    assert "segpipe: 12 new file(s)" in printed
    assert "segpipe: dry run of 12 new file(s)" in dry_run
    log = event_log_text(deployment)
    uploads = deployment.query("SELECT upload_id, error FROM uploads")
    errors = "\n".join(uploads["error"].drop_nulls())
    # The errors files' reasons (their other columns are the rows as received, by design).
    reasons = "\n".join(
        "\n".join(pl.read_csv(path, infer_schema=False)["reason"].drop_nulls())
        for path in deployment.data.rejected.glob("*.errors.csv")
    )
    scanned = {
        "event log": log,
        "uploads.error": errors,
        "errors files' reasons": reasons,
        "segpipe run --dry-run output": dry_run,
        "uploads.upload_id": "\n".join(uploads["upload_id"]),
        "segpipe run output": printed,
        "segpipe status output": status,
        **dagster_ui_text(deployment),
    }
    raw = identifiers()
    assert len(raw) >= 15  # the files do carry identifiers: a scan that finds none proves nothing
    raw |= IN_NAMES
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
        "constituent not found: no member_id r***@example.org",
        "constituent not found: no member_id ***-***-0187",
    ):
        assert shown in log, shown
    for shown in (
        "constituent not found: no member_id ***-***-0166",
        "no cross-reference for foreign_interest ***-***-0177",
        "constituent not found: no member_id r***@example.org",
        "constituent not found: no member_id ***-***-0187",
    ):
        assert shown in reasons and shown in dry_run, shown
    # Beside its masked reason, the errors file keeps the refused row as received.
    cio = deployment.errors("manual_segment_cio_ids.csv")
    assert cio.select("line", "reason", "received").rows() == [
        ("2", "constituent not found: no member_id r***@example.org", "Gala,rae.cho@example.org"),
        ("3", "constituent not found: no member_id ***-***-0187", "Gala,212-555-0187"),
    ]
    # The segment named after a person is shown by its masked name and its segment id.
    (named,) = deployment.query("SELECT segment_id FROM segments WHERE name LIKE 'Friends of %'")[
        "segment_id"
    ]
    label = f"Friends of l***@example.org #{named}"
    assert label in log and label in printed and label in status
    mac = deployment.upload("segmentation_mac.csv")
    assert (mac["status"], mac["rows_applied"], mac["error"]) == ("applied", 2, None)

    # The files named with a person's address or number: their kind read from the name as
    # received, applied as any other; shown everywhere by the masked name.
    vip = deployment.upload("manual_segment_vip_list_from_jane.doe@example.org.csv")
    assert (vip["status"], vip["kind"], vip["rows_applied"]) == ("applied", "manual_segment", 2)
    both = "SELECT cons_id FROM constituents WHERE email IN ('ana@example.org', 'ben@example.org')"
    assert deployment.members("VIP") == set(deployment.query(both)["cons_id"])
    callback = deployment.upload("constituents_callback_2025550123.csv")
    assert (callback["status"], callback["kind"], callback["rows_applied"]) == (
        "applied",
        "constituent",
        1,
    )
    again = deployment.upload(DUPLICATE)
    assert (again["status"], again["error"]) == (
        "duplicate",
        f"same bytes as upload {callback['upload_id']}",
    )
    assert "-constituents_callback__-_-0123.csv-" in callback["upload_id"]
    assert "refused inbox/constituents_link_***-***-0123.csv: a symbolic link" in printed
    for output in (printed, status):
        assert "m***@example.org.csv" in output
        assert "constituents_callback_***-***-0123.csv" in output
    assert "s***@example.org.csv: missing required column" in log  # the files_applied check
    facts = raw_upload_metadata(deployment, callback["upload_id"])
    assert facts["file"] == "constituents_callback_***-***-0123.csv"
    assert facts["archive"] == f"archive/{callback['upload_id']}/"
    # The archive is the raw record: the file keeps its name as received.
    archived = deployment.data.archive / callback["upload_id"]
    assert [p.name for p in archived.iterdir()] == ["constituents_callback_2025550123.csv"]


@pytest.mark.parametrize(
    "name",
    [
        "constituents_2026-11-01.csv",
        "segmentation_20261130.csv",
        "attentive_subscribers_example.com_2026-11-30_part1.csv",
        "acme_subscriber_segment_20261130_2.csv",
        "manual_segment_VIP list (Nov 2026).csv.gz",
    ],
)
def test_an_ordinary_file_name_is_shown_as_received(name):
    """Masking a name takes only what is an address or a number: dates and parts stay."""
    assert display_name(name) == name


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


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        # A date and a phone side by side: the number starts where its run of digits starts, and
        # the digits after it go with it (matched inside the run, "261130_4155" was masked and
        # "4155550155" stayed whole in the text around it).
        ("constituents_20261130_4155550155.csv", "constituents_20261130_***-***-0155.csv"),
        ("segmentation_2026113041555501.csv", "segmentation_***-***-3041.csv"),
        ("sent 202611304155550155 twice", "sent ***-***-3041 twice"),
        ("2025550123,2025550124", "***-***-0123,***-***-0124"),
    ],
)
def test_no_phone_survives_beside_other_digits(text, shown):
    masked = mask(text)
    assert masked == shown
    for digits in ("4155550155", "5550155", "2025550123", "2025550124"):
        assert digits not in masked


def test_undo_history_and_dry_run_show_a_named_file_masked(
    deployment: Deployment, capsys: pytest.CaptureFixture, tmp_path
):
    """What names an upload after it was received, as a user runs it: the dry run (printed and
    its JSON), `segpipe history`, `segpipe undo` (its summary and refusals) and the Dagster undo
    job (its log and metadata)."""
    from segpipe.definitions import defs

    root = str(deployment.data.root)
    callback = "constituents_callback_2025550123.csv"
    deployment.drop(callback, csv("member_id,email", "7,cy@example.org"))

    def cli_says(*args: str) -> tuple[int, str]:
        capsys.readouterr()
        code = cli.main([*args, "--data-dir", root])
        said = capsys.readouterr()
        return code, said.out + said.err

    effect = tmp_path / "effect.json"
    said = {"dry run": cli_says("run", "--dry-run", "--json", str(effect))[1]}
    said["dry run JSON"] = effect.read_text()
    assert deployment.run()[0] == 0
    # A later file changed the same person: undo refuses, naming it.
    later = "manual_segment_for_jane.doe@example.org.csv"
    deployment.drop(later, csv("segment,email", "VIP,cy@example.org"))
    assert deployment.run()[0] == 0
    said["history"] = cli_says("history", "--member-id", "7")[1]
    first, second = (deployment.upload(name)["upload_id"] for name in (callback, later))
    code, said["undo refused"] = cli_says("undo", first)
    assert code == 1
    job = defs().resolve_job_def("undo_upload_job")
    config = {"ops": {"undo_upload_op": {"config": {"upload_id": second}}}}
    with deployment.instance() as instance:
        assert job.execute_in_process(run_config=config, instance=instance).success
    said["undo job"] = event_log_text(deployment)
    code, said["undo"] = cli_says("undo", first)
    assert code == 0
    code, said["undo again"] = cli_says("undo", first)
    assert code == 1

    leaks = {(place, value) for place, text in said.items() for value in IN_NAMES if value in text}
    assert leaks == set()
    shown, shown_later = "constituents_callback_***-***-0123.csv", "m***@example.org.csv"
    assert f"  {shown} " in said["dry run"]
    assert f'"file": "{shown}"' in said["dry run JSON"]
    assert f"upload {second} ({shown_later})" in said["history"]
    assert f"{second} ({shown_later}); undo them first" in said["undo refused"]
    assert f"undid {second} ({shown_later}): " in said["undo job"]
    assert f'"{shown_later}"' in said["undo job"]  # the undo op's `file` metadata
    assert said["undo"].startswith(f"undid {first} ({shown}): ")
    assert f"upload {first} ({shown}) is undone" in said["undo again"]
