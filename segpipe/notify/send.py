"""Sending notices: one email (SMTP) and one webhook call (HTTP POST, JSON) per notice.

A warning that cannot be sent is reported back to the caller, never raised: the run it is
about has already happened, and telling nobody must not turn into a second failure.
"""

from __future__ import annotations

import json
import smtplib
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.message import EmailMessage

from segpipe.ingest.normalize import mask_text
from segpipe.notify.notices import GOOD_NEWS, Notice
from segpipe.notify.settings import SmtpSettings, WarningSettings

TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class Recipients:
    email: tuple[str, ...]
    webhooks: tuple[str, ...]


def recipients(
    notice: Notice, everyone: WarningSettings, per_destination: Mapping[str, WarningSettings]
) -> Recipients:
    """The global recipients plus those of the notice's destination; for good news (an export
    is ready) only the settings that ask for it (`export_ready: true`)."""
    chosen = [everyone]
    if notice.destination and notice.destination in per_destination:
        chosen.append(per_destination[notice.destination])
    if notice.kind in GOOD_NEWS:
        chosen = [s for s in chosen if s.export_ready]
    emails = dict.fromkeys(a for s in chosen for a in s.email)
    hooks = dict.fromkeys(s.webhook for s in chosen if s.webhook)
    return Recipients(tuple(emails), tuple(hooks))


def send_email(smtp: SmtpSettings, to: tuple[str, ...], notice: Notice) -> None:
    message = EmailMessage()
    message["Subject"] = f"[segpipe] {notice.subject}"
    message["From"] = smtp.from_address
    message["To"] = ", ".join(to)
    message.set_content(notice.text)
    with smtplib.SMTP(smtp.host, smtp.port, timeout=TIMEOUT_SECONDS) as server:
        server.send_message(message)


def call_webhook(url: str, notice: Notice) -> None:
    request = urllib.request.Request(
        url,
        data=json.dumps(notice.payload()).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "segpipe"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
        response.read()


def send_notices(
    notices: Iterable[Notice],
    everyone: WarningSettings,
    per_destination: Mapping[str, WarningSettings],
    smtp: SmtpSettings,
) -> tuple[int, list[str]]:
    """Send each notice to its recipients; (messages sent, problems sending, masked)."""
    sent, problems = 0, []
    for notice in notices:
        to = recipients(notice, everyone, per_destination)
        attempts = [(f"email to {len(to.email)} address(es)", send_email, (smtp, to.email))]
        attempts = attempts if to.email else []
        attempts += [(f"webhook {url}", call_webhook, (url,)) for url in to.webhooks]
        for label, send, args in attempts:
            try:
                send(*args, notice)
                sent += 1
            except (OSError, smtplib.SMTPException) as error:  # URLError is an OSError
                problems.append(mask_text(f"{notice.kind}: {label} failed: {error}"))
    return sent, problems
