"""How big each benchmark is. `full` is the SPEC section 9 workload; `small` is a CI smoke run."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Scale:
    name: str
    constituents: int
    memberships: int
    upload_rows: int
    interests: int
    foreign_codes: int
    small_upload_rows: int
    small_files: int
    small_file_rows: int
    events: int
    # Whole `segpipe run` processes timed per latency stage (their median counts).
    latency_runs: int = 5
    # Turns of the floor, the big upload and what follows it (their medians count): one run
    # of each moves by seconds with what the machine's page cache holds (README, Performance).
    upload_runs: int = 1

    def as_dict(self) -> dict:
        return asdict(self)


SCALES = {
    "full": Scale("full", 5_000_000, 50_000_000, 10_000_000, 1_000, 10_000, 10_000, 1_000, 100,
                  50_000_000, upload_runs=3),
    # A twentieth of full (small files: a tenth), so CI finishes in about a minute.
    "small": Scale("small", 250_000, 2_500_000, 500_000, 1_000, 10_000, 10_000, 100, 100,
                   2_500_000),
    # For the test suite: every stage, a few seconds.
    "tiny": Scale("tiny", 20_000, 200_000, 20_000, 100, 500, 1_000, 10, 100, 100_000, 1),
}  # fmt: skip
