"""bench.history and bench.regressions: in a synthetic history of noisy runs (lognormal rounds, a per-run machine
factor) a planted slowdown or quality change is flagged exactly where it was planted, with and without --ratio-to,
and nothing is flagged without a plant; medians-only runs fall back to the step rule; entries are idempotent, named
by time, commit and machine; bad input is a HistoryError naming the file; the CLI exits 0/1/2."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from bench import report
from bench.history import HistoryError, append, entry, fingerprint, gpu_names, load_run, read, reduce_benchmark
from bench.regressions import flagged, judge_rounds, judge_step, regressions

BENCHES = {"test_sampling_speed[ddgan-T]": 0.011, "test_sampling_speed[ddpm-T]": 2.1,
           "test_sampling_speed[ddpm-10]": 0.0077, "test_sampling_speed[stylegan2-1]": 0.0057}
NOISE = dict(zip(BENCHES, (0.05, 0.06, 0.07, 0.08), strict=True))  # lognormal sigma of one round
REF = "test_sampling_speed[ddpm-T]"
SLOW = "test_sampling_speed[ddpm-10]"
QUALITY = {"fd": 3.2, "recall": 0.61}  # extra_info["quality"] of the ddgan-T row
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)


def run_doc(rng: np.random.Generator, i: int, *, factor: float = 1.0, slow: dict[str, float] | None = None,
            quality: dict[str, float] | None = None, rounds: int = 20, quality_noise: float = 0.01) -> dict:
    """A pytest-benchmark document of run i: each benchmark's time x factor x slow[name], `rounds` lognormal rounds
    (none: a noisy median only), quality numbers x quality[metric] with 1 % noise."""
    rows = []
    for name, seconds in BENCHES.items():
        s = seconds * factor * (slow or {}).get(name, 1.0)
        data = s * rng.lognormal(0, NOISE[name], rounds)
        stats = {"median": float(np.median(data)), "data": data.tolist(), "rounds": rounds} if rounds else {
            "median": s * float(rng.lognormal(0, 0.03))}
        info = {"model": name.split("[")[1].split("-")[0], "device": "cpu", "device_name": "cpu (x86_64, 4 threads)",
                "nfe": 4, "batch": 100, "images_per_s": 1.0}
        if name == "test_sampling_speed[ddgan-T]":
            info["quality"] = {k: v * (quality or {}).get(k, 1.0) * float(rng.lognormal(0, quality_noise))
                               for k, v in QUALITY.items()}
        rows.append({"name": name, "stats": stats, "extra_info": info})
    return {"machine_info": {"node": f"runner-{i}", "cpu": {"brand_raw": "AMD EPYC", "count": 4}},
            "commit_info": {"id": f"{i + 1:02d}" * 20, "dirty": False, "branch": "main"},
            "datetime": (T0 + timedelta(hours=i)).isoformat(), "benchmarks": rows}


def write(path: Path, doc) -> Path:
    path.write_text(json.dumps(doc))
    return path


def make_history(tmp_path: Path, *, seed: int = 0, runs: int = 8, rounds: int = 20, last_factor: float | None = None,
                 **latest) -> Path:
    """A history folder of `runs` runs of `rounds` rounds (machine factor ~2 % per run); `latest` (slow=, quality=)
    and `last_factor` apply to the last run only. Runs are appended in shuffled order."""
    rng = np.random.default_rng(seed)
    tmp_path.mkdir(parents=True, exist_ok=True)
    history, docs = tmp_path / "history", []
    for i in range(runs):
        last = i == runs - 1
        factor = last_factor if last and last_factor is not None else float(rng.lognormal(0, 0.02))
        docs.append(run_doc(rng, i, factor=factor, rounds=rounds, **(latest if last else {})))
    for i in rng.permutation(runs):
        append(history, write(tmp_path / f"run{i}.json", docs[i]))
    return history


def statuses(table, kind: str | None = None) -> dict[str, str]:
    rows = table if kind is None else table[table["kind"] == kind]
    return dict(zip(rows["benchmark"], rows["status"], strict=True))


def flagged_names(table) -> set[str]:
    return set(table.loc[table["status"].isin(["SLOWER", "CHANGED"]), "benchmark"])


# Regressions.


@pytest.mark.parametrize("ratio_to", [None, REF])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_regressions_flag_exactly_the_planted_slowdown(tmp_path, seed, ratio_to):
    table = regressions(read(make_history(tmp_path, seed=seed, slow={SLOW: 1.3})), ratio_to=ratio_to)
    speed = statuses(table, "speed")
    assert set(speed) == set(BENCHES) and flagged_names(table) == {SLOW}
    assert speed[SLOW] == "SLOWER" and flagged(table)
    assert {s for n, s in speed.items() if n != SLOW} == ({"ok", "reference"} if ratio_to else {"ok"})
    row = table.set_index("benchmark").loc[SLOW]
    assert row["rule"] == "mann-whitney" and row["p_value"] < 0.01 and 0.2 < row["change"] < 0.4


@pytest.mark.parametrize("ratio_to", [None, REF])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_regressions_flag_nothing_without_a_plant(tmp_path, seed, ratio_to):
    table = regressions(read(make_history(tmp_path, seed=seed)), ratio_to=ratio_to)
    assert len(table) == len(BENCHES) + len(QUALITY) and not flagged(table)
    assert set(table["status"]) <= {"ok", "reference"}  # nor "faster": noise is no improvement either


def test_regressions_ratio_to_cancels_a_uniformly_slower_runner(tmp_path):
    history = make_history(tmp_path, last_factor=1.3, slow={SLOW: 1.3})
    absolute, relative = (regressions(read(history), ratio_to=r) for r in (None, REF))
    assert flagged_names(absolute) == set(BENCHES)  # judged in seconds, the slower runner slows everything
    assert flagged_names(relative) == {SLOW}


def test_regressions_report_a_speed_up_as_faster_not_as_a_failure(tmp_path):
    table = regressions(read(make_history(tmp_path, slow={SLOW: 0.7})))
    assert statuses(table, "speed")[SLOW] == "faster" and not flagged(table)
    assert set(statuses(table).values()) == {"ok", "faster"}


@pytest.mark.parametrize("seed", [0, 1])
def test_regressions_flag_exactly_the_planted_quality_change(tmp_path, seed):
    table = regressions(read(make_history(tmp_path, seed=seed, quality={"fd": 1.2})))
    assert flagged_names(table) == {"test_sampling_speed[ddgan-T] fd"}
    assert statuses(table, "quality") == {"test_sampling_speed[ddgan-T] fd": "CHANGED",
                                          "test_sampling_speed[ddgan-T] recall": "ok"}
    down = regressions(read(make_history(tmp_path / "down", seed=seed, quality={"recall": 0.8})))
    assert flagged_names(down) == {"test_sampling_speed[ddgan-T] recall"}  # either direction


@pytest.mark.parametrize("factor,status", [(1.3, "SLOWER"), (1.0, "ok"), (0.7, "faster")])
def test_regressions_fall_back_to_the_step_rule_without_rounds(tmp_path, factor, status):
    frame = read(make_history(tmp_path, rounds=0, slow={SLOW: factor}))
    assert all(r == [] for r in frame.loc[frame["kind"] == "speed", "rounds"])
    table = regressions(frame)
    speed = table[table["kind"] == "speed"]
    assert set(speed["rule"]) == {"step"} and speed["p_value"].isna().all()
    assert statuses(table) == {**dict.fromkeys(statuses(table), "ok"), SLOW: status}


def test_regressions_ignore_a_significant_but_small_slowdown(tmp_path):
    table = regressions(read(make_history(tmp_path, rounds=200, slow={SLOW: 1.05})))
    row = table.set_index("benchmark").loc[SLOW]
    assert row["p_value"] < 1e-6 and 0.02 < row["change"] < 0.08 and row["status"] == "ok"  # below min_change


def test_judge_rounds_ignores_a_large_but_insignificant_shift():
    pooled = list(np.random.default_rng(0).lognormal(0, 0.3, 60))  # very noisy baseline rounds, median ~1
    verdict = judge_rounds(1.2, [0.8, 1.2, 1.6], np.ones(5), pooled, alpha=0.01, min_change=0.1)
    assert verdict["p_value"] > 0.01 and verdict["status"] == "ok"
    verdict = judge_rounds(1.2, [1.9, 2.0, 2.1, 2.2, 2.3], np.ones(5), pooled, alpha=0.01, min_change=0.1)
    assert verdict["p_value"] < 0.01 and verdict["status"] == "SLOWER"


@pytest.mark.parametrize("previous,status", [([1.0, 1.2, 0.85, 1.1, 0.9], "ok"),  # a 25 % step inside the spread
                                             ([1.0, 1.01, 0.99, 1.0, 1.0], "SLOWER")])
def test_judge_step_needs_a_change_beyond_the_noise_band(previous, status):
    assert judge_step(1.25, np.array(previous), 0.1, two_sided=False)["status"] == status
    quality = judge_step(1.25, np.array(previous), 0.05, two_sided=True)["status"]
    assert quality == ("CHANGED" if status == "SLOWER" else "ok")


def test_regressions_need_two_previous_runs(tmp_path):
    table = regressions(read(make_history(tmp_path, runs=2, slow={SLOW: 2.0})))
    assert set(table["status"]) == {"too few runs"} and not flagged(table)


def test_regressions_judge_each_machine_against_itself(tmp_path):
    history = make_history(tmp_path, slow={SLOW: 1.3})
    other = run_doc(np.random.default_rng(9), 20)  # a later run on another CPU: its own, too short, history
    other["machine_info"]["cpu"]["brand_raw"] = "Intel Xeon"
    append(history, write(tmp_path / "other.json", other))
    table = regressions(read(history))
    assert table["machine"].nunique() == 2 and flagged_names(table) == {SLOW}


def test_regressions_ratio_to_unknown_name_is_an_error(tmp_path):
    with pytest.raises(HistoryError, match="no-such-benchmark"):
        regressions(read(make_history(tmp_path, runs=3)), ratio_to="no-such-benchmark")


# The history.


def test_append_is_idempotent_and_keyed_by_time_commit_and_machine(tmp_path):
    rng = np.random.default_rng(0)
    doc = run_doc(rng, 0)
    path = append(tmp_path / "h", write(tmp_path / "run.json", doc))
    assert append(tmp_path / "h", tmp_path / "run.json") == path and len(list((tmp_path / "h").iterdir())) == 1
    fp = fingerprint("AMD EPYC", 4, [])
    assert path.name == f"20260105T090000Z_010101010101_{fp}.json"
    relabelled = dict(doc, machine_info={**doc["machine_info"], "node": "another-label"})
    assert entry(relabelled)["machine"]["fingerprint"] == fp  # the node name is no part of the machine
    with pytest.raises(HistoryError, match="different run"):
        append(tmp_path / "h", write(tmp_path / "other.json", run_doc(rng, 0)))  # same key, other numbers
    bare = dict(doc, commit_info={})
    assert "_nocommit_" in append(tmp_path / "h", write(tmp_path / "bare.json", bare)).name


def test_fingerprint_and_gpu_names_follow_the_hardware():
    cuda = [{"name": "a", "extra_info": {"device": "cuda", "device_name": "cuda (NVIDIA H100 80GB HBM3)"}},
            {"name": "b", "extra_info": {"device": "cpu", "device_name": "cpu (x86_64, 16 threads)"}},
            {"name": "c", "extra_info": {"gpu": {"available": True, "name": "NVIDIA H100 80GB HBM3"}}}]
    assert gpu_names(cuda) == ["NVIDIA H100 80GB HBM3"]  # "cuda (NAME)" and describe_device's dict agree
    assert gpu_names(cuda[1:2]) == []
    assert fingerprint("X", 16, ["b", "a"]) == fingerprint("X", 16, ["a", "b"]) != fingerprint("X", 8, ["a", "b"])
    doc = run_doc(np.random.default_rng(0), 0)  # CPU benchmarks only, on a GPU machine: its GPU still counts
    doc["machine_info"]["ddgan_bench"] = {"device": "cuda", "name": "NVIDIA H100 80GB HBM3"}
    assert entry(doc)["machine"]["gpus"] == ["NVIDIA H100 80GB HBM3"]


def test_read_returns_one_row_per_number_sorted_by_time(tmp_path):
    frame = read(make_history(tmp_path, runs=4))  # appended in shuffled order
    assert list(frame.columns) == ["time", "run", "commit", "machine", "cpu", "gpus", "kind", "benchmark", "value",
                                   "rounds"]
    assert frame["time"].is_monotonic_increasing and frame["run"].nunique() == 4
    assert len(frame) == 4 * (len(BENCHES) + len(QUALITY)) and frame["machine"].nunique() == 1
    speed = frame[frame["kind"] == "speed"]
    assert all(len(r) == 20 for r in speed["rounds"]) and frame.loc[frame["kind"] == "quality", "rounds"].isna().all()
    assert str(frame["time"].dt.tz) == "UTC" and frame["commit"].iloc[0] == "01" * 6


def test_append_records_trilemma_cells(tmp_path):
    cells = tmp_path / "cells"
    cells.mkdir()
    write(cells / "ddpm-10.json", {"cell": "ddpm-10", "metrics": {"fd_identity": 0.0047, "modes": 25}, "status": "ok",
                                   "timing": {"seconds": 0.0027, "seconds_all": [0.0028, 0.0026, 0.0027]}})
    write(cells / "ddgan.json", {"cell": "ddgan", "metrics": {}, "timing": None, "status": "failed"})
    append(tmp_path / "h", write(tmp_path / "run.json", run_doc(np.random.default_rng(0), 0)), cells_dir=cells)
    frame = read(tmp_path / "h").set_index("benchmark")
    assert frame.loc["cell ddpm-10", "value"] == 0.0027 and frame.loc["cell ddpm-10", "rounds"] == [0.0028, 0.0026,
                                                                                                      0.0027]
    assert frame.loc["cell ddpm-10 modes", "kind"] == "quality" and not frame.index.str.startswith("cell ddgan").any()


def test_read_names_a_truncated_entry(tmp_path):
    history = make_history(tmp_path, runs=3)
    broken = sorted(history.glob("*.json"))[1]
    broken.write_text(broken.read_text()[:100])
    with pytest.raises(HistoryError, match=re.escape(broken.name)) as e:
        read(history)
    assert "delete" in str(e.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    for folder in (tmp_path / "nowhere", empty):
        with pytest.raises(HistoryError, match="history append"):
            read(folder)


@pytest.mark.parametrize("doc", ["{not json", [], {"benchmarks": []}, {"machine_info": {}, "datetime": "x"},
                                 run_doc(np.random.default_rng(0), 0) | {"datetime": ""},
                                 run_doc(np.random.default_rng(0), 0) | {"datetime": "now"},
                                 {"machine_info": {}, "datetime": "2026-01-01T00:00:00", "benchmarks": [{"name": 1}]}])
def test_append_refuses_input_that_is_not_pytest_benchmark_json(tmp_path, doc):
    path = tmp_path / "run.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    with pytest.raises(HistoryError, match=re.escape(str(path))):
        load_run(path)


# The CLI (in process: `python -m bench.report` calls the same main).


def test_cli_exit_codes(tmp_path, capsys):
    clean, slow = make_history(tmp_path / "clean"), make_history(tmp_path / "slow", slow={SLOW: 1.3})
    run = write(tmp_path / "r.json", run_doc(np.random.default_rng(0), 0))
    assert report.main(["history", "append", str(tmp_path / "h"), str(run)]) == 0
    assert report.main(["history", "show", str(clean)]) == 0
    assert capsys.readouterr().out.count("| AMD EPYC |") == 8
    assert report.main(["regressions", str(clean), "--ratio-to", REF]) == 0
    assert "no regression" in capsys.readouterr().out
    out = tmp_path / "report.md"
    assert report.main(["regressions", str(slow), "--window", "4", "--alpha", "0.01", "--min-change", "0.1",
                        "--max-quality-change", "0.05", "--out", str(out)]) == 1
    flagged_section = out.read_text().split("## Flagged")[1].split("## Every")[0]
    (row,) = [line for line in flagged_section.splitlines() if "SLOWER" in line]
    assert SLOW in row and "REGRESSION" in capsys.readouterr().out
    for argv in (["regressions", str(tmp_path / "nowhere")], ["regressions", str(clean), "--ratio-to", "nope"],
                 ["history", "append", str(tmp_path / "h"), str(tmp_path / "missing.json")]):
        assert report.main(argv) == 2
        assert capsys.readouterr().err.startswith("error: ")


@pytest.mark.parametrize("argv,options", [
    (["regressions"], ["HISTORY_DIR", "--ratio-to NAME", "--window N", "--alpha A", "--min-change F",
                       "--max-quality-change F", "--out FILE.md"]),
    (["history", "append"], ["HISTORY_DIR", "RUN.json", "--cells DIR"]),
    (["history", "show"], ["HISTORY_DIR"])])
def test_cli_help_describes_every_option(argv, options, capsys):
    with pytest.raises(SystemExit) as e:
        report.main([*argv, "--help"])
    text = capsys.readouterr().out
    assert e.value.code == 0 and text.startswith(f"usage: python -m bench.report {' '.join(argv)} ")
    assert all(o in text for o in options)
    assert report.main(["--help"]) == 0 and " ".join(argv) in capsys.readouterr().out


def test_paired_benchmarks_keep_no_rounds_since_theirs_are_not_the_reported_time():
    """A paired round times a reference block and a kernel block; median_s is the kernel's per-call time, so a
    rank test on the rounds would test another quantity: the step rule judges these rows."""
    paired = {"name": "test_bias_act_paired_cpu[fc]", "stats": {"median": 0.3, "data": [0.3, 0.31, 0.29]},
              "extra_info": {"method": "paired", "median_s": 0.05, "calls_per_round": 4}}
    plain = {"name": "test_sampling_speed[ddgan-T]", "stats": {"median": 0.01, "data": [0.01, 0.012]}}
    assert reduce_benchmark(paired)["rounds"] == [] and reduce_benchmark(paired)["median_s"] == 0.05
    assert reduce_benchmark(plain)["rounds"] == [0.01, 0.012]
