"""The suppression list: identifiers never to be contacted on a channel (SPEC 2, 4, 6).

A suppression names an identifier, not a person: it holds whatever later uploads say, and a
person who arrives later with that identifier is suppressed from the start (Census's and
Klaviyo's suppression lists subtract from every audience the same way). `suppressed_people`
is the one place that turns suppressions into people; exports and the constituent upload's
"suppressed since" notes both read it.
"""

from __future__ import annotations

from enum import StrEnum

import duckdb

from segpipe.warehouse import before_images


class IdentifierKind(StrEnum):
    """What a suppression (or an erasure) identifies a person by; Luminate's Member ID and
    Constituent ID, and the two contact points."""

    EMAIL = "email"
    PHONE = "phone"
    MEMBER_ID = "member_id"
    CONS_ID = "cons_id"


class SuppressionChannel(StrEnum):
    EMAIL = "email"
    SMS = "sms"
    ALL = "all"


class SuppressionAction(StrEnum):
    ADD = "add"
    REMOVE = "remove"


# The person key of constituents, and how each identifier kind finds it: the only lines that
# know which constituents column an identifier lives in.
PERSON_KEY = "cons_id"
MATCHES = {
    IdentifierKind.EMAIL: "c.email = s.identifier",
    IdentifierKind.PHONE: "c.phone = s.identifier",
    IdentifierKind.MEMBER_ID: "c.member_id = s.identifier",
    IdentifierKind.CONS_ID: "c.cons_id = TRY_CAST(s.identifier AS BIGINT)",
}


def suppressed_people(channels: tuple[str, ...] | None = None) -> str:
    """SQL for the rows (person, channel, since, reason) of every suppression that names an
    existing constituent, `person` being constituents' person key; only suppressions on one of
    `channels` when given. One equi-join per identifier kind (an OR join would be a nested
    loop over constituents)."""
    where = ""
    if channels:
        where = " AND s.channel IN (" + ", ".join(f"'{SuppressionChannel(c)}'" for c in channels)
        where += ")"
    return " UNION ALL ".join(
        f"SELECT c.{PERSON_KEY} AS person, s.channel, s.since, s.reason "
        f"FROM suppressions s JOIN constituents c ON s.identifier_kind = '{kind}' AND {match}"
        f"{where}"
        for kind, match in MATCHES.items()
    )


def channels_suppressing(channel: str) -> tuple[str, ...]:
    """The suppression channels that stop a contact on `channel` (email or sms): its own and
    `all`."""
    return (SuppressionChannel(channel), SuppressionChannel.ALL)


def apply_changes(con: duckdb.DuckDBPyConnection, changes: str, upload_id: str, at) -> None:
    """Apply (identifier_kind, identifier, channel, reason, action) rows of `changes`.

    An add of an identifier and channel already suppressed keeps the first one (its `since`
    and reason are what a person is told); a remove with channel `all` lifts every channel of
    that identifier, otherwise only that channel. Every row goes to suppression_history, and
    the suppressions it is about to lift or add to its before-images (`segpipe undo`)."""
    before_images.keep(con, upload_id, "suppressions", _changed_keys(changes))
    con.execute(
        f"""
        INSERT INTO suppression_history
        SELECT identifier_kind, identifier, channel, reason, action, ?, ? FROM {changes}
        """,
        [upload_id, at],
    )
    con.execute(
        f"""
        DELETE FROM suppressions s USING (SELECT * FROM {changes} WHERE action = 'remove') r
        WHERE s.identifier_kind = r.identifier_kind AND s.identifier = r.identifier
          AND (r.channel = 'all' OR s.channel = r.channel)
        """
    )
    con.execute(
        f"""
        INSERT INTO suppressions
        SELECT identifier_kind, identifier, channel, arg_max(reason, _line), ?, ?
        FROM {changes} a
        WHERE action = 'add' AND NOT EXISTS (
            SELECT 1 FROM suppressions s WHERE s.identifier_kind = a.identifier_kind
              AND s.identifier = a.identifier AND s.channel = a.channel)
        GROUP BY identifier_kind, identifier, channel
        """,
        [at, upload_id],
    )


def _changed_keys(changes: str) -> str:
    """SQL: the (identifier_kind, identifier, channel) the rows of `changes` change: those in
    force that a remove lifts, and those an add puts in force (an add of one already in force
    and not lifted changes nothing, so no later upload's undo waits on it)."""
    same = (
        "s.identifier_kind = c.identifier_kind AND s.identifier = c.identifier "
        "AND s.channel = c.channel"
    )
    return f"""
        SELECT s.identifier_kind, s.identifier, s.channel FROM suppressions s JOIN {changes} c
          ON c.action = '{SuppressionAction.REMOVE}' AND s.identifier_kind = c.identifier_kind
         AND s.identifier = c.identifier
         AND (c.channel = '{SuppressionChannel.ALL}' OR s.channel = c.channel)
        UNION
        SELECT c.identifier_kind, c.identifier, c.channel FROM {changes} c
        WHERE c.action = '{SuppressionAction.ADD}'
          AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE {same})
    """


# The opt-in flag a constituent row sets, and the suppression channels that override it.
_OPT_INS = {"email_opt_in": SuppressionChannel.EMAIL, "sms_opt_in": SuppressionChannel.SMS}


def note_overridden_opt_ins(con: duckdb.DuckDBPyConnection, resolved: str, person: str) -> None:
    """Rows of a constituent upload's `resolved` table (columns email, phone, email_opt_in,
    sms_opt_in and the person key `person`, NULL for new people) that opt a suppressed person
    in on a suppressed channel still apply: the suppression stays in force and the row's
    `_reason` says so, e.g. "suppressed since 2026-11-23: complaint", for the errors report.

    Matches the row's own identifiers against the suppressions, so a suppression by an
    identifier a new person brings is reported too."""
    from segpipe.ingest.validate import OUTCOME, REASON

    by_row = " UNION ALL ".join(
        f"SELECT r.rowid AS row_id, s.channel, s.since, s.reason FROM {resolved} r "
        f"JOIN suppressions s ON s.identifier_kind = '{kind}' AND s.identifier = r.{column} "
        f"WHERE r.{OUTCOME} IS NULL"
        for kind, column in (
            (IdentifierKind.EMAIL, "email"),
            (IdentifierKind.PHONE, "phone"),
            (IdentifierKind.MEMBER_ID, "member_id"),
        )
    )
    # The person the row updates may carry suppressed identifiers the row does not repeat.
    by_row += (
        f" UNION ALL SELECT r.rowid, p.channel, p.since, p.reason FROM {resolved} r "
        f"JOIN ({suppressed_people()}) p ON p.person = r.{person} WHERE r.{OUTCOME} IS NULL"
    )
    overridden = " OR ".join(
        f"(r.{flag} AND s.channel IN ('{channel}', 'all'))" for flag, channel in _OPT_INS.items()
    )
    con.execute(
        f"""
        UPDATE {resolved} SET {REASON} = note.reason
        FROM (
            SELECT s.row_id, 'suppressed since ' || strftime(min(s.since), '%Y-%m-%d')
                   || coalesce(': ' || arg_min(s.reason, s.since), '') AS reason
            FROM ({by_row}) s JOIN {resolved} r ON r.rowid = s.row_id
            WHERE {overridden}
            GROUP BY s.row_id
        ) AS note
        WHERE {resolved}.rowid = note.row_id
        """
    )
