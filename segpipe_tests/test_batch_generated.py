"""Generated sequences of small segmentation files end the same applied in batches
(batch.process_uploads) as applied one at a time (pipeline.process_upload): each seed a
sequence of 8-25 files with the ways files meet (the same key across files, keys repeated in a
file, new interests named in other case, unknown people and interests, rows refused, a file
rejected whole, exact and content duplicates), compared report by report and table by table."""

from __future__ import annotations

import random
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from segpipe import batch
from segpipe.erasure.forget import forget
from segpipe.ingest.receive import receive_inbox
from segpipe.pipeline import process_upload
from segpipe.warehouse.connection import connect
from segpipe.warehouse.sql import frame
from segpipe.warehouse.suppressions import IdentifierKind
from segpipe_tests.conftest import Deployment, copy_of
from segpipe_tests.test_batch import INSTANTS, TABLES

OPT_IN = ["in", "opt-in", "Subscribe", "YES", "y", "true", "1", "add", " In "]
OPT_OUT = ["out", "OPT-OUT", "unsubscribe", "no", "n", "False", "0", "remove"]
NEW_NAMES = ["Gardening Club", "Book Circle", "Trail Runners"]
UNKNOWN_PEOPLE = [
    ("email", "nobody@example.org"),
    ("member_id", "M-9999"),
    ("cons_id", "99999"),
]
INVALID_EMAILS = ["not-an-email", "maria.alvarez@", "@example.org"]
# (foreign_source, foreign_interest): the sample's cross-references, and one it lacks.
FOREIGN = [
    ("eventbrite", "NEWS-MONTHLY"),
    ("eventbrite", "ADV-ALERT"),
    ("mailchimp", "tag:gala"),
    ("eventbrite", "NO-SUCH-CODE"),
]
# Erased before the files arrive: their rows are ignored, and never shown.
ERASED = "kwame.mensah@example.org"


