"""Files as spreadsheets and exporters write them (issue #13), each through `segpipe run`.

One deployment receives every file of the table at once (one run: the machine is shared), then
each test checks what a user expects of one file: the hint honoured, the delimiter found, a bad
row costing only itself with its physical line, the encoding named."""

from pathlib import Path

import pytest

from segpipe_tests.conftest import Deployment, csv, deployment_at

PEOPLE = csv(
    "member_id,email,first_name",
    "1,ana@example.org,Ana",
    "2,ben@example.org,Ben",
)


def crlf(*rows: str) -> str:
    """Lines as Excel on Windows writes them."""
    return "\r\n".join(rows) + "\r\n"


FILES: dict[str, bytes] = {
    # Excel's delimiter hint; a semicolon file (European locale) with a comma inside a value.
    "segmentation_sep_line.csv": crlf(
        "sep=;", "email;interest_name;opt", "ana@example.org;Hints, Tips;in"
    ).encode(),
    # A hint that does not match the file (a pipe file saved with Excel's comma hint).
    "segmentation_wrong_sep_line.csv": crlf(
        "sep=,", "email|interest_name|opt", "ana@example.org|Wrong hint|in"
    ).encode(),
    "segmentation_semicolon.csv": csv(
        "email;interest_name;opt", "ana@example.org;Semicolon;in", "ben@example.org;Semicolon;out"
    ).encode(),
    "segmentation_tab.csv": csv(
        "email\tinterest_name\topt", "ana@example.org\tTabbed\tin"
    ).encode(),
    "segmentation_pipe.csv": csv("email|interest_name|opt", "ben@example.org|Piped|in").encode(),
    # Classic Mac line endings.
    "segmentation_cr.csv": "\r".join(
        ["email,interest_name,opt", "ana@example.org,Mac,in", "ben@example.org,Mac,in", ""]
    ).encode(),
    # Excel's empty trailing columns.
    "segmentation_trailing.csv": crlf(
        "email,interest_name,opt,,",
        "ana@example.org,Trailing,in,,",
        "ben@example.org,Trailing,out,,",
    ).encode(),
    # A quoted multi-line city, later a row with one field too many (an unquoted comma).
    "constituents_multiline.csv": csv(
        "email,last_name,city",
        'cy@example.org,Young,"Apt 4\nNew York"',
        "x@example.org,Smith, Jr.,Boston",
        "dee@example.org,Lee,Paris",
    ).encode(),
    "constituents_stray_quote.csv": csv(
        "first_name,last_name,email",
        "Al,Smith,al@example.org",
        'Bob,O"Neil,bob@example.org',
        "Cy,Young,cy@example.org",
    ).encode(),
    "constituents_nul.csv": b"email,first_name\nnul@example.org,A\x00B\neve@example.org,Eve\n",
    # Excel's "Unicode Text": UTF-16 little-endian with a BOM, tab-delimited, CRLF.
    "constituents_unicode_text.csv": crlf(
        "email\tfirst_name", "zoe@example.org\tZoë", "fay@example.org\tFayçal"
    ).encode("utf-16"),
    "constituents_windows.csv": crlf(
        "email,first_name", "jose@example.org,José", "renee@example.org,Renée"
    ).encode("cp1252"),
}


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> tuple[Deployment, str]:
    with deployment_at(Path(tmp_path_factory.mktemp("dialects"))) as deployment:
        deployment.drop("constituents_people.csv", PEOPLE)
        for name, content in FILES.items():
            deployment.drop(name, content)
        code, out = deployment.run()
        assert code == 2, out  # the Windows-1252 file is refused
        yield deployment, out


def opted(deployment: Deployment, interest: str) -> list[tuple[str, str]]:
    return deployment.query(
        "SELECT c.email, m.status FROM interest_memberships m JOIN interests i "
        "USING (interest_id) JOIN constituents c USING (cons_id) WHERE i.name = ? ORDER BY 1",
        [interest],
    ).rows()


