"""``bench/run.py``: every target it judges names a benchmark it runs and a figure that
benchmark reports, and ``--json`` prints one object with the figures, the targets and their
verdicts. (No timing is asserted: the benchmark is the measure, not the test.)"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from benchkit import load_bench  # noqa: E402

run = load_bench("run.py")
PREFIXES = ("sqlite", "postgresql", "pg", "funding_detect_ms")
"""What the benches put before a figure's name with an f-string (the database, the measure)."""


def test_every_target_names_a_benchmark_and_a_figure_it_reports() -> None:
    for target in run.TARGETS:
        assert target.bench in run.BENCHES, target
        assert target.op in run.OPS, target
        source = (BENCH / run.BENCHES[target.bench]).read_text()
        # the figure's name (or its target's) is written out in the bench, whole or after an
        # f-string's prefix
        names = {
            node.value
            for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
        }
        rest = target.key
        for prefix in PREFIXES:
            rest = rest.removeprefix(f"{prefix}_")
        assert names & {target.key, f"{target.key}_target", rest, f"_{rest}"}, target


def test_every_benchmark_has_a_measure_function() -> None:
    for file in run.BENCHES.values():
        assert callable(getattr(load_bench(file), "measure", None)), file


def test_a_missed_target_is_judged_missed_and_an_absent_one_not_measured() -> None:
    figures = {"audit": {"ratio_1core": 0.5, "ratio_2core": 1.3}}

    rows = {row["figure"]: row for row in run.judge(figures, ["audit", "rebuild"])}

    assert rows["ratio_1core"]["met"] is False
    assert rows["ratio_2core"]["met"] is True
    assert rows["seconds_100k"]["met"] is None
    assert "sqlite_ratio" not in rows  # writes did not run: not in the table at all


def test_json_is_one_object_with_figures_targets_and_errors(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--quick", "--json", "--only", "reputation"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300, check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["quick"] is True and out["errors"] == {}
    assert out["figures"]["reputation"]["entries"] == 100_000
    assert out["figures"]["reputation"]["ratio"] > 0
    assert out["targets"] == []  # the reputation indexer has no target of its own
