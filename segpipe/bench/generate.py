"""Deterministic synthetic data for `segpipe bench`, made with DuckDB SQL over whole ranges.

Everything derives from row numbers and `hash(row, seed)`, so the same scale and seed give the
same warehouse and the same files on every machine with the same DuckDB version.

Layout under the bench folder:
  base/warehouse.duckdb   constituents, interests (+ groups, segments), cross-reference,
                          the existing interest_memberships, events
  files/                  the big segmentation upload, the 10K one, and small/ (many small files)
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import duckdb

from segpipe.bench.scales import Scale
from segpipe.warehouse.connection import connect

GENERATOR_VERSION = 4
SEED = 20260101
BIG_UPLOAD = "segmentation_bench_upload.csv"
SMALL_UPLOAD = "segmentation_bench_10k.csv"
LOADED_AT = "TIMESTAMP '2026-01-01 00:00:00'"
# People's text member ids, Luminate-style (the external id a CRM such as Raiser's Edge gives).
MEMBER_ID = "'M-' || lpad(({person})::VARCHAR, 8, '0')"
UPLOAD_COLUMNS = "member_id,email,interest_name,interest_id,foreign_source,foreign_interest,opt"


def base_warehouse(folder: Path) -> Path:
    return folder / "base" / "warehouse.duckdb"


def tenth_warehouse(folder: Path) -> Path:
    """The base warehouse with every tenth of its interest memberships only (5M of 50M; same
    people, interests, events): the 10K upload is applied to both, to show that its cost
    follows the upload, not the table. Made from the base on first use."""
    path = folder / "base" / "warehouse-tenth.duckdb"
    if not path.exists():
        partial = path.with_name(f".{path.name}.partial")
        shutil.copy(base_warehouse(folder), partial)
        with connect(partial) as con:
            con.execute(
                "CREATE TEMP TABLE _kept AS SELECT * FROM interest_memberships WHERE rowid % 10 = 0"
            )
            con.execute("DELETE FROM interest_memberships")
            con.execute("INSERT INTO interest_memberships SELECT * FROM _kept")
            con.execute("CHECKPOINT")
        os.replace(partial, path)
    return path


def files(folder: Path) -> Path:
    return folder / "files"


# How many times stages run: the same data serves any number of runs.
_RUN_COUNTS = ("latency_runs", "upload_runs")


def _wanted(scale: Scale) -> dict:
    """What the generated data depends on: the generator, its seed, the scale's sizes."""
    sizes = {k: v for k, v in scale.as_dict().items() if k not in _RUN_COUNTS}
    return {"version": GENERATOR_VERSION, "seed": SEED, "scale": sizes}


def is_generated(folder: Path, scale: Scale) -> bool:
    """True when the folder already holds this scale's data (generate then does nothing)."""
    stamp = folder / "generated.json"
    return stamp.exists() and json.loads(stamp.read_text()).get("wanted") == _wanted(scale)


def generate(folder: Path, scale: Scale) -> dict:
    """Create the bench data unless the folder already holds this scale's; returns row counts."""
    stamp = folder / "generated.json"
    wanted = _wanted(scale)
    if is_generated(folder, scale):
        return json.loads(stamp.read_text())["rows"]
    stamp.unlink(missing_ok=True)
    base = base_warehouse(folder)
    base.parent.mkdir(parents=True, exist_ok=True)
    base.unlink(missing_ok=True)
    (base.parent / "warehouse-tenth.duckdb").unlink(missing_ok=True)
    files(folder).mkdir(parents=True, exist_ok=True)
    with connect(base) as con:
        _people(con, scale)
        _interests(con, scale)
        _memberships(con, scale)
        _events(con, scale)
        _upload(con, scale, files(folder) / BIG_UPLOAD, scale.upload_rows, SEED)
        _upload(con, scale, files(folder) / SMALL_UPLOAD, scale.small_upload_rows, SEED + 1)
        _small_files(con, scale, files(folder) / "small")
        con.execute("CHECKPOINT")
        rows = {
            table: con.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
            for table in ("constituents", "interests", "interest_xref", "interest_memberships")
        }
    rows.update(upload=scale.upload_rows, small_upload=scale.small_upload_rows)
    stamp.write_text(json.dumps({"wanted": wanted, "rows": rows}, indent=2))
    return rows


