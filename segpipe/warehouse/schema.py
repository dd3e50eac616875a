"""The public tables. Their names and meaning are a contract with the people who read them.

No table declares a PRIMARY KEY: DuckDB checks keys eagerly, so the delete-then-insert that
applies an upload (much faster than INSERT ... ON CONFLICT on a large table) would trip on
them. Keys are kept unique by the apply SQL and guarded by asset checks instead.
"""

from __future__ import annotations

import hashlib

import duckdb

from segpipe.vocabulary import InterestGroupKind, InterestStatus

TABLES = {
    # cons_id: Luminate's Constituent ID, assigned by segpipe and never reused; member_id: the
    # external identifier used for data syncing (Luminate's Member ID), text, unique when present.
    "constituents": """
        cons_id BIGINT NOT NULL, member_id VARCHAR, email VARCHAR, phone VARCHAR,
        external_id VARCHAR,
        first_name VARCHAR, last_name VARCHAR, email_opt_in BOOLEAN, sms_opt_in BOOLEAN,
        created_at TIMESTAMP, updated_at TIMESTAMP, upload_id VARCHAR""",
    "interests": """
        interest_id BIGINT NOT NULL, name VARCHAR NOT NULL, category VARCHAR, kind VARCHAR,
        created_at TIMESTAMP, upload_id VARCHAR""",
    "interest_groups": """
        group_id BIGINT NOT NULL, interest_id BIGINT NOT NULL, kind VARCHAR NOT NULL,
        name VARCHAR NOT NULL""",
    "interest_xref": """
        foreign_source VARCHAR NOT NULL, foreign_value VARCHAR NOT NULL,
        interest_id BIGINT NOT NULL, upload_id VARCHAR, updated_at TIMESTAMP""",
    "interest_memberships": """
        cons_id BIGINT NOT NULL, interest_id BIGINT NOT NULL, status VARCHAR NOT NULL,
        since TIMESTAMP, upload_id VARCHAR, updated_at TIMESTAMP""",
    "segments": """
        segment_id BIGINT NOT NULL, name VARCHAR NOT NULL, kind VARCHAR NOT NULL,
        description VARCHAR, created_at TIMESTAMP, domain VARCHAR""",
    "segment_memberships": """
        segment_id BIGINT NOT NULL, cons_id BIGINT NOT NULL, since TIMESTAMP,
        upload_id VARCHAR""",
    "membership_history": """
        upload_id VARCHAR, run_id VARCHAR, cons_id BIGINT NOT NULL, interest_id BIGINT,
        segment_id BIGINT, change VARCHAR NOT NULL, "at" TIMESTAMP NOT NULL""",
    "uploads": """
        upload_id VARCHAR NOT NULL, file_name VARCHAR NOT NULL, sha256 VARCHAR, kind VARCHAR,
        status VARCHAR NOT NULL, rows_in BIGINT, rows_applied BIGINT, rows_rejected BIGINT,
        rows_ignored BIGINT, rows_superseded BIGINT, error VARCHAR, duplicate_of VARCHAR,
        bytes BIGINT, received_at TIMESTAMP, applied_at TIMESTAMP""",
    # One row per destination and segment per successful sync (SPEC 6).
    "syncs": """
        destination VARCHAR NOT NULL, segment VARCHAR NOT NULL, segment_id BIGINT NOT NULL,
        "at" TIMESTAMP NOT NULL, members BIGINT NOT NULL, adds BIGINT NOT NULL,
        removes BIGINT NOT NULL, skipped_no_key BIGINT NOT NULL, path VARCHAR NOT NULL,
        mode VARCHAR, run_id VARCHAR, skipped_no_consent BIGINT DEFAULT 0""",
    # The diff baseline: the key values each destination holds for each segment since its last
    # successful sync; written in the transaction that records the sync.
    "sync_members": """
        destination VARCHAR NOT NULL, segment_id BIGINT NOT NULL, key_value VARCHAR NOT NULL,
        cons_id BIGINT, since TIMESTAMP""",
    # Append-only; "timestamp" is UTC. Properties are the file's other columns, as text.
    "events": """
        cons_id BIGINT NOT NULL, event VARCHAR NOT NULL, "timestamp" TIMESTAMP NOT NULL,
        properties MAP(VARCHAR, VARCHAR), upload_id VARCHAR""",
    # Which properties each event has carried: what a segment rule may filter that event on.
    "event_properties": """
        event VARCHAR NOT NULL, property VARCHAR NOT NULL""",
    # What each applied file of an Attentive delivery contributed (its matched subscribers per
    # segment; cons_id NULL marks a segment the file named, segment_id NULL the file itself):
    # a delivery's target is the union over its files. Only each domain's latest date is kept.
    "subscriber_deliveries": """
        domain VARCHAR NOT NULL, delivery_date DATE NOT NULL, part BIGINT NOT NULL,
        upload_id VARCHAR NOT NULL, segment_id BIGINT, cons_id BIGINT""",
    # segpipe's own facts about the warehouse: the schema version, the highest cons_id,
    # segment_id and interest_id ever given (migrate.py).
    "segpipe_meta": """
        key VARCHAR NOT NULL, value VARCHAR NOT NULL""",
    # Suppression list (SPEC 2, 4): one row per identifier and channel in force now. The
    # identifier is kept as the kind's canonical text (email lower-cased, phone E.164).
    "suppressions": """
        identifier_kind VARCHAR NOT NULL, identifier VARCHAR NOT NULL, channel VARCHAR NOT NULL,
        reason VARCHAR, since TIMESTAMP NOT NULL, upload_id VARCHAR""",
    # Every add and remove of a suppression, append-only.
    "suppression_history": """
        identifier_kind VARCHAR NOT NULL, identifier VARCHAR NOT NULL, channel VARCHAR NOT NULL,
        reason VARCHAR, action VARCHAR NOT NULL, upload_id VARCHAR, "at" TIMESTAMP NOT NULL""",
    # Erased people (SPEC 4): a salted SHA-256 per identifier they had; nothing else is kept.
    "erasures": """
        identifier_kind VARCHAR NOT NULL, identifier_hash VARCHAR NOT NULL,
        "at" TIMESTAMP NOT NULL""",
    # The deployment's salt for erasure hashes, drawn once.
    "erasure_salt": "salt VARCHAR NOT NULL",
    # The one change ever made to an archived file: erasure rewrote it without a person's rows.
    "archive_rewrites": """
        upload_id VARCHAR NOT NULL, file_name VARCHAR NOT NULL, rows_removed BIGINT NOT NULL,
        sha256_after VARCHAR NOT NULL, "at" TIMESTAMP NOT NULL""",
    # One row per file each time a delivery settles it (issue 21): `file` is its path on the
    # server, status delivered / already_on_server / failed (segpipe.exports.deliver).
    "deliveries": """
        destination VARCHAR NOT NULL, file VARCHAR NOT NULL, bytes BIGINT, sha256 VARCHAR,
        "at" TIMESTAMP NOT NULL, status VARCHAR NOT NULL, error VARCHAR, attempts BIGINT,
        address VARCHAR, run_id VARCHAR""",
    # Each settled upload's content fingerprint (ingest/guard.py: decoded, BOM and CRLF aside):
    # the same rows re-sent compressed or from another tool are a duplicate too.
    "upload_contents": """
        upload_id VARCHAR NOT NULL, content_sha256 VARCHAR NOT NULL""",
}

