"""Reading, normalizing and validating upload files: pure logic, no Dagster, no warehouse."""