def _people(con: duckdb.DuckDBPyConnection, scale: Scale) -> None:
    con.execute(
        f"""
        INSERT INTO constituents
        SELECT i, {MEMBER_ID.format(person="i")},
               'person' || i || '@' || (['example.org', 'example.net', 'mail.test'])[1 + i % 3],
               '+1' || (2012000000 + i)::VARCHAR, 'EXT-' || lpad(i::VARCHAR, 9, '0'),
               'First' || (i % 997), 'Last' || (i % 1009),
               hash(i, {SEED}) % 10 < 8, hash(i, {SEED} + 1) % 10 < 6,
               {LOADED_AT}, {LOADED_AT}, 'bench-initial'
        FROM range(1, ? + 1) AS r(i)
        """,
        [scale.constituents],
    )


def _interests(con: duckdb.DuckDBPyConnection, scale: Scale) -> None:
    n = scale.interests
    con.execute(
        f"""
        INSERT INTO interests
        SELECT i, 'Interest ' || i, 'Email', 'email', {LOADED_AT}, 'bench-initial'
        FROM range(1, ? + 1) AS r(i)
        """,
        [n],
    )
    # Group ids 2i-1 (opt-in) and 2i (opt-out); every group is a segment too.
    con.execute(
        """
        INSERT INTO interest_groups
        SELECT 2 * i - 1 + k, i, ['opt_in', 'opt_out'][k + 1],
               'Interest ' || i || [' Opt-In', ' Opt-Out'][k + 1]
        FROM range(1, ? + 1) AS r(i), range(0, 2) AS g(k)
        """,
        [n],
    )
    con.execute(
        "INSERT INTO segments (segment_id, name, kind, description, created_at) "
        f"SELECT group_id, name, 'interest_group', NULL, {LOADED_AT} FROM interest_groups"
    )
    con.execute(
        f"""
        INSERT INTO interest_xref
        SELECT ['partner_a', 'partner_b'][1 + j % 2], 'CODE-' || lpad(j::VARCHAR, 6, '0'),
               1 + j % ?, 'bench-initial', {LOADED_AT}
        FROM range(1, ? + 1) AS r(j)
        """,
        [n, scale.foreign_codes],
    )


def _own_interest(member: str, k: str, n: int) -> str:
    """The k-th interest a member already has (k < per-member count): distinct for each k."""
    return f"(({member}) * 7 + ({k}) * 101) % {n} + 1"


def _memberships(con: duckdb.DuckDBPyConnection, scale: Scale) -> None:
    per_member = scale.memberships // scale.constituents
    con.execute(
        f"""
        INSERT INTO interest_memberships
        SELECT m, {_own_interest("m", "k", scale.interests)},
               CASE WHEN hash(m, k, {SEED}) % 5 = 0 THEN 'opted_out' ELSE 'opted_in' END,
               {LOADED_AT} - to_days((hash(m, k) % 700)::INTEGER), 'bench-initial', {LOADED_AT}
        FROM range(1, ? + 1) AS p(m), range(0, ?) AS q(k)
        ORDER BY m, k
        """,
        [scale.constituents, per_member],
    )


def _events(con: duckdb.DuckDBPyConnection, scale: Scale) -> None:
    """Events as the events upload kind stores them: properties a text map, and the catalogue of
    properties each event carries (what segment rules may filter on)."""
    con.execute(
        f"""
        INSERT INTO events BY NAME
        SELECT 1 + hash(e, {SEED}) % ? AS cons_id,
               (['page_view', 'viewed_offer', 'purchased', 'email_open', 'donated'])
                   [1 + (hash(e, {SEED} + 1) % 5)::BIGINT] AS event,
               {LOADED_AT} - to_seconds((hash(e, {SEED} + 2) % (90 * 86400))::BIGINT)
                   AS "timestamp",
               map(['offer_id'], [(['gold', 'silver', 'bronze'])[1 + e % 3]]) AS properties,
               'bench-initial' AS upload_id
        FROM range(0, ?) AS r(e)
        """,
        [scale.constituents, scale.events],
    )
    con.execute(
        "INSERT INTO event_properties SELECT DISTINCT event, 'offer_id' FROM events ORDER BY 1"
    )


# Rule windows count back from here: the generated events are from the 90 days before it.
AS_OF = "2026-01-01T00:00:00"


