"""The pandera columns most upload kinds share, each with the reason a person reads when a row
fails it."""

import pandera.polars as pa
import polars as pl

from segpipe.attentive import E164_PATTERN
from segpipe.ingest import normalize


def whole_number(name: str) -> pa.Column:
    return pa.Column(
        pl.String,
        pa.Check.str_matches(normalize.WHOLE_NUMBER_PATTERN, error=f"{name} is not a whole number"),
        nullable=True,
    )


def email() -> pa.Column:
    """An email in canonical form (normalize.email) that meets the one email rule."""
    return pa.Column(
        pl.String,
        pa.Check(
            lambda data: data.lazyframe.select(normalize.email_valid(pl.col(data.key))),
            error="invalid email",
        ),
        nullable=True,
    )


def phone() -> pa.Column:
    """E.164 (normalize.phone_e164); why a number is invalid comes from the kind's
    `phone_problem` column (see phone_problem below), this catches anything else."""
    return pa.Column(
        pl.String,
        pa.Check.str_matches(E164_PATTERN, error="invalid phone number"),
        nullable=True,
    )


PHONE_PROBLEM = "phone_problem"


def phone_problem(written: pl.Expr) -> pl.Expr:
    """The per-row reason column for a phone, for `reject_failures(..., problems=...)`."""
    return normalize.phone_problem(written).alias(PHONE_PROBLEM)


def holds(error: str) -> pa.Column:
    """A boolean the kind derives per row (e.g. "names a person") that must be true."""
    return pa.Column(pl.Boolean, pa.Check.eq(True, error=error))
