"""When segments and exports are overdue: Dagster freshness policies around the daily sync.

The freshness daemon (enabled in segpipe/dagster.yaml) evaluates them; the UI shows each asset
as fresh, or overdue since the deadline it missed.
"""

from datetime import timedelta

import dagster as dg

# The daily destination sync (UTC); the segment refresh schedule runs before it.
SYNC_CRON = "0 6 * * *"

# Segments are overdue when they were not refreshed in the day before a sync: the sync would
# ship lists whose rule windows stopped moving.
SEGMENTS_FRESHNESS = dg.FreshnessPolicy.cron(
    deadline_cron=SYNC_CRON, lower_bound_delta=timedelta(hours=24), timezone="UTC"
)

# Exports are overdue when no sync landed in the hour after 06:00 UTC.
EXPORTS_FRESHNESS = dg.FreshnessPolicy.cron(
    deadline_cron="0 7 * * *", lower_bound_delta=timedelta(hours=1), timezone="UTC"
)
