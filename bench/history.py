"""A history of benchmark runs in a plain folder: one JSON entry per `pytest bench/ --benchmark-json` run (and,
optionally, the cell records of a trilemma run), read back as one pandas frame for bench.regressions.

An entry file is named `<UTC time YYYYmmddTHHMMSSZ>_<commit[:12] or 'nocommit'>_<machine fingerprint>.json`, so
sorting names sorts by time. It holds the run's commit (id, dirty, branch) and time, the machine (a fingerprint,
the CPU model, cores, GPU names, the node name) and, per benchmark, the median seconds per call
(bench.speedups.seconds_per_call), the rounds in seconds per call (stats.data over extra_info calls_per_round
where a round holds several calls), the quality numbers (extra_info["quality"]) and a few extra_info fields; per
trilemma cell, its metrics and its seconds per batch with the timing rounds. The fingerprint hashes the CPU model,
core count and GPU names: one machine gets one fingerprint whatever label or node name it runs under.

    python -m bench.history append HISTORY_DIR RUN.json [--cells DIR]
    python -m bench.history show HISTORY_DIR
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from bench.speedups import read_run, seconds_per_call
from bench.tables import markdown
from ddgan_ref.io import read_json, write_json_atomic

SCHEMA = "ddgan-bench/history-entry/1"
EXTRA_INFO = ("model", "device", "device_name", "nfe", "batch")  # kept per benchmark: what it ran, where
COLUMNS = ("time", "run", "commit", "machine", "cpu", "gpus", "kind", "benchmark", "value", "rounds")


class HistoryError(ValueError):
    """An input or history entry that cannot be read (missing, truncated, not the expected JSON), or an entry that
    would replace a different run's entry."""


def load_run(path: Path) -> dict:
    """A pytest-benchmark --benchmark-json document, checked for the keys the history reads."""
    fix = f"write it with `pytest bench/ --benchmark-json {path}`"
    doc = read_run(path, HistoryError)
    if not isinstance(doc.get("machine_info"), dict) or not isinstance(doc.get("datetime"), str):
        raise HistoryError(f"{path}: no 'machine_info' or 'datetime'; expected pytest-benchmark's --benchmark-json "
                           f"output ({fix})")
    utc_time(doc["datetime"], path)
    for b in doc["benchmarks"]:
        if not (isinstance(b, dict) and isinstance(b.get("name"), str) and isinstance(b.get("stats"), dict)
                and isinstance(b["stats"].get("median"), (int, float))):
            raise HistoryError(f"{path}: a benchmark without name or stats.median ({str(b)[:80]}); expected "
                               f"pytest-benchmark's --benchmark-json output")
    return doc


WORDS = ("now", "today", "NaT", "nat")  # strings pd.Timestamp reads that name no recorded time


