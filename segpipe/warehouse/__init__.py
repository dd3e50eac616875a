"""The DuckDB warehouse: its public tables and the SQL that changes them (SPEC section 4)."""
