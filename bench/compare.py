"""`python -m bench.compare BASE.json NEW.json`: speed and quality changes between two pytest-benchmark runs.

Three tables (Markdown, through pandas):
- speed: every benchmark in both runs, median time per call (extra_info["median_s"] where a benchmark records
  it, else the median of its rounds), new / base. With --ratio-to NAME each time is first divided by the time
  of benchmark NAME *in the same run*, so a machine that is uniformly slower or faster (shared CI runners)
  cancels out and only changes of one benchmark against the other are judged;
- kernel speed-ups: pairs measured side by side in one run (extra_info op/case/device/impl, "ref" against a
  compiled impl): the speed-up in each run and its change;
- quality: numbers in extra_info["quality"] (metric values), with their change.
A row is flagged when time grows (or a speed-up shrinks) by more than --max-slowdown times, or a quality
number moves by more than --max-quality-change (relative). Exit status: 0 nothing flagged, 1 something
flagged, 2 unreadable input.

Example (what .ci/run does): python -m bench.compare results/bench_ci_baseline.json runs/bench-ci.json
    --ratio-to "test_sampling_speed[ddpm-T]" --out runs/bench-compare.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from bench.speedups import read_run, seconds_per_call
from bench.speedups import speedups as speedup_rows
from bench.tables import markdown


class CompareError(ValueError):
    """A benchmark file that cannot be compared (missing, not pytest-benchmark JSON, unknown --ratio-to)."""


def load(path: Path) -> list[dict]:
    """The `benchmarks` list of a pytest-benchmark JSON file, each with a name and a median time."""
    benchmarks = read_run(path, CompareError)["benchmarks"]
    for b in benchmarks:
        if not isinstance(b, dict) or "name" not in b or not (
                isinstance(b.get("stats"), dict) and "median" in b["stats"] or "median_s" in b.get("extra_info", {})):
            raise CompareError(f"{path}: a benchmark without a name and a median time ({str(b)[:80]}); write the "
                               f"file with `pytest bench/ --benchmark-json` and statistics on")
    return benchmarks


def times(benchmarks: list[dict], ratio_to: str | None) -> pd.Series:
    """Seconds per benchmark name, or multiples of benchmark `ratio_to`'s time in the same run."""
    s = pd.Series({b["name"]: seconds_per_call(b) for b in benchmarks}, dtype=float)
    if ratio_to is None:
        return s
    if ratio_to not in s.index:
        raise CompareError(f"--ratio-to {ratio_to!r} is not a benchmark of this run; names: {sorted(s.index)}")
    return s / s[ratio_to]


def speed_table(base: list[dict], new: list[dict], ratio_to: str | None, max_slowdown: float) -> pd.DataFrame:
    b, n = times(base, ratio_to), times(new, ratio_to)
    unit = "s" if ratio_to is None else "x ref"
    df = pd.DataFrame({"benchmark": b.index.union(n.index)})
    df[f"base ({unit})"] = df["benchmark"].map(b)
    df[f"new ({unit})"] = df["benchmark"].map(n)
    df["new / base"] = df[f"new ({unit})"] / df[f"base ({unit})"]
    df["status"] = [_speed_status(r, max_slowdown) for r in df["new / base"]]
    df.loc[df[f"base ({unit})"].notna() & df[f"new ({unit})"].isna(), "status"] = "MISSING from the new run"
    if ratio_to is not None:
        df.loc[df["benchmark"] == ratio_to, "status"] = "reference"
    return df


def _speed_status(ratio: float, max_slowdown: float) -> str:
    if pd.isna(ratio):
        return "only in one run"
    if ratio > max_slowdown:
        return f"SLOWER ({ratio:.2f}x)"
    return f"faster ({1 / ratio:.2f}x)" if ratio < 1 / max_slowdown else "ok"


def speedups(benchmarks: list[dict]) -> pd.Series:
    """Reference time / compiled time for each (op, case, device, impl) measured side by side in one run."""
    rows = speedup_rows(benchmarks)
    return pd.Series({f"{r['op']} {r['case']} {r['device']} {r['impl']}": r["speedup"] for r in rows}, dtype=float)