def utc_time(text: str, where: Path | str) -> pd.Timestamp:
    """An ISO time as a UTC timestamp; a time without a zone is taken as UTC (pytest-benchmark writes UTC)."""
    try:
        t = pd.Timestamp(text) if isinstance(text, str) and text.strip() and text.strip() not in WORDS else pd.NaT
    except ValueError as e:
        raise HistoryError(f"{where}: time {text!r} is not an ISO date and time") from e
    if pd.isna(t):  # "" and pandas' words ("now", "today") are no record of when a run happened
        raise HistoryError(f"{where}: time {text!r} is not an ISO date and time")
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def _numbers(d: Any) -> dict[str, float]:
    """The finite numbers of a dict (metrics, quality), as floats."""
    items = d.items() if isinstance(d, dict) else ()
    return {k: float(v) for k, v in items
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


def fingerprint(cpu: str | None, cores: int | None, gpus: list[str]) -> str:
    """Ten hex digits of the SHA-1 of the machine's CPU model, core count and sorted GPU names."""
    key = json.dumps({"cpu": cpu, "cores": cores, "gpus": sorted(gpus)}, sort_keys=True)
    return hashlib.sha1(key.encode()).hexdigest()[:10]


def gpu_names(benchmarks: list[dict]) -> list[str]:
    """Sorted distinct names in extra_info device_name / gpu (a name or describe_device's dict) that are no CPU;
    "cuda (NAME)" (bench/test_ops_speed.py's device_name) counts as NAME."""
    names = set()
    for b in benchmarks:
        info = b.get("extra_info") or {}
        if str(info.get("device", "")).startswith("cpu"):
            continue
        for value in (info.get("device_name"), info.get("gpu")):
            name = value.get("name") if isinstance(value, dict) else value
            if isinstance(name, str) and name and not name.lower().startswith("cpu"):
                wrapped = re.fullmatch(r"cuda(?::\d+)? \((.+)\)", name)
                names.add(wrapped.group(1) if wrapped else name)
    return sorted(names)


def machine(doc: dict) -> dict:
    """{fingerprint, cpu, cores, gpus, node} of a pytest-benchmark document: GPUs named by its CUDA benchmarks or
    its session device."""
    info = doc["machine_info"]
    cpu = info.get("cpu") if isinstance(info.get("cpu"), dict) else {}
    # The session's device (bench/conftest.py) names the GPU where only CPU benchmarks ran on a GPU machine too.
    session = info.get("ddgan_bench") or {}
    device = {"extra_info": {"device": session.get("device", "cpu"), "device_name": session.get("name")}}
    brand, cores, gpus = cpu.get("brand_raw"), cpu.get("count"), gpu_names([*doc["benchmarks"], device])
    return {"fingerprint": fingerprint(brand, cores, gpus), "cpu": brand, "cores": cores, "gpus": gpus,
            "node": info.get("node")}


def reduce_benchmark(bench: dict) -> dict:
    """{median_s, rounds (seconds per call), quality, extra_info subset} of one pytest-benchmark row."""
    info = bench.get("extra_info") or {}
    per_round = info.get("calls_per_round") or 1  # bench/test_ops_speed.py times several calls per round
    # A paired benchmark's rounds hold reference and kernel blocks together, not the kernel's time that median_s
    # reports, so its rounds are not kept: the step rule judges it (bench.regressions).
    rounds = [] if info.get("method") == "paired" else bench["stats"].get("data") or []
    return {"median_s": seconds_per_call(bench), "rounds": [float(r) / per_round for r in rounds],
            "quality": _numbers(info.get("quality")), "extra_info": {k: info[k] for k in EXTRA_INFO if k in info}}


def read_cells(cells_dir: Path) -> dict[str, dict]:
    """{cell: {metrics, seconds_per_batch, rounds}} of the finished records in a trilemma run's cells folder."""
    paths = sorted(Path(cells_dir).glob("*.json"))
    if not paths:
        raise HistoryError(f"{cells_dir}: no cell records (*.json); pass a trilemma run's cells folder (OUT/cells)")
    cells = {}
    for path in paths:
        record = read_json(path, HistoryError, "re-run its cell or leave the file out", "cell record")
        if not isinstance(record, dict) or not {"cell", "metrics", "status"} <= record.keys():
            raise HistoryError(f"{path}: not a trilemma cell record (needs cell, metrics, timing, status)")
        if record["status"] != "ok":
            continue  # a failed cell has no numbers to follow
        timing = record.get("timing") or {}
        cells[record["cell"]] = {"metrics": _numbers(record["metrics"]), "seconds_per_batch": timing.get("seconds"),
                                 "rounds": [float(s) for s in timing.get("seconds_all") or []]}
    return cells


def entry(doc: dict, cells: dict[str, dict] | None = None) -> dict:
    """The history entry of a pytest-benchmark document (load_run) and, optionally, trilemma cells (read_cells)."""
    commit = doc.get("commit_info") or {}
    return {"schema": SCHEMA, "time": utc_time(doc["datetime"], "datetime").isoformat(),
            "commit": {"id": commit.get("id"), "dirty": commit.get("dirty"), "branch": commit.get("branch")},
            "machine": machine(doc), "benchmarks": {b["name"]: reduce_benchmark(b) for b in doc["benchmarks"]},
            "cells": cells or {}}


def entry_name(e: dict) -> str:
    """`<UTC time YYYYmmddTHHMMSSZ>_<commit[:12] or 'nocommit'>_<fingerprint>.json`: sorted names sort by time."""
    stamp = utc_time(e["time"], "entry").strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}_{(e['commit']['id'] or 'nocommit')[:12]}_{e['machine']['fingerprint']}.json"


def append(history_dir: Path, json_path: Path, *, cells_dir: Path | None = None) -> Path:
    """Add one run to the history (one file, written atomically); returns its path. Idempotent: appending the same
    run again leaves the identical entry in place; an entry of the same name with other content (another run at the
    same second, commit and machine, or the same run with other cells) is refused with HistoryError."""
    e = entry(load_run(json_path), read_cells(cells_dir) if cells_dir is not None else None)
    path = Path(history_dir) / entry_name(e)
    if path.exists():
        old = read_json(path, HistoryError, f"delete {path} and append again", "history entry")
        if old != json.loads(json.dumps(e)):  # compared as JSON, as it would be written
            raise HistoryError(f"{path} already holds a different run of the same time, commit and machine; "
                               f"delete it first to replace it")
        return path
    return write_json_atomic(e, path)


