"""Each received file is one partition of the upload assets, keyed by its upload_id."""

import dagster as dg

uploads_partitions = dg.DynamicPartitionsDefinition(name="uploads")
