"""Exports and destination syncs (SPEC section 6): pure logic over DuckDB, no Dagster."""