def load_entry(path: Path) -> dict:
    """One history entry, checked for the keys read() uses."""
    fix = f"delete {path} (or re-append its run with `python -m bench.report history append`)"
    e = read_json(path, HistoryError, fix, "history entry (truncated?)")
    if not (isinstance(e, dict) and e.get("schema") == SCHEMA and isinstance(e.get("benchmarks"), dict)
            and isinstance(e.get("machine"), dict) and isinstance(e.get("time"), str)):
        raise HistoryError(f"{path}: not a history entry of schema {SCHEMA!r}; {fix}")
    return e


def rows(e: dict, run: str) -> list[dict]:
    """The frame rows of one entry: a speed row per benchmark and cell, a quality row per number."""
    m = e["machine"]
    base = {"time": utc_time(e["time"], run), "run": run, "commit": ((e.get("commit") or {}).get("id") or "")[:12],
            "machine": m["fingerprint"], "cpu": m.get("cpu"), "gpus": ", ".join(m.get("gpus") or [])}
    out = []
    for name, b in e["benchmarks"].items():
        out.append({**base, "kind": "speed", "benchmark": name, "value": b["median_s"], "rounds": b["rounds"]})
        out += [{**base, "kind": "quality", "benchmark": f"{name} {k}", "value": v, "rounds": None}
                for k, v in b["quality"].items()]
    for cell, c in (e.get("cells") or {}).items():
        if c.get("seconds_per_batch") is not None:
            out.append({**base, "kind": "speed", "benchmark": f"cell {cell}", "value": c["seconds_per_batch"],
                        "rounds": c.get("rounds") or []})
        out += [{**base, "kind": "quality", "benchmark": f"cell {cell} {k}", "value": v, "rounds": None}
                for k, v in c["metrics"].items()]
    return out


def read(history_dir: Path) -> pd.DataFrame:
    """One row per (entry, benchmark or quality number), sorted by time: time (UTC Timestamp), run (the entry's
    file stem), commit, machine (fingerprint), cpu, gpus (comma-joined), kind ("speed" | "quality"), benchmark
    (pytest name, `<name> <metric>` for quality, `cell <cell>` for trilemma cells), value (median seconds per call
    or per batch; the number), rounds (seconds per call of each round for speed, None for quality)."""
    folder = Path(history_dir)
    paths = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not paths:
        raise HistoryError(f"{folder}: no history entries; add runs with "
                           f"`python -m bench.report history append {folder} RUN.json`")
    records = []
    for path in paths:
        try:
            records += rows(load_entry(path), path.stem)
        except (KeyError, TypeError, AttributeError) as e:
            raise HistoryError(f"{path}: a history entry without {e}; delete it or re-append its run") from e
    df = pd.DataFrame(records, columns=list(COLUMNS))
    return df.sort_values(["time", "run"], kind="stable").reset_index(drop=True)


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per run: time, commit, machine, cpu, gpus and how many speed and quality numbers it holds."""
    keys = ["time", "run", "commit", "machine", "cpu", "gpus"]
    counts = frame.groupby(keys, sort=False, dropna=False)["kind"].value_counts().unstack(fill_value=0)
    df = counts.reindex(columns=["speed", "quality"], fill_value=0).rename_axis(columns=None).reset_index()
    df["time"] = df["time"].dt.strftime("%Y-%m-%d %H:%M:%S UTC")
    return df.drop(columns="run")


def parser(prog: str = "python -m bench.history") -> argparse.ArgumentParser:
    """The CLI's arguments: `append` and `show` subcommands; `prog` names the command in usage lines."""
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="{append,show}")
    a = sub.add_parser("append", help="add one pytest-benchmark run (and its trilemma cells) to the history",
                       description="Add one run to the history as one entry file and print its path. Appending the "
                       "same run again changes nothing; another run under the same name (same second, commit and "
                       "machine) is refused with exit status 2.")
    a.add_argument("history_dir", type=Path, metavar="HISTORY_DIR", help="the history folder (created if missing)")
    a.add_argument("run", type=Path, metavar="RUN.json", help="a `pytest bench/ --benchmark-json RUN.json` file")
    a.add_argument("--cells", type=Path, metavar="DIR", help="also record the finished cells of a trilemma run: "
                   "its cells folder (OUT/cells), one JSON record per cell")
    s = sub.add_parser("show", help="print one Markdown row per run in the history",
                       description="Print one Markdown row per run: time, commit, machine fingerprint, CPU, GPUs, "
                       "and how many speed and quality numbers it holds.")
    s.add_argument("history_dir", type=Path, metavar="HISTORY_DIR", help="the history folder")
    return p


def main(argv: list[str] | None = None, prog: str = "python -m bench.history") -> int:
    """The CLI: `append` prints the entry's path, `show` the runs as Markdown; exit 0, or 2 on unreadable input."""
    args = parser(prog).parse_args(argv)
    try:
        if args.command == "append":
            print(append(args.history_dir, args.run, cells_dir=args.cells))
        else:
            print(markdown(summary(read(args.history_dir))), end="")
    except HistoryError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
