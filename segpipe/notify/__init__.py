"""Warnings: who is told, by email or webhook, when a sync, a delivery or a file goes wrong.

Dagster-free: the settings of `segments.yaml` (`settings`), what a warning says (`notices`), and
how it is sent (`send`). The Dagster layer (segpipe/defs/warnings) turns runs into notices.
"""