def counts(deployment: Deployment, name: str) -> tuple:
    row = deployment.upload(name)
    return row["status"], row["rows_in"], row["rows_applied"], row["rows_rejected"]


def raw_metadata(deployment: Deployment, name: str) -> dict:
    """The latest raw_upload materialization's metadata of the upload named `name`."""
    import dagster as dg

    upload_id = deployment.upload(name)["upload_id"]
    with deployment.instance() as instance:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=dg.AssetKey("raw_upload"), asset_partitions=[upload_id]
            ),
            limit=1,
        ).records
    assert records
    metadata = records[0].asset_materialization.metadata
    return {key: value.value for key, value in metadata.items()}


def test_excels_sep_line_is_honoured(ran):
    deployment, _ = ran
    assert counts(deployment, "segmentation_sep_line.csv") == ("applied", 1, 1, 0)
    assert opted(deployment, "Hints, Tips") == [("ana@example.org", "opted_in")]
    metadata = raw_metadata(deployment, "segmentation_sep_line.csv")
    assert (metadata["delimiter"], metadata["excel_sep_line"]) == ("semicolon", "yes")
    assert metadata["line_ending"] == "CRLF"


def test_a_sep_line_the_header_contradicts_is_named_as_the_problem(ran):
    deployment, _ = ran
    upload = deployment.upload("segmentation_wrong_sep_line.csv")
    assert (upload["status"], upload["rows_applied"]) == ("rejected", 0)
    assert upload["error"] == (
        "line 1 (Excel's sep= line) says the delimiter is comma, but the header on line 2 is "
        "separated by pipe: remove the sep= line or correct it"
    )


@pytest.mark.parametrize(
    ("name", "interest", "delimiter", "expected"),
    [
        (
            "segmentation_semicolon.csv",
            "Semicolon",
            "semicolon",
            [("ana@example.org", "opted_in"), ("ben@example.org", "opted_out")],
        ),
        ("segmentation_tab.csv", "Tabbed", "tab", [("ana@example.org", "opted_in")]),
        ("segmentation_pipe.csv", "Piped", "pipe", [("ben@example.org", "opted_in")]),
    ],
)
def test_semicolon_tab_and_pipe_files_are_read(ran, name, interest, delimiter, expected):
    deployment, _ = ran
    assert counts(deployment, name) == ("applied", len(expected), len(expected), 0)
    assert opted(deployment, interest) == expected
    assert raw_metadata(deployment, name)["delimiter"] == delimiter


def test_cr_only_line_endings_are_read(ran):
    deployment, _ = ran
    assert counts(deployment, "segmentation_cr.csv") == ("applied", 2, 2, 0)
    assert opted(deployment, "Mac") == [
        ("ana@example.org", "opted_in"),
        ("ben@example.org", "opted_in"),
    ]
    assert raw_metadata(deployment, "segmentation_cr.csv")["line_ending"] == "CR"


def test_empty_trailing_columns_are_ignored(ran):
    deployment, _ = ran
    assert counts(deployment, "segmentation_trailing.csv") == ("applied", 2, 2, 0)
    assert opted(deployment, "Trailing") == [
        ("ana@example.org", "opted_in"),
        ("ben@example.org", "opted_out"),
    ]


def test_a_row_with_more_fields_is_rejected_at_its_physical_line(ran):
    deployment, _ = ran
    assert counts(deployment, "constituents_multiline.csv") == ("applied", 3, 2, 1)
    errors = deployment.errors("constituents_multiline.csv")
    # Line 4 of the file: the quoted city of line 2 spans lines 2 and 3.
    assert errors.select("line", "reason", "received").rows() == [
        ("4", "line has 4 fields, the header has 3", "x@example.org,Smith, Jr.,Boston")
    ]
    people = deployment.query(
        "SELECT email, city FROM constituents WHERE email IN "
        "('cy@example.org', 'dee@example.org', 'x@example.org') ORDER BY 1"
    )
    assert people.rows() == [("cy@example.org", "Apt 4\nNew York"), ("dee@example.org", "Paris")]


