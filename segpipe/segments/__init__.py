"""Data-driven segments: rules from segments.yaml, compiled to DuckDB SQL, refreshed together."""
