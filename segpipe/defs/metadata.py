"""Dagster's standard metadata for segpipe's assets: table names, column schemas, row counts.

The UI shows `dagster/column_schema` as the asset's Columns, `dagster/row_count` and
`dagster/partition_row_count` as its row counts over time, and `dagster/table_name` as the
table an asset lands in (https://docs.dagster.io/guides/build/assets/metadata-and-tags).
"""

import dagster as dg
import pandera.polars as pa

from segpipe.warehouse.catalog import public_columns

# DuckDB's schema for every segpipe table; the catalog is the database's own name.
SCHEMA = "main"


def table_schema(table: str) -> dg.TableSchema:
    """A public table's columns (name, DuckDB type, nullable) from the schema definitions."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                column.name,
                column.type,
                constraints=dg.TableColumnConstraints(nullable=column.nullable),
            )
            for column in public_columns()[table]
        ]
    )


def validated_schema(schema: pa.DataFrameSchema) -> dg.TableSchema:
    """An upload kind's validated columns from its pandera schema: polars type, nullable, and
    the reasons a row fails the column's checks."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name,
                str(column.dtype),
                constraints=dg.TableColumnConstraints(
                    nullable=bool(column.nullable),
                    other=[check.error for check in column.checks if check.error],
                ),
            )
            for name, column in schema.columns.items()
        ]
    )


def table_metadata(table: str, catalog: str | None = None) -> dict[str, object]:
    """`dagster/table_name` (catalog.main.table when the catalog is known) and
    `dagster/column_schema` of a public table."""
    name = f"{catalog}.{SCHEMA}.{table}" if catalog else f"{SCHEMA}.{table}"
    return {
        "dagster/table_name": name,
        "dagster/column_schema": table_schema(table),
    }