def speedup_table(base: list[dict], new: list[dict], max_slowdown: float) -> pd.DataFrame:
    b, n = speedups(base), speedups(new)
    df = pd.DataFrame({"kernel": b.index.union(n.index)})
    df["base speed-up"], df["new speed-up"] = df["kernel"].map(b), df["kernel"].map(n)
    ratio = df["base speed-up"] / df["new speed-up"]  # > 1: the kernel lost ground against its reference
    df["status"] = [_speed_status(r, max_slowdown) for r in ratio]
    return df


def quality(benchmarks: list[dict]) -> pd.Series:
    return pd.Series({f"{b['name']} {k}": float(v) for b in benchmarks
                      for k, v in b.get("extra_info", {}).get("quality", {}).items()
                      if isinstance(v, (int, float))}, dtype=float)


def quality_table(base: list[dict], new: list[dict], max_change: float) -> pd.DataFrame:
    b, n = quality(base), quality(new)
    df = pd.DataFrame({"metric": b.index.union(n.index)})
    df["base"], df["new"] = df["metric"].map(b), df["metric"].map(n)
    change = (df["new"] - df["base"]).abs() / df["base"].abs().clip(lower=1e-12)
    df["relative change"] = change
    df["status"] = ["only in one run" if pd.isna(c) else (f"CHANGED ({c:.2%})" if c > max_change else "ok")
                    for c in change]
    return df


def compare(base_path: Path, new_path: Path, *, ratio_to: str | None = None, max_slowdown: float = 1.5,
            max_quality_change: float = 0.05) -> tuple[str, bool]:
    """(Markdown report, whether anything was flagged)."""
    base, new = load(base_path), load(new_path)
    tables = {"Speed": speed_table(base, new, ratio_to, max_slowdown),
              "Kernel speed-ups (measured side by side in each run)": speedup_table(base, new, max_slowdown),
              "Quality": quality_table(base, new, max_quality_change)}
    flagged = any(df["status"].str.startswith(("SLOWER", "CHANGED", "MISSING")).any()
                  for df in tables.values() if len(df))
    judged = f"time relative to `{ratio_to}` in the same run" if ratio_to else "absolute time per call"
    lines = [f"# Benchmark comparison: {new_path} against {base_path}", "",
             f"Judged on {judged}; flagged beyond {max_slowdown}x slower or {max_quality_change:.0%} quality "
             f"change. Result: **{'REGRESSION' if flagged else 'no regression'}**.", ""]
    for title, df in tables.items():
        if len(df):
            lines += [f"## {title}", "", markdown(df)]
    return "\n".join(lines), flagged


def parser(prog: str = "python -m bench.compare") -> argparse.ArgumentParser:
    """The CLI's arguments; `prog` names the command in usage lines (bench.report's `compare` reuses them)."""
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("base", type=Path, metavar="BASE.json", help="baseline pytest-benchmark JSON (e.g. a committed one)")
    p.add_argument("new", type=Path, metavar="NEW.json", help="the run to judge")
    p.add_argument("--max-slowdown", type=float, default=1.5, metavar="FACTOR",
                   help="flag a time (or lost speed-up) beyond this factor (default 1.5)")
    add_judging_options(p)
    return p


def add_judging_options(p: argparse.ArgumentParser) -> None:
    """--ratio-to, --max-quality-change and --out: how runs are judged and reported, here and in
    bench.regressions."""
    p.add_argument("--ratio-to", metavar="NAME", help="judge each time as a multiple of benchmark NAME's time in the "
                   "same run (e.g. 'test_sampling_speed[ddpm-T]'): immune to a uniformly slower machine or runner")
    p.add_argument("--max-quality-change", type=float, default=0.05, metavar="FRACTION",
                   help="flag a quality number moving by more than this fraction, either way (default 0.05)")
    p.add_argument("--out", type=Path, metavar="FILE.md", help="also write the Markdown report here")


def main(argv: list[str] | None = None, prog: str = "python -m bench.compare") -> int:
    """The CLI: print the report (and write it to --out); exit 0 nothing flagged, 1 flagged, 2 unreadable input."""
    p = parser(prog)
    args = p.parse_args(argv)
    if args.max_slowdown <= 1:
        p.error(f"--max-slowdown must be > 1, got {args.max_slowdown}")
    try:
        text, flagged = compare(args.base, args.new, ratio_to=args.ratio_to, max_slowdown=args.max_slowdown,
                                max_quality_change=args.max_quality_change)
    except CompareError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 1 if flagged else 0


if __name__ == "__main__":
    raise SystemExit(main())
