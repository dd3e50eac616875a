"""Destination channels and consent: who may be exported, through `segpipe run` end to end."""

from __future__ import annotations

import io
from pathlib import Path

import polars as pl
import pytest

from segpipe.exports.destinations import DestinationError, load_destinations
from segpipe.runner import print_status
from segpipe.vocabulary import Channel
from segpipe_tests.conftest import Deployment, csv

SEGMENTS_YAML = """
destinations:
  - {name: newsletter, key: email, segments: [Friends]}
  - {name: texts, key: phone, segments: [Friends]}
  - {name: crm, key: external_id, segments: [Friends]}
  - {name: warehouse_copy, key: external_id, channel: none, segments: [Friends]}
"""
# A CRM export as Mailchimp-style tools write it: Title Case opt-ins, phones as people type them.
PEOPLE = csv(
    "member_id,email,phone,external_id,first_name,email_opt_in,sms_opt_in",
    "1,ann@example.org,(415) 555-0101,X1,Ann,Yes,No",
    "2,bob@example.org,415.555.0102,X2,Bob,No,Yes",
    "3,cy@example.org,+1 415 555 0103,X3,Cy,TRUE,TRUE",
    "4,dee@example.org,4155550104,X4,Dee,,",
)
FRIENDS = csv("segment,member_id", "Friends,1", "Friends,2", "Friends,3", "Friends,4")


def _column(deployment: Deployment, destination: str, name: str) -> list[str]:
    path = deployment.data.exports / destination / "Friends" / f"{name}.csv"
    frame = pl.read_csv(path, infer_schema=False)
    return sorted(frame[frame.columns[0]].to_list())


def _latest(deployment: Deployment) -> dict[str, tuple]:
    rows = deployment.query(
        "SELECT destination, members, adds, removes, skipped_no_consent FROM syncs "
        'QUALIFY row_number() OVER (PARTITION BY destination ORDER BY "at" DESC) = 1'
    )
    return {row[0]: row[1:] for row in rows.rows()}


@pytest.fixture
def synced(deployment: Deployment) -> Deployment:
    deployment.data.segments_yaml.write_text(SEGMENTS_YAML)
    deployment.drop("constituents_2026-11-01.csv", PEOPLE)
    deployment.drop("manual_segment_2026-11-02.csv", FRIENDS)
    code, printed = deployment.run()
    assert code == 0, printed
    return deployment


def test_each_channel_exports_only_people_who_consented(synced: Deployment):
    assert _column(synced, "newsletter", "members") == ["ann@example.org", "cy@example.org"]
    assert _column(synced, "texts", "members") == ["+14155550102", "+14155550103"]
    # A csv keyed on an id is a mailing list: email consent by default.
    assert _column(synced, "crm", "members") == ["X1", "X3"]
    # channel: none contacts nobody and needs no consent.
    assert _column(synced, "warehouse_copy", "members") == ["X1", "X2", "X3", "X4"]
    assert _latest(synced) == {
        "newsletter": (2, 2, 0, 2),
        "texts": (2, 2, 0, 2),
        "crm": (2, 2, 0, 2),
        "warehouse_copy": (4, 4, 0, 0),
    }


def test_withdrawn_consent_between_two_syncs_is_a_remove(synced: Deployment):
    synced.drop(
        "constituents_2026-11-03_unsubscribes.csv",
        csv("email,email_opt_in,sms_opt_in", "ann@example.org,no,no", "cy@example.org,,false"),
    )
    code, printed = synced.run()
    assert code == 0, printed
    assert _column(synced, "newsletter", "members") == ["cy@example.org"]
    assert _column(synced, "newsletter", "removes") == ["ann@example.org"]
    assert _column(synced, "newsletter", "adds") == []
    assert _column(synced, "texts", "removes") == ["+14155550103"]
    assert _column(synced, "crm", "removes") == ["X1"]
    assert _column(synced, "warehouse_copy", "removes") == []
    assert _latest(synced)["newsletter"] == (1, 0, 1, 3)
    assert "skipped (no consent) 3" in printed

    out = io.StringIO()
    print_status(synced.data, out)
    assert "newsletter / Friends" in out.getvalue()
    assert "skipped (no consent) 3" in out.getvalue()
    # The first sync's copy keeps Ann; the history of the second has her as a remove.
    history = sorted((synced.data.exports / "newsletter" / "Friends" / "history").iterdir())
    assert len(history) == 2
    assert "ann@example.org" in (history[-1] / "removes.csv").read_text()


def _destinations(tmp_path: Path, text: str):
    path = tmp_path / "segments.yaml"
    path.write_text(text)
    return load_destinations(path)


def test_channel_defaults_follow_the_key(tmp_path: Path):
    loaded = _destinations(
        tmp_path,
        """
destinations:
  - {name: a, key: email, segments: [S]}
  - {name: b, key: phone, segments: [S]}
  - {name: c, key: member_id, segments: [S]}
  - {name: d, key: external_id, segments: [S]}
  - {name: e, format: attentive, domain: shop, key: phone, segments: [S]}
  - {name: f, format: attentive, domain: shop, key: email, segments: [S]}
  - {name: g, key: email, channel: none, segments: [S]}
  - {name: h, key: member_id, channel: sms, segments: [S]}
""",
    )
    assert [d.channel for d in loaded] == [
        Channel.EMAIL, Channel.SMS, Channel.EMAIL, Channel.EMAIL,
        Channel.SMS, Channel.EMAIL, Channel.NONE, Channel.SMS,
    ]  # fmt: skip


def test_an_unknown_channel_names_the_destination(tmp_path: Path):
    with pytest.raises(DestinationError, match="destination 'a': unknown channel 'push'"):
        _destinations(
            tmp_path, "destinations:\n  - {name: a, key: email, channel: push, segments: [S]}\n"
        )
