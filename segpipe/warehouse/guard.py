"""The removal guard: a full-replace delivery or a mirror sync that would empty most of a segment
is held, not applied.

A truncated Attentive file (Attentive replaces a segment's members with each delivery) or a
broken rule would otherwise silently wipe a list that a destination then mirrors. Census and
Hightouch guard their mirror syncs the same way (a threshold on the share of rows removed).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import yaml

from segpipe.warehouse.sql import frame

DEFAULT_MAX_REMOVAL_SHARE = 0.5
# Small segments swing by large shares in normal use; the guard watches lists worth guarding.
EXEMPT_BELOW = 20
SETTING = "max_removal_share"
FORCE_FLAG = "--allow-large-removals"
# The guard is lifted per Dagster run, by this tag set to "true": from the UI, or on every run
# `segpipe run --allow-large-removals` launches. Never by the environment: a variable set once
# would leave every later delivery and sync unguarded without a word.
ALLOW_TAG = "segpipe/allow_large_removals"
# What that switch was once called: `segpipe run` says it is ignored when it finds it set.
RETIRED_ALLOW_ENV = "SEGPIPE_ALLOW_LARGE_REMOVALS"


@dataclass(frozen=True)
class RemovalLimit:
    """At most `max_share` (0..1) of a segment of `exempt_below` or more members may leave in
    one delivery or sync."""

    max_share: float = DEFAULT_MAX_REMOVAL_SHARE
    exempt_below: int = EXEMPT_BELOW


DEFAULT_LIMIT = RemovalLimit()


class RemovalLimitError(ValueError):
    """`max_removal_share` in segments.yaml is not a number between 0 and 1."""


def removal_limit(segments_yaml: Path) -> RemovalLimit:
    """The guard configured in segments.yaml (top-level `max_removal_share`, default 0.5); a run
    tagged ALLOW_TAG does not ask for it."""
    share = DEFAULT_MAX_REMOVAL_SHARE
    if segments_yaml.exists():
        try:
            document = yaml.safe_load(segments_yaml.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError:
            document = {}  # reported by the segment rules' own reading of the file
        if isinstance(document, dict) and SETTING in document:
            share = document[SETTING]
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
        raise RemovalLimitError(
            f"{segments_yaml.name}: {SETTING} must be a number from 0 to 1, not {share!r}"
        )
    return RemovalLimit(float(share))


@dataclass(frozen=True)
class HeldRemoval:
    segment: str
    members: int
    removes: int

    def describe(self, limit: RemovalLimit) -> str:
        return (
            f"segment {self.segment!r} would lose {self.removes} of its {self.members} members "
            f"({self.removes / self.members:.0%}, more than the {SETTING} of "
            f"{limit.max_share:.0%})"
        )


def held_message(what: str, held: list[HeldRemoval], limit: RemovalLimit) -> str:
    """What was held and how to force it, one sentence a person acts on."""
    reasons = "; ".join(h.describe(limit) for h in held)
    return (
        f"{what} held by the removal guard: {reasons}; if this is intended, run "
        f"`segpipe run {FORCE_FLAG}` (or raise {SETTING} in segments.yaml)"
    )


def too_many_removals(
    con: duckdb.DuckDBPyConnection, counts: str, limit: RemovalLimit | None
) -> list[HeldRemoval]:
    """The rows of the relation `counts` (`segment` name, `members` before, `removes`) that the
    guard holds: `removes` over `max_share` of `members`, for `members` >= `exempt_below`."""
    if limit is None:
        return []
    rows = frame(
        con,
        f"SELECT segment, members, removes FROM ({counts}) "
        "WHERE members >= ? AND removes > ? * members ORDER BY segment",
        [limit.exempt_below, limit.max_share],
    )
    return [HeldRemoval(**row) for row in rows.iter_rows(named=True)]


class RemovalHeld(Exception):
    """A mirror sync held by the guard; the message names the destination, the segments, the
    counts and how to force it."""
