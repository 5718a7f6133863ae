"""python -m bench.speedups OUT.json: speed-ups over the reference from a pytest-benchmark JSON: the compiled kernels
of bench/test_ops_speed.py and bench.metrics.prdc vs prdc 0.2 in bench/test_metrics_speed.py (impl "ref"), and the
sampling settings of bench/test_speed_settings.py (float32 eager, "fp32")."""

from __future__ import annotations

import argparse
from pathlib import Path

from ddgan_ref.io import read_json


def read_run(path: Path, error: type[Exception]) -> dict:
    """A pytest-benchmark --benchmark-json document with its `benchmarks` list; `error` is the caller's class
    (bench.compare, bench.history and this command read runs through here)."""
    doc = read_json(path, error, f"write it with `pytest bench/ --benchmark-json {path}` (is it complete?)")
    if not isinstance(doc, dict) or not isinstance(doc.get("benchmarks"), list):
        raise error(f"{path}: no 'benchmarks' list; expected pytest-benchmark's --benchmark-json output")
    return doc


def seconds_per_call(bench: dict) -> float:
    """Median seconds per call of one benchmark: extra_info median_s where it records one (CUDA rounds of
    bench/test_ops_speed.py hold several calls), else the median of its rounds."""
    return float(bench.get("extra_info", {}).get("median_s", bench["stats"]["median"]))


def speedups(benchmarks: list[dict]) -> list[dict]:
    """One row per (op, case, device, impl): the reference's median time over the compiled impl's (separate
    benchmarks), and `paired_speedup` (None if not measured): the median ratio of alternating rounds
    (extra_info method "paired", bench/test_ops_speed.py); then one per sampling setting other than float32."""
    cells: dict[tuple[str, str, str], dict[str, float]] = {}
    paired: dict[tuple[str, str, str, str], dict] = {}
    settings_rows: list[dict] = []
    for bench in benchmarks:
        info = bench.get("extra_info", {})
        settings = info.get("settings", {})  # bench/test_speed_settings.py: one test times every setting
        case = f"{info.get('preset')}, {info.get('steps')} steps, batch {info.get('batch')}"
        settings_rows += [{"op": info["model"], "case": case,
                           "device": info.get("device_name") or info["device"], "impl": label,
                           "ref_ms": 1e3 * settings["fp32"]["median_s"], "impl_ms": 1e3 * cell["median_s"],
                           "speedup": cell["speedup"], "paired_speedup": cell["paired_speedup"]}
                          for label, cell in settings.items() if label != "fp32" and "fp32" in settings]
        if not {"op", "case", "device", "impl"} <= info.keys():
            continue
        if info.get("method") == "paired":
            paired[info["op"], info["case"], info["device"], info["impl"]] = info
        else:
            cells.setdefault((info["op"], info["case"], info["device"]), {})[info["impl"]] = seconds_per_call(bench)
    rows = []
    for (op, case, device), times in sorted(cells.items()):
        for impl, seconds in sorted(times.items()):
            if impl != "ref" and "ref" in times:
                pair = paired.pop((op, case, device, impl), {})
                rows.append({"op": op, "case": case, "device": device, "impl": impl, "ref_ms": 1e3 * times["ref"],
                             "impl_ms": 1e3 * seconds, "speedup": times["ref"] / seconds,
                             "paired_speedup": float(pair["paired_speedup"]) if pair else None})
    return rows + paired_only_rows(paired) + settings_rows


def paired_only_rows(paired: dict[tuple[str, str, str, str], dict]) -> list[dict]:
    """Rows of paired benchmarks without separately timed reference and kernel (a `-k paired` run): both times
    from the paired record itself."""
    return [{"op": op, "case": case, "device": device, "impl": impl, "ref_ms": 1e3 * info["ref_median_s"],
             "impl_ms": 1e3 * info["median_s"], "speedup": info["ref_median_s"] / info["median_s"],
             "paired_speedup": float(info["paired_speedup"])}
            for (op, case, device, impl), info in sorted(paired.items())
            if {"ref_median_s", "median_s"} <= info.keys()]


def markdown(rows: list[dict]) -> str:
    with_paired = any(r.get("paired_speedup") is not None for r in rows)
    head = "| op | case | device | impl | ref (ms) | impl (ms) | speed-up |" + (" paired |" if with_paired else "")
    lines = [head, "|---|---|---|---|---:|---:|---:|" + ("---:|" if with_paired else "")]
    for r in rows:
        paired = r.get("paired_speedup")
        cell = (f" {paired:.2f}x |" if paired is not None else " - |") if with_paired else ""
        lines.append(f"| {r['op']} | {r['case']} | {r['device']} | {r['impl']} | {r['ref_ms']:.2f} "
                     f"| {r['impl_ms']:.2f} | {r['speedup']:.2f}x |{cell}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.speedups", description=__doc__)
    parser.add_argument("json", type=Path, help="a pytest-benchmark JSON written by `pytest bench/ --benchmark-json`")
    args = parser.parse_args(argv)
    rows = speedups(read_run(args.json, SystemExit)["benchmarks"])
    if not rows:
        raise SystemExit(f"{args.json}: no benchmark pairs with extra_info op/case/device/impl (ref and a kernel)")
    print(markdown(rows))


if __name__ == "__main__":
    main()