class _Sequence:
    """One seed's files (name, bytes), built against the applied sample's people and interests."""

    def __init__(self, seed: int, people: pl.DataFrame, interests: pl.DataFrame, next_id: int):
        self.rng = random.Random(seed)
        self.people = people.rows(named=True)
        self.interests = interests.rows(named=True)
        # Ids a new interest of the sequence may get: unknown until a file creates it.
        self.future_ids = [next_id + n for n in range(len(NEW_NAMES))]
        # A few keys named again and again, so that many files of a batch meet on them.
        self.hot = [
            (self.rng.choice(self.people), self.rng.choice(self.interests)) for _ in range(3)
        ]

    def files(self) -> list[tuple[str, bytes]]:
        """8-25 files: generated ones, among them (after the first two) at least one exact
        duplicate of an earlier file, one content duplicate and one file rejected whole."""
        rng = self.rng
        count = rng.randint(8, 25)
        special = dict(
            zip(rng.sample(range(2, count), 3), ("same", "content", "rejected"), strict=True)
        )
        contents: list[bytes] = []
        made: list[bytes] = []  # the generated files with rows, which apply
        for number in range(count):
            roll = rng.random()
            how = special.get(number)
            if how is None and made:
                how = "same" if roll < 0.05 else "content" if roll < 0.1 else None
            if how in ("same", "content") and not made:
                how = None  # a repeat of a file rejected whole is rejected again: none yet
            if how == "same":
                contents.append(rng.choice(made))
            elif how == "content":
                contents.append(self._same_content(rng.choice(made)))
            elif how == "rejected":
                contents.append(b"email,opt\nmaria.alvarez@example.org,in\n")  # no interest
            else:
                contents.append(self._file())
                if contents[-1].count(b"\n") > 1:  # a header alone is rejected whole
                    made.append(contents[-1])
        return [(f"segmentation_{n:02d}.csv", content) for n, content in enumerate(contents)]

    def _same_content(self, content: bytes) -> bytes:
        """The content as another file would carry it: CRLF line ends or a BOM."""
        if b"\r\n" not in content and self.rng.random() < 0.5:
            return content.replace(b"\n", b"\r\n")
        if not content.startswith(b"\xef\xbb\xbf"):
            return b"\xef\xbb\xbf" + content
        return content.replace(b"\r\n", b"\n")

    def _person(self) -> tuple[str, str]:
        """(identifier, value) naming a sample constituent, someone unknown or an invalid email."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.1:
            return rng.choice(UNKNOWN_PEOPLE)
        if roll < 0.15:
            return ("email", rng.choice(INVALID_EMAILS))
        person = rng.choice(self.people)
        usable = [c for c in ("email", "member_id", "cons_id") if person[c] is not None]
        column = rng.choice(usable)
        value = str(person[column])
        return column, value.upper() if column == "email" and rng.random() < 0.2 else value

    def _interest(self) -> tuple[str, str]:
        """(interest_name or interest_id, value): an existing interest, an unknown id, a new
        name (in any case) or the id a new interest will get."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.15:
            name = rng.choice(NEW_NAMES)
            return "interest_name", rng.choice([name, name.lower(), name.upper()])
        if roll < 0.2:
            return "interest_id", str(rng.choice([*self.future_ids, 999, "abc"]))
        if roll < 0.27:
            return "foreign_interest", "|".join(rng.choice(FOREIGN))
        interest = rng.choice(self.interests)
        if rng.random() < 0.5:
            return "interest_id", str(interest["interest_id"])
        name = interest["name"]
        return "interest_name", name.lower() if rng.random() < 0.2 else name

    def _file(self) -> bytes:
        rng = self.rng
        people = rng.sample(["email", "member_id", "cons_id"], rng.randint(1, 3))
        named = rng.sample(["interest_name", "interest_id", "foreign_interest"], rng.randint(1, 3))
        opt = rng.choice(["opt", "opt_in"])
        header = [*people, *named, opt]
        if "foreign_interest" in named:
            header.insert(header.index("foreign_interest"), "foreign_source")
        rows = []
        # Now and then a file of a header alone.
        for _ in range(0 if rng.random() < 0.05 else rng.randint(1, 8)):
            (person, who), (interest, which) = (
                self._hot(people, named) if rng.random() < 0.5 else None
            ) or (self._person(), self._interest())
            if person not in people:
                person, who = people[0], self._value_for(people[0])
            if interest not in named:
                interest, which = named[0], self._interest_value(named[0])
            status = rng.choice(OPT_IN if rng.random() < 0.5 else OPT_OUT)
            if rng.random() < 0.03:
                status = "maybe"  # no opt value: the row is refused
            cells = {person: who, interest: which, opt: status}
            if interest == "foreign_interest":
                cells["foreign_source"], cells[interest] = which.split("|")
            rows.append([cells.get(column, "") for column in header])
            if rng.random() < 0.15:  # the key again, later in the file: it supersedes
                again = list(rows[-1])
                again[header.index(opt)] = rng.choice(OPT_IN + OPT_OUT)
                rows.append(again)
        # Mostly commas; now and then another delimiter the reader detects, or quoted cells.
        delimiter = rng.choice([",", ",", ",", ";", "\t"])
        quoted = rng.random() < 0.2
        lines = [
            delimiter.join(f'"{cell}"' if quoted and cell else cell for cell in row)
            for row in [header, *rows]
        ]
        return ("\n".join(lines) + "\n").encode()

    def _hot(self, people: list[str], named: list[str]):
        """One of the keys many files name (a sample person, an existing interest), by the
        columns the file has; None when the file names interests by foreign values alone."""
        person, interest = self.rng.choice(self.hot)
        by = [c for c in people if person[c] is not None]
        names = [c for c in named if c != "foreign_interest"]
        if not by or not names:
            return None
        column, which = self.rng.choice(by), self.rng.choice(names)
        value = interest["name"] if which == "interest_name" else interest["interest_id"]
        return (column, str(person[column])), (which, str(value))

    def _value_for(self, column: str) -> str:
        for _ in range(20):
            found, value = self._person()
            if found == column:
                return value
        return next(value for found, value in UNKNOWN_PEOPLE if found == column)

    def _interest_value(self, column: str) -> str:
        for _ in range(20):
            found, value = self._interest()
            if found == column:
                return value
        return {"interest_id": "999", "interest_name": NEW_NAMES[0]}.get(column, "eventbrite|X")


@pytest.fixture(scope="module")
def erased_sample(applied_sample, tmp_path_factory) -> Deployment:
    """The applied sample with ERASED forgotten, copied once for every sequence."""
    with pytest.MonkeyPatch.context() as patch:
        root = tmp_path_factory.mktemp("erased_sample") / "deployment"
        deployment = copy_of(applied_sample, root, patch)
        forget(
            deployment.data,
            IdentifierKind.EMAIL,
            ERASED,
            at=datetime(2026, 11, 20),
            dagster_home=None,
        )
    return deployment


@pytest.fixture(scope="module")
def sample_facts(applied_sample):
    """The sample's people, interests and the id the next new interest gets."""
    people = applied_sample.query("SELECT cons_id, email, member_id FROM constituents")
    interests = applied_sample.query("SELECT interest_id, name FROM interests")
    next_id = applied_sample.query("SELECT max(interest_id) + 1 AS i FROM interests")["i"][0]
    return people, interests, next_id


