"""Regressions in a benchmark history (bench.history): the latest run of each machine against its previous runs.

Each (machine, benchmark) is judged on its own machine only; the baseline is the benchmark's previous `window`
runs (default 5) on that machine, at least MIN_BASELINE_RUNS of them (else "too few runs"):

- speed, with rounds (>= 3 in the latest run and in the baseline): a one-sided Mann-Whitney U test of the latest
  run's rounds against the baseline runs' rounds pooled. SLOWER when p < alpha (default 0.01) AND the latest median
  exceeds the baseline median (the median of the baseline runs' medians) by more than min_change (default 0.10);
  "faster" is the mirror (p of the other side < alpha, baseline / latest - 1 > min_change) and is no failure.
  Why: rounds on shared runners are skewed by outliers (preemption, a noisy neighbour), and a rank test needs no
  normality and uses every round; but with tens of rounds it also finds shifts of a few percent (a runner's clock,
  run-to-run drift the pooled rounds do not model), so the effect size must clear min_change too. The test guards
  against noise, the effect size against tiny-but-significant shifts;
- speed without rounds (entries made from medians only): a step rule on the run medians: SLOWER when the latest
  median exceeds the baseline median by more than min_change AND by more than 3 x 1.4826 x MAD of the baseline
  medians (3 standard deviations of a normal spread, estimated robustly: one odd baseline run does not widen it);
- quality (extra_info["quality"] numbers, trilemma cell metrics): the same step rule on the run values, in both
  directions (a metric may be better high or low): CHANGED when |latest / baseline - 1| > max_quality_change
  (default 0.05) and the move is beyond the noise band.

With ratio_to=NAME every run's speed values and rounds are first divided by benchmark NAME's median in the same run
(as bench.compare --ratio-to), so a runner that is uniformly slower or faster cancels out; runs without NAME drop out
of the speed judgement. The functions here are pure; main() is the CLI (`python -m bench.report regressions`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import mannwhitneyu

from bench.compare import add_judging_options
from bench.history import HistoryError, read
from bench.tables import markdown
from ddgan_ref.io import write_bytes_atomic

MIN_BASELINE_RUNS = 2  # one previous run alone would let a single odd run be the baseline
MIN_ROUNDS = 3  # fewer rounds than this (in the latest run or the pooled baseline): the step rule judges
FLAGS = ("SLOWER", "CHANGED")  # statuses that fail the check; "faster" is reported, not failed
RESULT_COLUMNS = ("machine", "benchmark", "kind", "runs", "baseline", "latest", "change", "p_value", "rule", "status")


def normalise(frame: pd.DataFrame, ratio_to: str) -> pd.DataFrame:
    """The history frame with each run's speed values and rounds divided by benchmark `ratio_to`'s value in the same
    run; speed rows of runs without it are dropped. HistoryError if no run has a speed row named `ratio_to`."""
    speed = frame["kind"] == "speed"
    ref = frame[speed & (frame["benchmark"] == ratio_to)].set_index("run")["value"]
    if ref.empty:
        names = sorted(frame.loc[speed, "benchmark"].unique())
        raise HistoryError(f"--ratio-to {ratio_to!r} is not a speed benchmark of any run; names: {names}")
    df = frame[~speed | frame["run"].isin(ref.index)].copy()
    scale = df["run"].map(ref).where(df["kind"] == "speed", 1.0)
    df["value"] = df["value"] / scale
    df["rounds"] = [None if r is None else [x / s for x in r] for r, s in zip(df["rounds"], scale, strict=True)]
    return df


def noise_band(values: np.ndarray) -> float:
    """3 x 1.4826 x MAD of `values`: three standard deviations of a normal spread, estimated robustly."""
    return 3 * 1.4826 * float(np.median(np.abs(values - np.median(values))))


def judge_step(latest: float, previous: np.ndarray, min_change: float, *, two_sided: bool) -> dict:
    """The step rule on run values: beyond `min_change` relative to the baseline median and beyond its noise band.
    two_sided (quality): any direction is CHANGED; else SLOWER up, "faster" down."""
    baseline, band = float(np.median(previous)), noise_band(previous)
    step = latest - baseline
    beyond = abs(step) > band
    if two_sided:
        changed = beyond and abs(step) > min_change * max(abs(baseline), 1e-12)
        return {"baseline": baseline, "rule": "step", "status": "CHANGED" if changed else "ok"}
    if beyond and latest > baseline * (1 + min_change):
        return {"baseline": baseline, "rule": "step", "status": "SLOWER"}
    faster = beyond and latest * (1 + min_change) < baseline
    return {"baseline": baseline, "rule": "step", "status": "faster" if faster else "ok"}


def judge_rounds(latest: float, rounds: list[float], previous: np.ndarray, pooled: list[float], alpha: float,
                 min_change: float) -> dict:
    """The Mann-Whitney rule: latest rounds against pooled baseline rounds (one-sided, in the direction of the
    change of medians), and the change of medians beyond `min_change`."""
    baseline = float(np.median(previous))
    side = "greater" if latest >= baseline else "less"
    p = float(mannwhitneyu(rounds, pooled, alternative=side).pvalue)
    significant = p < alpha  # NaN (all rounds tied) is not significant
    status = "ok"
    if significant and side == "greater" and latest > baseline * (1 + min_change):
        status = "SLOWER"
    elif significant and side == "less" and latest * (1 + min_change) < baseline:
        status = "faster"
    return {"baseline": baseline, "p_value": p, "rule": "mann-whitney", "status": status}


def judge(series: pd.DataFrame, *, window: int, alpha: float, min_change: float, max_quality_change: float) -> dict:
    """One (machine, benchmark) series (rows in time order, the last is the latest run): baseline, latest, change,
    p_value (NaN for the step rule), rule and status."""
    latest, before = series.iloc[-1], series.iloc[:-1].tail(window)
    out = {"runs": len(before), "latest": float(latest["value"]), "baseline": np.nan, "p_value": np.nan}
    if len(before) < MIN_BASELINE_RUNS:
        return {**out, "rule": None, "status": "too few runs"}
    previous = before["value"].to_numpy(dtype=float)
    if latest["kind"] == "quality":
        out.update(judge_step(out["latest"], previous, max_quality_change, two_sided=True))
    else:
        rounds = list(latest["rounds"] or [])
        pooled = [x for r in before["rounds"] for x in (r or [])]
        if len(rounds) >= MIN_ROUNDS and len(pooled) >= MIN_ROUNDS:
            out.update(judge_rounds(out["latest"], rounds, previous, pooled, alpha, min_change))
        else:
            out.update(judge_step(out["latest"], previous, min_change, two_sided=False))
    out["change"] = out["latest"] / out["baseline"] - 1 if out["baseline"] else np.nan
    return out


def regressions(frame: pd.DataFrame, *, ratio_to: str | None = None, window: int = 5, alpha: float = 0.01,
                min_change: float = 0.10, max_quality_change: float = 0.05) -> pd.DataFrame:
    """One row per (machine, kind, benchmark) present in the machine's latest run (bench.history.read's frame):
    machine, benchmark, kind, runs (in the baseline), baseline and latest (medians; multiples of `ratio_to` with
    it), change (latest / baseline - 1), p_value (NaN where the step rule judged), rule ("mann-whitney" | "step"),
    status ("ok" | "SLOWER" | "faster" | "CHANGED" | "too few runs" | "reference" for `ratio_to` itself)."""
    df = normalise(frame, ratio_to) if ratio_to is not None else frame
    rows = []
    for machine, runs in df.groupby("machine", sort=True):
        last_run = runs["run"].iloc[-1]  # the frame is sorted by time
        for (kind, name), series in runs.groupby(["kind", "benchmark"], sort=True):
            if series["run"].iloc[-1] != last_run:
                continue  # not measured in the latest run: nothing to judge
            verdict = judge(series, window=window, alpha=alpha, min_change=min_change,
                            max_quality_change=max_quality_change)
            if kind == "speed" and name == ratio_to:
                verdict["status"] = "reference"
            rows.append({"machine": machine, "benchmark": name, "kind": kind, **verdict})
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))


def flagged(table: pd.DataFrame) -> bool:
    """Whether any row of a regressions() table fails the check (SLOWER or CHANGED)."""
    return bool(table["status"].isin(FLAGS).any())


def shown(table: pd.DataFrame) -> pd.DataFrame:
    """A regressions() table for reading: its change as a signed percentage."""
    return table.assign(change=[f"{c:+.1%}" if pd.notna(c) else None for c in table["change"]])


def machines(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per machine: fingerprint, CPU, GPUs, runs, and the latest run's time and commit."""
    last = frame.groupby("machine", sort=True).agg(cpu=("cpu", "last"), gpus=("gpus", "last"), runs=("run", "nunique"),
                                                   latest=("time", "last"), commit=("commit", "last"))
    last["latest"] = last["latest"].dt.strftime("%Y-%m-%d %H:%M:%S UTC")
    return last.reset_index()