def segments_yaml() -> str:
    """The bench deployment's segments.yaml: data-driven rules over the generated data (an
    attribute, events in a window with a property filter, an interest, another segment) and a
    csv and an Attentive destination over a handful of segments, so the refresh and the delta
    exports after an upload do the work they would in production."""
    return """\
segments:
  - name: SMS reachable
    description: Can be texted
    all:
      - {attribute: sms_opt_in, op: eq, value: true}
  - name: Gold offer regulars
    description: Viewed the gold offer at least twice in the last 30 days and can be emailed
    all:
      - {event: viewed_offer, min_count: 2, within_days: 30, where: {offer_id: gold}}
      - {attribute: email_opt_in, op: eq, value: true}
  - name: Interest 1 fans without purchase
    description: Opted in to Interest 1 and bought nothing in the last week
    all:
      - {interest: Interest 1, status: opted_in}
      - {event: purchased, max_count: 0, within_days: 7}
  - name: Textable gold regulars
    description: Gold offer regulars who can be texted
    all:
      - {segment: Gold offer regulars}
      - {segment: SMS reachable}
destinations:
  - name: selligent
    format: csv
    key: external_id
    fields: [email, first_name]
    segments: [Gold offer regulars, Interest 1 fans without purchase, Interest 2 Opt-In]
  - name: attentive
    format: attentive
    domain: benchdomain
    key: phone
    segments: [Textable gold regulars, Interest 3 Opt-In]
"""


def _upload_sql(scale: Scale, rows: int, seed: int) -> str:
    """A segmentation upload mixing member IDs and emails; interests by ID, foreign code or
    name; ~3% unknown people, ~0.5% bad rows (invalid email, unknown opt word, unknown ID)."""
    c, n = scale.constituents, scale.interests
    per_member = max(scale.memberships // scale.constituents, 1)
    return f"""
    WITH r AS (
        SELECT i, (hash(i, {seed}) >> 1)::BIGINT AS h FROM range(1, {rows} + 1) AS t(i)
    ), p AS (
        SELECT i, h,
               CASE WHEN h % 100 < 3 THEN {c} + 1 + h % 1000000 ELSE 1 + h % {c} END AS person,
               (h >> 8) % 2 = 0 AS by_id,
               (h >> 16) % 10 AS how,
               (h >> 24) % 1000 AS bad,
               -- half the rows touch an interest the person already has (updates), half new
               CASE WHEN (h >> 40) % 2 = 0
                    THEN {_own_interest("CASE WHEN h % 100 < 3 THEN 0 ELSE 1 + h % " + str(c) + " END", f"(h >> 44) % {per_member}", n)}
                    ELSE 1 + (h >> 48) % {n} END AS interest
        FROM r
    )
    SELECT
        CASE WHEN by_id THEN {MEMBER_ID.format(person="person")} END AS member_id,
        CASE WHEN bad < 2 THEN 'not-an-email'
             WHEN NOT by_id THEN (CASE WHEN i % 7 = 0 THEN 'Person' ELSE 'person' END)
                  || person || '@' || (['example.org', 'example.net', 'mail.test'])[1 + person % 3]
             END AS email,
        CASE WHEN how >= 8 THEN 'Interest ' || interest END AS interest_name,
        CASE WHEN how < 5 THEN (CASE WHEN bad BETWEEN 2 AND 3 THEN {n} + 5000 ELSE interest END)::VARCHAR
             END AS interest_id,
        CASE WHEN how BETWEEN 5 AND 7 THEN ['partner_a', 'partner_b'][1 + (interest % 2)] END
            AS foreign_source,
        CASE WHEN how BETWEEN 5 AND 7
             THEN 'CODE-' || lpad((interest + {n} * ((h >> 52) % greatest({scale.foreign_codes} // {n}, 1)))::VARCHAR, 6, '0')
             END AS foreign_interest,
        CASE WHEN bad = 4 THEN 'maybe'
             ELSE (['in', 'yes', 'Y', 'opt-in', 'out', 'in', 'subscribe', 'no'])[1 + (h >> 32) % 8]
             END AS opt
    FROM p ORDER BY i
    """  # noqa: E501


def _upload(con, scale: Scale, path: Path, rows: int, seed: int) -> None:
    con.execute(
        f"COPY ({_upload_sql(scale, rows, seed)}) TO '{_literal(path)}' (FORMAT csv, HEADER true)"
    )


def _small_files(con, scale: Scale, folder: Path) -> None:
    """Many small segmentation files: rows of one upload cut into files of equal size."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.csv"):
        old.unlink()
    total = scale.small_files * scale.small_file_rows
    rows = con.sql(_upload_sql(scale, total, SEED + 2)).pl()
    for number in range(scale.small_files):
        part = rows.slice(number * scale.small_file_rows, scale.small_file_rows)
        part.write_csv(folder / f"segmentation_small_{number + 1:05d}.csv")


def _literal(path: Path) -> str:
    """A path inside a SQL string literal (COPY takes no parameter for its target)."""
    return str(path).replace("'", "''")