# Columns added after a table first shipped: older warehouse files get them on open.
ADDED_COLUMNS = {
    # `retired`: the sync that removed every member of a segment the destination no longer
    # receives (deleted, or out of its `segments:`); status no longer lists the pair.
    "syncs": ["skipped_no_consent BIGINT DEFAULT 0", "retired BOOLEAN DEFAULT FALSE"],
    # A subscriber segment belongs to its Attentive domain.
    "segments": ["domain VARCHAR"],
}

# An interest group's members: the people whose status in its interest is the group's kind.
GROUP_OF_STATUS = (
    f"CASE m.status WHEN '{InterestStatus.OPTED_IN}' THEN '{InterestGroupKind.OPT_IN}' "
    f"ELSE '{InterestGroupKind.OPT_OUT}' END"
)

# Interest groups are segments too; their members derive from interest_memberships, so the
# public `segment_members` is a view and an opt-in or opt-out is written once, not twice.
SEGMENT_MEMBERS_VIEW = f"""
CREATE OR REPLACE VIEW segment_members AS
SELECT segment_id, cons_id, since FROM segment_memberships
UNION ALL
SELECT g.group_id AS segment_id, m.cons_id, m.since
FROM interest_memberships m
JOIN interest_groups g ON g.interest_id = m.interest_id AND g.kind = {GROUP_OF_STATUS}
"""

