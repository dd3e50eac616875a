"""Whole-file rules: names, encodings, headers (SPEC section 2), without Dagster."""

import gzip

import pytest

from segpipe.ingest import reader
from segpipe.ingest.errors import UploadRejected
from segpipe.ingest.filenames import UploadKind, delivery_of, kind_of
from segpipe.ingest.reader import normalize_header, read_rows


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("constituents.csv", UploadKind.CONSTITUENT),
        ("Constituents_2026-11-01.CSV", UploadKind.CONSTITUENT),
        ("segmentation_jan.csv.gz", UploadKind.SEGMENTATION),
        ("interest_xref_partners.csv", UploadKind.INTEREST_XREF),
        ("events_web.csv", UploadKind.EVENTS),
        ("manual_segment_vip.csv", UploadKind.MANUAL_SEGMENT),
        ("sirendenim_subscriber_segment_20261101.csv", UploadKind.SUBSCRIBER_SEGMENT),
    ],
)
def test_kind_comes_from_the_file_name(name, kind):
    assert kind_of(name) == kind


@pytest.mark.parametrize("name", ["donors.csv", "segmentation.xlsx", "constituents.txt"])
def test_other_names_are_rejected_with_the_accepted_patterns(name):
    with pytest.raises(UploadRejected) as error:
        kind_of(name)
    assert str(error.value).startswith(f"{name}: file name matches no upload kind")
    assert "segmentation*.csv" in str(error.value)
    assert "{domain}_subscriber_segment_{YYYYMMDD}[_{n}].csv" in str(error.value)


def test_delivery_dates_must_be_real_and_zero_padded():
    delivery = delivery_of("SirenDenim_subscriber_segment_20261104_2.csv")
    assert (delivery.domain, delivery.day.isoformat(), delivery.part) == (
        "sirendenim",
        "2026-11-04",
        2,
    )
    for bad in ("x_subscriber_segment_20260231.csv", "x_subscriber_segment_2026111.csv"):
        with pytest.raises(UploadRejected):
            delivery_of(bad)


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [(" Interest Name ", "interest_name"), ("Opt-In", "opt_in"), ("EMAIL", "email")],
)
def test_headers_ignore_case_spaces_and_hyphens(raw, normalized):
    assert normalize_header(raw) == normalized


def test_rows_keep_their_line_numbers_and_blank_cells_are_null():
    frame = read_rows(
        "s.csv", b"\xef\xbb\xbfEmail, Opt \na@b.org , in\n\n,out\n", header=True
    ).drop("_malformed")
    assert frame.columns == ["_line", "email", "opt"]
    assert frame.to_dicts() == [  # the blank line 3 is no row, and numbering goes on
        {"_line": 2, "email": "a@b.org", "opt": "in"},
        {"_line": 4, "email": None, "opt": "out"},
    ]


def test_a_row_with_the_wrong_number_of_fields_is_marked_not_the_whole_file():
    frame = read_rows(
        "s.csv", b'email,opt\na@b.org,in\nc@d.org,out,extra\ne@f.org\n"g,h@i.org",in\n', header=True
    )
    assert frame.select("_line", "_malformed").rows() == [
        (2, None),
        (3, "line has 3 fields, the header has 2"),
        (4, "line has 1 fields, the header has 2"),
        (5, None),  # a quoted comma is part of the value
    ]


def test_gzip_files_are_read():
    frame = read_rows("s.csv.gz", gzip.compress(b"email,opt\na@b.org,in\n"), header=True)
    assert frame.height == 1


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (b"", "file is empty"),
        (b"  \n", "file is empty"),
        (b"email,opt\n", "file has no data rows"),
        (b"email,opt\na@b.org,in\n\xff\xfe,out\n", "not valid UTF-8 (line 3"),
        (b"email,Email\na@b.org,x\n", "header names column 'email' twice"),
        (b"email,email\na@b.org,x\n", "header names column 'email' twice"),
        (b'email,opt\n"jane@example.org,in\n', "line 2: a quoted value is never closed"),
    ],
)
def test_whole_file_problems_name_the_file_and_the_problem(payload, problem):
    with pytest.raises(UploadRejected) as error:
        read_rows("segmentation_x.csv", payload, header=True)
    assert str(error.value).startswith("segmentation_x.csv: ")
    assert problem in str(error.value)
    assert "@" not in str(error.value)  # the message never quotes a row


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (b"email,,opt\na@b.org,x,in\n", "column 2 has no name in the header but holds values"),
        (b"sep=:\nemail:opt\na@b.org:in\n", "line 1 (sep=) names a delimiter other than"),
        ("email,opt\na@b.org,in\n".encode("utf-16-le"), "looks like UTF-16"),
        (b'email,o"pt\na@b.org,in\n', "line 1 (the header): a quote"),
    ],
)
def test_headers_and_encodings_segpipe_cannot_read_exactly_are_refused(payload, problem):
    with pytest.raises(UploadRejected) as error:
        read_rows("segmentation_x.csv", payload, header=True)
    assert problem in str(error.value)


def test_utf16_big_endian_with_a_bom_is_read():
    payload = "email\tname\r\na@b.org\tZoë\r\n".encode("utf-16-be")
    frame = read_rows("s.csv", b"\xfe\xff" + payload, header=True)
    assert frame.select("_line", "email", "name").rows() == [(2, "a@b.org", "Zoë")]


def test_unnamed_columns_empty_everywhere_are_dropped_wherever_they_are():
    frame = read_rows("s.csv", b"email,,opt,\na@b.org,,in,\nc@d.org,,out\n", header=True)
    assert frame.select("_line", "email", "opt").rows() == [
        (2, "a@b.org", "in"),
        (3, "c@d.org", "out"),  # Excel stops a row before its empty trailing columns
    ]
    assert frame.columns == ["_line", "email", "opt", "_malformed"]


@pytest.mark.parametrize(
    "payload",
    [
        b"email,opt\r\na@b.org,in\r\nc@d.org,out\r\n",
        b"email,opt,,\na@b.org,in,,\nc@d.org, out ,,\n",
        b"email;opt\na@b.org;in\n;\nc@d.org;\n",
        b"email,opt\na@b.org,in,extra\nc@d.org\n",
        b"email\ta\n x@y.org \t1\n",
    ],
)
def test_the_fast_path_reads_what_the_record_path_reads(payload, monkeypatch):
    """Blocks without quotes skip the record automaton; the rows must be the same."""
    fast = read_rows("s.csv", payload, header=True)
    monkeypatch.setattr(reader._Reading, "_regular", lambda self, block, first_line: None)
    assert fast.to_dicts() == read_rows("s.csv", payload, header=True).to_dicts()
