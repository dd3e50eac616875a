"""What a `segpipe` command's exit status means (SPEC section 8).

A module of its own, free of Dagster, so that the command line, the runner and the dry run share
it without importing one another (and light commands such as `segpipe sample` stay light)."""

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # the command or a run failed; see its message
    # Ran, and some file was rejected or held (the others were applied), or a sync was held or
    # names a segment that does not exist (the others synced).
    REJECTED = 2
