"""The erasure step: `segpipe forget` as a Dagster op, configured from the launchpad."""

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from segpipe.defs.common import WAREHOUSE_POOL
from segpipe.defs.resources import DataDirResource
from segpipe.erasure.forget import ForgetError, forget
from segpipe.warehouse.suppressions import IdentifierKind


class ForgetPersonConfig(dg.Config):
    """Exactly one identifier of the person to erase (Luminate's Member ID or Constituent ID,
    or their email or phone)."""

    email: str | None = None
    phone: str | None = None
    member_id: str | None = None
    cons_id: str | None = None

    def identifier(self) -> tuple[IdentifierKind, str]:
        given = [(kind, getattr(self, kind)) for kind in IdentifierKind if getattr(self, kind)]
        if len(given) != 1:
            raise dg.Failure(
                description="give exactly one of email, phone, member_id, cons_id "
                f"({len(given)} given)",
                allow_retries=False,
            )
        return given[0]


@dg.op(pool=WAREHOUSE_POOL, tags={"kind": "duckdb"})
def forget_person(
    context: dg.OpExecutionContext, config: ForgetPersonConfig, data_dir: DataDirResource
) -> None:
    """Erases the person everywhere; the run config that named them is scrubbed as well."""
    kind, value = config.identifier()
    home = Path(context.instance.root_directory)
    try:
        report = forget(
            data_dir.paths,
            kind,
            value,
            at=datetime.now(UTC).replace(tzinfo=None),
            dagster_home=home,
        )
    except ForgetError as error:
        raise dg.Failure(description=f"{kind}: {error}", allow_retries=False) from None
    # Counts only: the log must not name the person it just erased.
    context.log.info("; ".join(report.lines()))
