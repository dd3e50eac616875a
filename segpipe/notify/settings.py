"""`warnings:` in segments.yaml, globally and per destination, and the SMTP server to use.

```yaml
warnings:                       # global: every warning
  email: [data-team@example.org]
  webhook: https://hooks.example.org/segpipe
  export_ready: false           # also tell them when a destination's export is ready (Lumen)
  smtp: {host: mail.example.org, port: 25, from: segpipe@example.org}
destinations:
  - name: selligent
    warnings: {email: [crm@example.org]}   # this destination's warnings, on top of the global
```
SMTP settings come from `warnings.smtp`, else from the environment (`SEGPIPE_SMTP_HOST`,
`SEGPIPE_SMTP_PORT`, `SEGPIPE_SMTP_FROM`; default localhost:25).
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path

import yaml

SMTP_HOST_ENV, SMTP_PORT_ENV, SMTP_FROM_ENV = (
    "SEGPIPE_SMTP_HOST",
    "SEGPIPE_SMTP_PORT",
    "SEGPIPE_SMTP_FROM",
)
_ALLOWED = {"email", "webhook", "export_ready"}
_GLOBAL_ALLOWED = _ALLOWED | {"smtp"}
_SMTP_ALLOWED = {"host", "port", "from"}
# An address a mail server accepts: one @, no spaces; deliverability is the server's business.
_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+$")


class WarningsError(ValueError):
    """A `warnings:` setting that cannot be used; the message names where it is."""


@dataclass(frozen=True)
class WarningSettings:
    """Who hears about a warning: email addresses, a webhook URL, and whether they also want
    a note when an export is ready."""

    email: tuple[str, ...] = ()
    webhook: str | None = None
    export_ready: bool = False

    @property
    def anyone(self) -> bool:
        return bool(self.email or self.webhook)


@dataclass(frozen=True)
class SmtpSettings:
    host: str = "localhost"
    port: int = 25
    sender: str = ""

    @property
    def from_address(self) -> str:
        return self.sender or f"segpipe@{socket.getfqdn()}"


@dataclass(frozen=True)
class GlobalWarnings:
    settings: WarningSettings
    smtp: SmtpSettings


def parse_warnings(entry, where: str) -> WarningSettings | None:
    """A `warnings:` mapping (`where` names it in errors); None when absent."""
    if entry is None:
        return None
    if not isinstance(entry, dict):
        raise WarningsError(f"{where}: `warnings` must be a mapping with email and/or webhook")
    allowed = _GLOBAL_ALLOWED if where == "warnings" else _ALLOWED
    if unknown := sorted(set(entry) - allowed):
        raise WarningsError(
            f"{where}: unknown warnings setting(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(sorted(allowed))}"
        )
    email = entry.get("email") or []
    if isinstance(email, str):
        email = [email]
    if not isinstance(email, list) or not all(
        isinstance(a, str) and _ADDRESS.match(a) for a in email
    ):
        raise WarningsError(f"{where}: `warnings.email` must list email addresses")
    webhook = entry.get("webhook")
    if webhook is not None and not (
        isinstance(webhook, str) and webhook.startswith(("http://", "https://"))
    ):
        raise WarningsError(f"{where}: `warnings.webhook` must be an http(s) URL")
    ready = entry.get("export_ready", False)
    if not isinstance(ready, bool):
        raise WarningsError(f"{where}: `warnings.export_ready` must be true or false")
    return WarningSettings(tuple(email), webhook, ready)


def _smtp(entry) -> SmtpSettings:
    entry = entry or {}
    if not isinstance(entry, dict) or set(entry) - _SMTP_ALLOWED:
        allowed = ", ".join(sorted(_SMTP_ALLOWED))
        raise WarningsError(f"warnings.smtp: expected a mapping of {allowed}")
    port = entry.get("port", os.environ.get(SMTP_PORT_ENV, 25))
    try:
        port = int(port)
    except (TypeError, ValueError):
        raise WarningsError(f"warnings.smtp: port {port!r} is not a number") from None
    return SmtpSettings(
        host=str(entry.get("host") or os.environ.get(SMTP_HOST_ENV) or "localhost"),
        port=port,
        sender=str(entry.get("from") or os.environ.get(SMTP_FROM_ENV) or ""),
    )


def load_global_warnings(path: Path) -> GlobalWarnings:
    """The top-level `warnings:` of segments.yaml at `path` (nobody when absent), read on its
    own so that a broken destination can still be warned about. Raises WarningsError."""
    document = {}
    if path.exists():
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError:
            document = {}  # the destinations loader reports the YAML error itself
    if not isinstance(document, dict):
        document = {}
    entry = document.get("warnings")
    settings = parse_warnings(entry, "warnings") or WarningSettings()
    smtp = _smtp(entry.get("smtp") if isinstance(entry, dict) else None)
    return GlobalWarnings(settings, smtp)
