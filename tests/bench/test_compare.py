"""python -m bench.compare (and its alias `python -m bench.report compare`): a planted 2x slowdown is flagged, an
unchanged run passes, a uniformly slower machine passes in --ratio-to mode, lost kernel speed-ups and quality changes
are flagged, bad input exits 2."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import compare
from bench.speedups import markdown, seconds_per_call, speedups

REPO = Path(__file__).resolve().parents[2]
SAMPLING = {"test_sampling_speed[ddgan-T]": 0.011, "test_sampling_speed[ddpm-T]": 2.1,
            "test_sampling_speed[ddpm-10]": 0.0077, "test_sampling_speed[stylegan2-1]": 0.0057}


def run_json(times: dict[str, float] | None = None, ops: dict[tuple[str, str], float] | None = None,
             quality: dict[str, float] | None = None) -> dict:
    """A pytest-benchmark JSON document: sampling rows, (case, impl) kernel rows, a row with quality numbers."""
    rows = [{"name": n, "fullname": f"bench/x.py::{n}", "group": "g", "stats": {"median": s}, "extra_info": {}}
            for n, s in (SAMPLING if times is None else times).items()]
    for (case, impl), s in (ops or {}).items():
        rows.append({"name": f"test_bias_act_speed[{case}-cpu-{impl}]", "stats": {"median": s},
                     "extra_info": {"op": "bias_act", "case": case, "device": "cpu", "impl": impl, "median_s": s}})
    if quality:
        rows.append({"name": "test_prdc_speed[10k-blocks]", "stats": {"median": 1.0},
                     "extra_info": {"quality": quality}})
    return {"machine_info": {}, "commit_info": {}, "benchmarks": rows}


def write(tmp_path: Path, name: str, doc: dict) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


COMMANDS = {"compare": ("bench.compare",), "report": ("bench.report", "compare")}


def cli(*args, command: str = "compare") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *COMMANDS[command], *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_unchanged_run_passes_and_planted_2x_slowdown_is_flagged(tmp_path):
    base = write(tmp_path, "base.json", run_json())
    slow = dict(SAMPLING, **{"test_sampling_speed[ddgan-T]": 2 * SAMPLING["test_sampling_speed[ddgan-T]"]})
    new = write(tmp_path, "new.json", run_json(slow))
    same = cli(base, write(tmp_path, "same.json", run_json()), "--out", tmp_path / "same.md")
    assert same.returncode == 0, same.stdout + same.stderr
    assert "no regression" in (tmp_path / "same.md").read_text()
    flagged = cli(base, new)
    assert flagged.returncode == 1, flagged.stdout
    (row,) = [line for line in flagged.stdout.splitlines() if "SLOWER" in line]
    assert "ddgan-T" in row and "2.00x" in row


def test_report_compare_is_the_same_command(tmp_path):
    base = write(tmp_path, "base.json", run_json())
    new = write(tmp_path, "new.json", run_json(dict(SAMPLING, **{"test_sampling_speed[ddpm-10]": 0.1})))
    ours, alias = cli(base, new, "--ratio-to", "test_sampling_speed[ddpm-T]"), cli(
        base, new, "--ratio-to", "test_sampling_speed[ddpm-T]", command="report")
    assert ours.returncode == alias.returncode == 1
    assert ours.stdout == alias.stdout and "SLOWER" in ours.stdout


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_describes_every_option_and_the_exit_status(command):
    result = cli("--help", command=command)
    assert result.returncode == 0, result.stderr
    prog = "python -m " + " ".join(COMMANDS[command])
    assert result.stdout.startswith(f"usage: {prog} ") and "BASE.json NEW.json" in result.stdout
    for option in ("--ratio-to NAME", "--max-slowdown FACTOR", "--max-quality-change FRACTION", "--out FILE.md"):
        assert option in result.stdout
    assert "Exit status: 0 nothing flagged, 1 something" in result.stdout


def test_report_without_a_command_prints_usage_naming_bench_compare():
    result = subprocess.run([sys.executable, "-m", "bench.report"], cwd=REPO, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2 and "python -m bench.compare" in result.stderr


def test_ratio_mode_ignores_a_uniformly_slower_machine_but_not_a_planted_slowdown(tmp_path):
    base = write(tmp_path, "base.json", run_json())
    machine = {n: 1.8 * s for n, s in SAMPLING.items()}  # the whole runner is slower
    uniform = write(tmp_path, "uniform.json", run_json(machine))
    assert cli(base, uniform).returncode == 1  # absolute times: every row 1.8x
    assert cli(base, uniform, "--ratio-to", "test_sampling_speed[ddpm-T]").returncode == 0
    planted = dict(machine, **{"test_sampling_speed[stylegan2-1]": 2 * machine["test_sampling_speed[stylegan2-1]"]})
    result = cli(base, write(tmp_path, "planted.json", run_json(planted)), "--ratio-to", "test_sampling_speed[ddpm-T]")
    assert result.returncode == 1
    assert [line for line in result.stdout.splitlines() if "SLOWER" in line][0].startswith(
        "| test_sampling_speed[stylegan2-1]")


def test_lost_kernel_speedup_is_flagged_even_when_absolute_times_improve(tmp_path):
    ops = {("fc", "ref"): 0.10, ("fc", "cpu"): 0.05}
    base = write(tmp_path, "base.json", run_json(ops=ops))
    faster_machine = {("fc", "ref"): 0.05, ("fc", "cpu"): 0.05}  # the reference got faster, the kernel did not
    text, flagged = compare.compare(base, write(tmp_path, "new.json", run_json(ops=faster_machine)))
    assert flagged and "| bias_act fc cpu cpu | 2 | 1 | SLOWER (2.00x) |" in text


def test_quality_change_is_flagged(tmp_path):
    base = write(tmp_path, "base.json", run_json(quality={"precision": 0.80, "recall": 0.50}))
    close = write(tmp_path, "a.json", run_json(quality={"precision": 0.81, "recall": 0.5}))
    assert not compare.compare(base, close)[1]
    moved = write(tmp_path, "b.json", run_json(quality={"precision": 0.6, "recall": 0.5}))
    text, flagged = compare.compare(base, moved)
    assert flagged and "CHANGED (25.00%)" in text


def test_bad_input_exits_2_with_a_clear_message(tmp_path):
    base = write(tmp_path, "base.json", run_json())
    missing = cli(base, tmp_path / "nope.json")
    assert missing.returncode == 2 and "no such file" in missing.stderr and "--benchmark-json" in missing.stderr
    truncated = tmp_path / "cut.json"
    truncated.write_text(json.dumps(run_json())[:40])
    assert "not readable JSON" in cli(base, truncated).stderr
    unknown = cli(base, base, "--ratio-to", "test_nothing")
    assert unknown.returncode == 2 and "is not a benchmark of this run" in unknown.stderr
    with pytest.raises(compare.CompareError, match="no 'benchmarks' list"):
        compare.load(write(tmp_path, "other.json", {"cells": []}))
    no_stats = run_json()
    del no_stats["benchmarks"][0]["stats"]
    assert "a benchmark without a name and a median time" in cli(base, write(tmp_path, "s.json", no_stats)).stderr


def test_benchmarks_missing_from_the_new_run_are_flagged_and_new_ones_are_not(tmp_path):
    """A run whose benchmarks were skipped or crashed must not pass as 'no regression'."""
    base = write(tmp_path, "base.json", run_json(quality={"recall": 0.5, "precision": None}))
    text, flagged = compare.compare(base, write(tmp_path, "empty.json", {"benchmarks": []}))
    assert flagged and text.count("MISSING from the new run") == len(SAMPLING) + 1
    more = run_json(dict(SAMPLING, **{"test_sampling_speed[ddgan-2]": 0.006}), quality={"recall": 0.5})
    text, flagged = compare.compare(base, write(tmp_path, "more.json", more))
    assert not flagged and "only in one run" in text


def test_per_call_time_comes_from_extra_info_when_rounds_hold_several_calls():
    bench = {"stats": {"median": 0.02}, "extra_info": {"median_s": 0.001}}
    assert seconds_per_call(bench) == 0.001 and seconds_per_call(copy.deepcopy({"stats": {"median": 0.02}})) == 0.02


def test_paired_rounds_add_a_column_and_stay_out_of_the_separate_ratio(tmp_path):
    doc = run_json(ops={("fc", "ref"): 0.12, ("fc", "cpu"): 0.08, ("conv", "ref"): 0.6, ("conv", "cpu"): 0.1})
    doc["benchmarks"].append({"name": "test_bias_act_paired_cpu[fc]", "stats": {"median": 0.3}, "extra_info": {
        "op": "bias_act", "case": "fc", "device": "cpu", "impl": "cpu", "method": "paired", "median_s": 0.05,
        "ref_median_s": 0.11, "paired_speedup": 2.25}})
    rows = {r["case"]: r for r in speedups(doc["benchmarks"])}
    assert rows["fc"]["speedup"] == pytest.approx(1.5) and rows["fc"]["paired_speedup"] == 2.25
    assert rows["conv"]["paired_speedup"] is None
    text = markdown(list(rows.values()))
    assert "| bias_act | fc | cpu | cpu | 120.00 | 80.00 | 1.50x | 2.25x |" in text
    assert "| bias_act | conv | cpu | cpu | 600.00 | 100.00 | 6.00x | - |" in text
    assert "paired" not in markdown([rows["conv"]])
    only_paired = [b for b in doc["benchmarks"] if b["extra_info"].get("method") == "paired"]  # a -k paired run
    assert speedups(only_paired) == [{"op": "bias_act", "case": "fc", "device": "cpu", "impl": "cpu",
                                      "ref_ms": pytest.approx(110.0), "impl_ms": 50.0, "speedup": pytest.approx(2.2),
                                      "paired_speedup": 2.25}]


def test_sampling_settings_give_one_row_each_against_float32():
    """bench/test_speed_settings.py times every setting in one test; each but float32 becomes a row."""
    settings = {"fp32": {"median_s": 2.0, "speedup": 1.0, "paired_speedup": 1.0},
                "bf16+cl": {"median_s": 0.8, "speedup": 2.5, "paired_speedup": 2.4}}
    bench = {"name": "test_speed_settings[ddgan]", "stats": {"median": 2.8}, "extra_info": {
        "model": "ddgan", "preset": "cifar10", "steps": 4, "batch": 100, "device": "cpu", "device_name": "AMD EPYC",
        "settings": settings}}
    (row,) = speedups([bench])
    assert row == {"op": "ddgan", "case": "cifar10, 4 steps, batch 100", "device": "AMD EPYC", "impl": "bf16+cl",
                   "ref_ms": 2000.0, "impl_ms": 800.0, "speedup": 2.5, "paired_speedup": 2.4}
    assert "| ddgan | cifar10, 4 steps, batch 100 | AMD EPYC | bf16+cl | 2000.00 | 800.00 | 2.50x | 2.40x |" in (
        markdown([row]))
    no_reference = {**bench, "extra_info": {**bench["extra_info"], "settings": {"bf16+cl": settings["bf16+cl"]}}}
    assert speedups([no_reference]) == []  # nothing to compare with, not a KeyError
