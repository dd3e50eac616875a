"""The pandera columns most upload kinds share, each with the reason a person reads when a row
fails it."""

import pandera.polars as pa
import polars as pl

from segpipe.ingest import normalize


def whole_number(name: str) -> pa.Column:
    return pa.Column(
        pl.String,
        pa.Check.str_matches(normalize.WHOLE_NUMBER_PATTERN, error=f"{name} is not a whole number"),
        nullable=True,
    )


def email() -> pa.Column:
    return pa.Column(
        pl.String,
        pa.Check.str_matches(normalize.EMAIL_PATTERN, error="invalid email"),
        nullable=True,
    )


def phone() -> pa.Column:
    return pa.Column(
        pl.String,
        pa.Check.str_matches(normalize.E164_PATTERN, error="invalid phone number"),
        nullable=True,
    )


def holds(error: str) -> pa.Column:
    """A boolean the kind derives per row (e.g. "names a person") that must be true."""
    return pa.Column(pl.Boolean, pa.Check.eq(True, error=error))
