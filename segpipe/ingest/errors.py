"""The one exception a whole-file problem raises."""

from segpipe.ingest.masking import display_name, mask


class UploadRejected(Exception):
    """The whole file is refused; the message names the file and the problem.

    The problem is often built from file content (a header name, a value): it is masked here,
    once, so no email or phone reaches `uploads.error`, the errors file, logs or metadata; the
    file is named by its display name. `file_name` stays the name as received."""

    def __init__(self, file_name: str, problem: str, rows_in: int = 0):
        problem = mask(problem)
        super().__init__(f"{display_name(file_name)}: {problem}")
        self.file_name = file_name
        self.problem = problem
        self.rows_in = rows_in


class UploadHeld(UploadRejected):
    """The file is refused for now by the removal guard; it stays pending, and is applied by
    the next `segpipe run --allow-large-removals` (uploads.status `held`)."""