def test_a_bare_quote_rejects_its_row_only(ran):
    deployment, _ = ran
    assert counts(deployment, "constituents_stray_quote.csv") == ("applied", 3, 2, 1)
    errors = deployment.errors("constituents_stray_quote.csv")
    assert errors.select("line", "received").rows() == [("3", 'Bob,O"Neil,bob@example.org')]
    assert errors["reason"][0].startswith('a quote (") inside an unquoted value')
    found = deployment.query(
        "SELECT email FROM constituents WHERE email IN "
        "('al@example.org', 'bob@example.org', 'cy@example.org') ORDER BY 1"
    )
    assert found["email"].to_list() == ["al@example.org", "cy@example.org"]


def test_a_nul_byte_rejects_its_row(ran):
    deployment, _ = ran
    assert counts(deployment, "constituents_nul.csv") == ("applied", 2, 1, 1)
    errors = deployment.errors("constituents_nul.csv")
    assert errors.select("line", "reason").rows() == [("2", "contains a NUL byte")]
    assert (
        deployment.query("SELECT count(*) FROM constituents WHERE email = 'nul@example.org'").item()
        == 0
    )


def test_excels_unicode_text_is_read(ran):
    deployment, _ = ran
    assert counts(deployment, "constituents_unicode_text.csv") == ("applied", 2, 2, 0)
    names = deployment.query(
        "SELECT first_name FROM constituents WHERE email IN ('zoe@example.org', "
        "'fay@example.org') ORDER BY email"
    )
    assert names["first_name"].to_list() == ["Fayçal", "Zoë"]
    metadata = raw_metadata(deployment, "constituents_unicode_text.csv")
    assert (metadata["encoding"], metadata["delimiter"]) == ("UTF-16LE with BOM", "tab")


def test_windows_1252_is_refused_naming_the_encoding_and_the_fix(ran):
    deployment, out = ran
    row = deployment.upload("constituents_windows.csv")
    assert row["status"] == "rejected"
    assert row["error"] == (
        "not valid UTF-8 (line 2): looks like Windows-1252; "
        "save it as CSV UTF-8 (Excel: Save As > CSV UTF-8) and upload it again"
    )
    assert "looks like Windows-1252" in out
    assert (
        deployment.query(
            "SELECT count(*) FROM constituents WHERE email = 'jose@example.org'"
        ).item()
        == 0
    )


SMALL = csv("email;interest_name;opt", "ana@example.org;A, B;in", "ben@example.org;C;out").encode()


def test_a_small_file_is_sniffed_in_place_as_its_copy_would_be(tmp_path: Path, monkeypatch):
    from segpipe.ingest import dialect

    path = tmp_path / "segmentation_small.csv"
    path.write_bytes(SMALL)
    from_copy = dialect.detect_bytes(path.name, SMALL)

    def no_copy(*args, **kwargs):
        raise AssertionError("a small UTF-8 file is sniffed in place, without a temporary copy")

    monkeypatch.setattr(dialect.tempfile, "NamedTemporaryFile", no_copy)
    assert dialect.detect(path) == from_copy
    assert from_copy.delimiter == ";"


@pytest.mark.parametrize("name", ["segmentation [final].csv", "segmentation*.csv", "seg?.csv"])
def test_a_file_named_with_glob_characters_is_sniffed_from_a_copy(tmp_path: Path, name):
    from segpipe.ingest import dialect

    (tmp_path / "segmentation_other.csv").write_bytes(b"a|b\n1|2\n")  # what a glob might match
    path = tmp_path / name
    path.write_bytes(SMALL)
    assert dialect.detect(path) == dialect.detect_bytes(name, SMALL)
    assert dialect.detect(path).delimiter == ";"