PUBLIC_TABLES = [*TABLES, "segment_members"]


# Point lookups of people by email (a small upload's rows): DuckDB answers them from this ART
# index instead of scanning every email, which was the largest part of a small file's cost.
# Not unique: uniqueness of emails is guarded by an asset check, as the keys are.
# member_id: the same for small uploads naming people by their text member id.
INDEXES = {
    "constituents_email": ("constituents", "email"),
    "constituents_member_id": ("constituents", "member_id"),
}

# The layout of TABLES. 1: the person key was `member_id BIGINT` (no segpipe_meta table);
# 2: `cons_id BIGINT` everywhere and `constituents.member_id VARCHAR`.
SCHEMA_VERSION = 2


def schema_fingerprint() -> str:
    """A digest of the layout ensure_schema creates (tables, added columns, indexes, view): a
    warehouse stamped with it needs no DDL when opened (migrate.is_current)."""
    layout = repr((SCHEMA_VERSION, TABLES, ADDED_COLUMNS, INDEXES, SEGMENT_MEMBERS_VIEW))
    return hashlib.sha256(layout.encode()).hexdigest()[:16]


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create whatever of the current layout is missing (see migrate.ensure_current for an
    older warehouse)."""
    for name, columns in TABLES.items():
        con.execute(f'CREATE TABLE IF NOT EXISTS "{name}" ({columns})')
    for name, added in ADDED_COLUMNS.items():
        for column in added:
            con.execute(f'ALTER TABLE "{name}" ADD COLUMN IF NOT EXISTS {column}')
    for index, (table, column) in INDEXES.items():
        con.execute(f'CREATE INDEX IF NOT EXISTS "{index}" ON "{table}" ("{column}")')
    con.execute(SEGMENT_MEMBERS_VIEW)


def alter_column_type(
    con: duckdb.DuckDBPyConnection, table: str, column: str, sql_type: str, using: str | None = None
) -> None:
    """`ALTER TABLE ... ALTER COLUMN ... TYPE`, which DuckDB refuses while an index on the table
    or the segment_members view exists ("Cannot alter entry ... because there are entries that
    depend on it"): they are dropped and made again around it, inside the caller's transaction,
    so the change commits or rolls back with the upload that needed it."""
    indexes = [name for name, (on, _) in INDEXES.items() if on == table]
    for index in indexes:
        con.execute(f'DROP INDEX IF EXISTS "{index}"')
    con.execute("DROP VIEW IF EXISTS segment_members")
    quoted = '"' + column.replace('"', '""') + '"'
    clause = f" USING {using}" if using else ""
    con.execute(f'ALTER TABLE "{table}" ALTER COLUMN {quoted} TYPE {sql_type}{clause}')
    for index in indexes:
        on, indexed = INDEXES[index]
        con.execute(f'CREATE INDEX "{index}" ON "{on}" ("{indexed}")')
    con.execute(SEGMENT_MEMBERS_VIEW)
