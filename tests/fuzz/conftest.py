"""The fuzz tests' shared setup: a deterministic Hypothesis profile, and a note of their time.

`make test` prints the time each fuzz run took in pytest's summary, so a fuzz that creeps
toward the suite's budget is seen before it hurts.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, Phase, settings

# CI must be repeatable: derandomized, no example database, no wall-clock deadline and no health
# checks (both time the shared machine too), and no shrinking: a failure prints its input, and
# shrinking a slow case costs minutes. FACEPLANE_FUZZ_RANDOM=1 draws new cases on each run, for a
# search by hand (pytest --hypothesis-seed=N replays one).
settings.register_profile(
    "faceplane-fuzz",
    derandomize=not os.environ.get("FACEPLANE_FUZZ_RANDOM"),
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)

_TIMES: list[tuple[str, float, str]] = []


@pytest.fixture
def fuzz_time() -> Callable[[str, float, str], None]:
    """Record (what was fuzzed, seconds, how much) for the summary line."""

    def record(what: str, seconds: float, amount: str) -> None:
        _TIMES.append((what, seconds, amount))

    return record


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line per fuzz run: its time and its size."""
    if not _TIMES:
        return
    terminalreporter.section("fuzz runs")
    for what, seconds, amount in _TIMES:
        terminalreporter.write_line(f"{what}: {seconds:.1f} s ({amount})")
    total = sum(s for _, s, _ in _TIMES)
    terminalreporter.write_line(f"all fuzz runs: {total:.1f} s")