def _run(sample: Deployment, root: Path, files, batched: bool):
    """(reports, tables, errors files) of `files` applied to a copy of `sample`."""
    with pytest.MonkeyPatch.context() as patch:
        deployment = copy_of(sample, root, patch)
        for name, content in files:
            deployment.drop(name, content)
        upload_ids = [file.upload_id for file in receive_inbox(deployment.data, settle=0)]
        assert len(upload_ids) == len(files)
        with connect(deployment.data.warehouse) as con:
            if batched:
                reports = list(batch.process_uploads(deployment.data, con, upload_ids, "r1"))
            else:
                reports = [process_upload(deployment.data, con, u, "r1") for u in upload_ids]
        errors = {path.name: path.read_text() for path in deployment.data.rejected.glob("*.csv")}
        return reports, _tables(deployment), errors


def _tables(deployment: Deployment) -> dict[str, pl.DataFrame]:
    """TABLES (and every before-image table), each instant replaced by what it means: the
    upload whose change wrote it (history's `at` names each upload's instant). The uploads'
    own applied_at is replaced by the uploads' order of applying."""
    with connect(deployment.data.warehouse) as con:
        shadows = frame(
            con,
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_name LIKE 'upload_before_%' ORDER BY table_name",
        )["table_name"].to_list()
        tables = {}
        for table in [*TABLES, *shadows]:
            columns = frame(con, f"SELECT * FROM {table} LIMIT 0").columns
            order = TABLES.get(table, ", ".join(f'"{c}"' for c in columns))
            tables[table] = frame(con, f"SELECT * FROM {table} ORDER BY {order}")
        instants = frame(con, 'SELECT DISTINCT "at", upload_id FROM membership_history')
    meaning = dict(instants.iter_rows())
    assert len(meaning) == instants.height, "two uploads' changes share an instant"
    uploads = tables["uploads"].sort("applied_at")
    tables["uploads"] = tables["uploads"].with_columns(
        pl.col("file_name")
        .replace_strict(uploads["file_name"], range(uploads.height))
        .alias("applied_at")
    )
    return {
        table: rows.with_columns(
            pl.col(c).replace_strict(
                list(meaning), list(meaning.values()), default=pl.col(c).cast(pl.String)
            )
            for c in rows.columns
            if c in INSTANTS and c != "applied_at"
        )
        for table, rows in tables.items()
    }


def _compare(sample: Deployment, tmp_path: Path, files) -> None:
    batched_reports, batched, batched_errors = _run(
        sample, tmp_path / "batched", files, batched=True
    )
    reports, alone, errors = _run(sample, tmp_path / "alone", files, batched=False)
    assert {"applied", "duplicate", "rejected"} <= {r.status for r in reports}
    assert [(r.file_name, r.status, dict(r.counts), r.error) for r in batched_reports] == [
        (r.file_name, r.status, dict(r.counts), r.error) for r in reports
    ]
    for one, other in zip(batched_reports, reports, strict=True):
        assert one.stages.keys() == other.stages.keys(), one.file_name
        for stage in one.stages:
            assert dict(one.stages[stage]) == dict(other.stages[stage]), (one.file_name, stage)
    assert batched.keys() == alone.keys()
    for table, rows in batched.items():
        try:
            assert_frame_equal(rows, alone[table], check_dtypes=False)
        except AssertionError as difference:
            raise AssertionError(f"{table}: {difference}") from None
    assert batched_errors == errors


def _sequence(seed: int, sample_facts) -> list[tuple[str, bytes]]:
    return _Sequence(seed, *sample_facts).files()


@pytest.mark.parametrize("seed", range(6))
def test_a_generated_sequence_ends_as_if_each_file_applied_in_turn(
    seed, erased_sample, sample_facts, tmp_path
):
    _compare(erased_sample, tmp_path, _sequence(seed, sample_facts))


def test_batches_split_mid_sequence_end_the_same(
    erased_sample, sample_facts, tmp_path, monkeypatch
):
    monkeypatch.setattr(batch, "BATCH_FILES", 3)
    _compare(erased_sample, tmp_path, _sequence(100, sample_facts))


def test_batches_ended_by_their_rows_end_the_same(
    erased_sample, sample_facts, tmp_path, monkeypatch
):
    monkeypatch.setattr(batch, "BATCH_ROWS", 12)
    _compare(erased_sample, tmp_path, _sequence(101, sample_facts))
