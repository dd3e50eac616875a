"""Erasure on request, from the Dagster UI's launchpad."""

import dagster as dg

from segpipe.defs.common import SERIAL_TAG
from segpipe.defs.erasure.ops import forget_person


@dg.job(
    tags=SERIAL_TAG,
    description="Erase one person (config: exactly one of email, phone, member_id, cons_id) "
    "from the warehouse, archive, reports, exports and this instance's storage.",
)
def forget_person_job():
    forget_person()
