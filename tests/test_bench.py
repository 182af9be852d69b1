"""A smoke run of the benchmark script, so it keeps working; its timings are not checked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parent.parent / "bench" / "bench.py"


def test_benchmark_runs_and_prints_every_scenario() -> None:
    """`bench.py` builds a small generated corpus and prints a row per scenario."""
    result = subprocess.run(
        [sys.executable, BENCH, "--sizes", "200", "--runs", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    scenarios, turns, targets = result.stdout.split("\n\n")
    assert turns.startswith("In turn, median of 5:")
    rows = [line for line in scenarios.splitlines() if line.startswith("| ") and "200" in line]
    assert [row.split("|")[1].strip() for row in rows] == [
        "cold build",
        "rebuild, nothing changed",
        "rebuild, one file edited",
        "watching, a save",
        "cold build with state",
    ]
    assert "markdown-it-py alone, one core, 200 notes:" in result.stdout
    assert "Python start-up and a build's imports:" in result.stdout
    measures = [line.split("|")[1].strip() for line in targets.splitlines()[2:]]
    assert measures[:2] == [
        "rebuild, one file edited, in turn",
        "rebuild, nothing changed, in turn",
    ]
    assert "peak memory, 200 notes" in measures
