"""Trilemma tables (CSV; Markdown and LaTeX through bench.tables) and the plot (seaborn): quality against sampling
time, with coverage, one row per cell; failed cells stay in the table with their reason. `python -m bench.report
compare` runs `python -m bench.compare`."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from bench import compare
from bench.results import CellRecord
from bench.tables import latex, markdown
from ddgan_ref.io import write_bytes_atomic

# Quality axis: the first present. On 2D mixtures the share of samples within 3 std of a mode (FD of 2D points
# sees only means and covariances: uniform noise over the square scores almost as well as the mixture).
QUALITY = {"hq_fraction": "higher", "fid": "lower", "fd_digits": "lower", "fd_mnist": "lower", "fd_identity": "lower"}
COVERAGE = ("modes", "recall", "recall_digits", "recall_mnist", "recall_identity", "coverage", "coverage_digits",
            "coverage_mnist", "coverage_identity", "mode_kl", "precision", "precision_digits", "precision_mnist",
            "precision_identity")


def table(records: list[CellRecord]) -> pd.DataFrame:
    """One row per cell: model, steps, NFE, quality and coverage metrics, time per batch, images/s, memory, and
    the training budget (iterations, images seen, wall-clock minutes) where the harness trained the model. When
    any cell ran under a fast setting (bench.speed), every row names its setting and the fast rows their quality
    cost against the float32 cell: max and mean absolute difference, the quality metric's change, the flag."""
    rows = []
    fast = any(speed_label(r) != "fp32" for r in records)
    for r in records:
        timing = r.timing
        row = {"cell": r.cell, "model": r.label, "steps": r.steps, "nfe": timing.nfe if timing else None}
        if fast:
            row["speed"] = speed_label(r)
        row.update({k: r.metrics[k] for k in (*QUALITY, *COVERAGE) if k in r.metrics})
        seconds = timing.seconds if timing else None
        row["seconds_per_batch"] = seconds
        row["seconds_iqr"] = timing.iqr_seconds if timing else None
        row["timing_noisy"] = timing.noisy if timing else None  # the reason, where the rounds cannot be trusted
        row["images_per_s"] = timing.batch / seconds if seconds else None
        peak = timing.peak_memory_bytes if timing else None
        row["peak_memory_mib"] = peak / 2**20 if peak else None
        budget = (r.training or {}).get("budget") or {}  # set where the harness trained the model
        row["train_iterations"] = budget.get("iterations")
        row["train_images"] = budget.get("images_seen")
        row["train_minutes"] = round(budget["seconds"] / 60, 2) if budget.get("seconds") is not None else None
        plateaued = ((r.training or {}).get("curve") or {}).get("plateaued")  # over the curve's last segment
        row["plateau"] = None if plateaued is None else "yes" if plateaued else "no"
        cost = r.quality_cost
        if cost:
            quality = cost.get("quality_metric")
            row.update({"max_abs_diff": cost["max_abs_diff"], "mean_abs_diff": cost["mean_abs_diff"],
                        "quality_change": cost["delta"].get(quality) if quality else None,
                        "quality_flag": cost["flagged"] or "within tolerance"})
        row["status"] = r.status if r.ok else f"failed: {r.reason or ''}"
        rows.append(row)
    return pd.DataFrame(rows)


def speed_label(record: CellRecord) -> str:
    """The cell's sampling setting (bench.speed notation); records made before settings existed are float32."""
    return (record.speed or {}).get("label", "fp32")


def quality_column(df: pd.DataFrame) -> str | None:
    return next((c for c in QUALITY if c in df.columns), None)


def coverage_column(df: pd.DataFrame) -> str | None:
    return next((c for c in COVERAGE[:5] if c in df.columns), None)


def plot(df: pd.DataFrame, path: Path, title: str) -> Path | None:
    """Quality against seconds per batch of 100 (log scale), marker size = coverage, marker shape = the sampling
    setting where there are fast ones."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    quality, coverage = quality_column(df), coverage_column(df)
    ok = df[df["status"] == "ok"].dropna(subset=[c for c in (quality, "seconds_per_batch") if c])
    if quality is None or ok.empty:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    style = "speed" if "speed" in ok.columns else None  # a fast setting: the model's colour, another marker
    sns.scatterplot(data=ok, x="seconds_per_batch", y=quality, hue="model", style=style, size=coverage,
                    sizes=(60, 400), ax=ax)
    for row in ok.itertuples(index=False):
        fast = f" {row.speed}" if style and row.speed != "fp32" else ""
        ax.annotate(f"{row.model}{fast}", (row.seconds_per_batch, getattr(row, quality)), fontsize=7,
                    xytext=(4, 4), textcoords="offset points")
    ax.set_xscale("log")
    ax.set(xlabel="seconds per batch of 100 samples (log)", ylabel=f"{quality} ({QUALITY[quality]} is better)",
           title=title)
    ax.legend(fontsize=7, bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write(out: Path, records: list[CellRecord], title: str, note: str | None = None) -> list[Path]:
    """trilemma.csv, .md, .tex and .png in out (each written atomically); `note` heads the Markdown table."""
    df = table(records)
    texts = {"trilemma.csv": df.to_csv(index=False), "trilemma.md": (f"> {note}\n\n" if note else "") + markdown(df),
             "trilemma.tex": latex(df)}
    written = [write_bytes_atomic(text.encode(), out / name) for name, text in texts.items()]
    image = plot(df, out / "trilemma.png", title)
    return written + ([image] if image else [])


USAGE = """usage: python -m bench.report compare BASE.json NEW.json [options]

Commands:
  compare   the same as `python -m bench.compare BASE.json NEW.json [options]` (see its --help): speed and
            quality changes between two `pytest bench/ --benchmark-json` runs, as a Markdown report

The trilemma tables and plot are written by `python -m bench.trilemma` through this module's functions."""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "compare":
        return compare.main(argv[1:], prog="python -m bench.report compare")
    asked = argv[:1] in (["-h"], ["--help"])
    print(USAGE, file=sys.stdout if asked else sys.stderr)
    return 0 if asked else 2


if __name__ == "__main__":
    raise SystemExit(main())