def report(table: pd.DataFrame, frame: pd.DataFrame, *, source: str, ratio_to: str | None, window: int,
           alpha: float, min_change: float, max_quality_change: float) -> str:
    """The Markdown report of a regressions() table over history `frame` (from folder `source`)."""
    bad = flagged(table)
    judged = f"time relative to `{ratio_to}` in the same run" if ratio_to else "absolute time per call"
    readable = shown(table)
    lines = [f"# Benchmark regressions: the latest run of each machine in {source}", "",
             f"Speed judged on {judged}, against up to {window} previous runs on the same machine (at least "
             f"{MIN_BASELINE_RUNS}): with rounds, one-sided Mann-Whitney U p < {alpha:g} and a median change beyond "
             f"{min_change:.0%}; without rounds, a change beyond {min_change:.0%} and beyond 3 x the MAD-scaled "
             f"spread of the previous medians. Quality numbers: a change beyond {max_quality_change:.0%} and the "
             f"spread, either way. Result: **{'REGRESSION' if bad else 'no regression'}**.", "",
             "## Machines", "", markdown(machines(frame))]
    if bad:
        lines += ["## Flagged", "", markdown(readable[readable["status"].isin(FLAGS)])]
    lines += ["## Every benchmark of the latest runs", "", markdown(readable)]
    return "\n".join(lines)


def parser(prog: str = "python -m bench.regressions") -> argparse.ArgumentParser:
    """The CLI's arguments; `prog` names the command in usage lines (bench.report's `regressions` reuses them)."""
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("history_dir", type=Path, metavar="HISTORY_DIR", help="a history folder (bench.history append)")
    p.add_argument("--window", type=int, default=5, metavar="N",
                   help=f"baseline: up to N previous runs on the same machine (default 5, at least "
                   f"{MIN_BASELINE_RUNS})")
    p.add_argument("--alpha", type=float, default=0.01, metavar="A",
                   help="significance level of the one-sided Mann-Whitney U test on rounds (default 0.01)")
    p.add_argument("--min-change", type=float, default=0.10, metavar="F",
                   help="flag a time only when its median moves by more than this fraction (default 0.10)")
    add_judging_options(p)
    return p


def main(argv: list[str] | None = None, prog: str = "python -m bench.regressions") -> int:
    """The CLI: print the report (and write it to --out); exit 0 nothing flagged, 1 SLOWER or CHANGED, 2 unreadable
    input."""
    p = parser(prog)
    args = p.parse_args(argv)
    if args.window < MIN_BASELINE_RUNS or not 0 < args.alpha < 1 or args.min_change < 0 or args.max_quality_change < 0:
        p.error(f"need --window >= {MIN_BASELINE_RUNS}, 0 < --alpha < 1 and non-negative --min-change and "
                f"--max-quality-change")
    knobs = {"ratio_to": args.ratio_to, "window": args.window, "alpha": args.alpha, "min_change": args.min_change,
             "max_quality_change": args.max_quality_change}
    try:
        frame = read(args.history_dir)
        table = regressions(frame, **knobs)
    except HistoryError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    text = report(table, frame, source=str(args.history_dir), **knobs)
    print(text)
    if args.out:
        write_bytes_atomic(text.encode(), args.out)
    return 1 if flagged(table) else 0


if __name__ == "__main__":
    raise SystemExit(main())
