"""Trilemma tables (CSV; Markdown and LaTeX through bench.tables) and the plot (seaborn): quality against sampling
time, with coverage, one row per cell; failed cells stay in the table with their reason. `python -m bench.report
compare` runs `python -m bench.compare`, `history` runs `python -m bench.history`, `regressions` runs
`python -m bench.regressions`, `machines` runs `python -m bench.machines` and `html` runs `python -m bench.page`."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from bench import compare, curves, history, machines, page, paper, regressions
from bench.plots import write_png
from bench.results import CellRecord
from bench.tables import latex, markdown
from bench.timing import PaperTime
from ddgan_ref.io import write_bytes_atomic

# Quality axis: the first present. On 2D mixtures the share of samples within 3 std of a mode (FD of 2D points
# sees only means and covariances: uniform noise over the square scores almost as well as the mixture).
QUALITY = {"hq_fraction": "higher", "fid": "lower", "fd_digits": "lower", "fd_mnist": "lower", "fd_identity": "lower"}
COVERAGE = ("modes", "recall", "recall_digits", "recall_mnist", "recall_identity", "coverage", "coverage_digits",
            "coverage_mnist", "coverage_identity", "mode_kl", "digit_kl", "confident_share", "precision",
            "precision_digits", "precision_mnist", "precision_identity")

# Every table has these columns. Any other is left out where no cell fills it: timing_noisy where every timing is
# trusted, the training budget in a table of given checkpoints, the columns a record older than them lacks.
CORE = ("cell", "model", "steps", "nfe", "seconds_per_batch", "images_per_s", "status")


def timing_columns(timing: PaperTime | None) -> dict:
    """Time per batch with its spread and why the rounds cannot be trusted (where so), images/s, peak memory."""
    seconds = timing.seconds if timing else None
    peak = timing.peak_memory_bytes if timing else None
    return {"seconds_per_batch": seconds, "seconds_iqr": timing.iqr_seconds if timing else None,
            "timing_noisy": timing.noisy if timing else None,
            "images_per_s": timing.batch / seconds if seconds else None,
            "peak_memory_mib": peak / 2**20 if peak else None}


def training_columns(r: CellRecord, trained_fast: bool) -> dict:
    """The training budget where the harness trained the model (iterations, images seen, minutes), the setting it
    trained under where any model trained under another than float32, and whether its curve plateaued."""
    budget = (r.training or {}).get("budget") or {}
    row = {"train_iterations": budget.get("iterations", (r.training or {}).get("iterations")),
           "train_images": budget.get("images_seen"),
           "train_minutes": round(budget["seconds"] / 60, 2) if budget.get("seconds") is not None else None}
    if trained_fast:
        row["train_speed"] = r.train_speed
    plateaued = ((r.training or {}).get("curve") or {}).get("plateaued")  # over the curve's last segment
    row["plateau"] = None if plateaued is None else "yes" if plateaued else "no"
    return row


def table(records: list[CellRecord]) -> pd.DataFrame:
    """One row per cell: model, its preset where any differs from the dataset's own, steps, NFE, quality and
    coverage metrics, time per batch, images/s, memory, and the training budget (iterations, images seen,
    wall-clock minutes) where the harness trained the model, and the setting it trained under where any model
    trained under another than float32 (bench.train --speed). When any cell ran under a fast setting
    (bench.speed), every row names its setting and the fast rows their quality cost against the float32 cell: max
    and mean absolute difference, the quality metric's change, the flag. A column no cell fills is left out,
    except CORE's."""
    rows = []
    fast = any(r.speed_label != "fp32" for r in records)
    trained_fast = any(r.train_speed not in (None, "fp32") for r in records)
    other_presets = any(r.preset not in (None, r.key.dataset) for r in records)
    for r in records:
        row = {"cell": r.cell, "model": r.label, "steps": r.steps, "nfe": r.timing.nfe if r.timing else None}
        if other_presets:
            row["preset"] = r.preset
        if fast:
            row["speed"] = r.speed_label
        row.update({k: r.metrics[k] for k in (*QUALITY, *COVERAGE) if k in r.metrics})
        row.update(timing_columns(r.timing))
        row.update(training_columns(r, trained_fast))
        cost = r.quality_cost
        if cost:
            quality = cost.get("quality_metric")
            row.update({"max_abs_diff": cost["max_abs_diff"], "mean_abs_diff": cost["mean_abs_diff"],
                        "quality_change": cost["delta"].get(quality) if quality else None,
                        "quality_flag": cost["flagged"] or "within tolerance"})
        row["status"] = r.status if r.ok else f"failed: {r.reason or ''}"
        rows.append(row)
    df = pd.DataFrame(rows)
    return df[[c for c in df.columns if c in CORE or df[c].notna().any()]]


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
    ax.set_xscale("log")
    ax.set(xlabel="seconds per batch of 100 samples (log)", ylabel=f"{quality} ({QUALITY[quality]} is better)",
           title=title)
    ax.legend(fontsize=7, bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.tight_layout()
    # A fast point sits beside its model's float32 one: the marker legend names its setting.
    named = ok if style is None else ok[ok["speed"] == "fp32"]
    label_points(ax, zip(named["model"], named["seconds_per_batch"], named[quality], strict=True))
    return write_png(fig, path, dpi=120)


def label_points(ax, points, gap: float = 8) -> None:
    """Writes each (text, x, y) above and right of its point, `gap` points from its centre (clear of the largest
    marker), and on the other side where it would leave the axes: a label at the right edge would run into the
    legend, one at the top into the title. Call it once the layout is final, since it measures the text."""
    ax.autoscale_view()
    renderer = ax.figure.canvas.get_renderer()
    inside = ax.get_window_extent(renderer)
    for text, x, y in points:
        label = ax.annotate(text, (x, y), fontsize=7, textcoords="offset points", xytext=(gap, gap))
        box = label.get_window_extent(renderer)
        left, below = box.x1 > inside.x1, box.y1 > inside.y1
        label.xyann = (-gap if left else gap, -gap if below else gap)
        label.set(ha="right" if left else "left", va="top" if below else "baseline")


QUICK_NOTE = ("--quick is a smoke test: every model trains for 600-1500 iterations and cells draw at most 1000 "
              "samples, so this table shows that the pipeline runs, not the trilemma; run without --quick for results")


def write(out: Path, records: list[CellRecord], title: str, note: str | None = None) -> list[Path]:
    """trilemma.csv, .md, .tex and .png in out (each written atomically); `note` heads the Markdown table."""
    df = table(records)
    texts = {"trilemma.csv": df.to_csv(index=False), "trilemma.md": (f"> {note}\n\n" if note else "") + markdown(df),
             "trilemma.tex": latex(df)}
    written = [write_bytes_atomic(text.encode(), out / name) for name, text in texts.items()]
    image = plot(df, out / "trilemma.png", title)
    return written + ([image] if image else [])


def write_folder(out: Path, records: list[CellRecord], dataset: str, *, quick: bool = False,
                 with_paper: bool = False) -> list[Path]:
    """Every table of a trilemma folder from its cell records: trilemma.csv/.md/.tex/.png (headed by QUICK_NOTE
    when `quick`: cells of a --quick run), learning_curves.json/.png (the models the harness trained) and, with
    `with_paper`, paper.md/.csv. Prints the table (stdout) and the files written (stderr)."""
    print(markdown(table(records)), end="")
    written = write(out, records, f"{dataset}: quality vs sampling time", QUICK_NOTE if quick else None)
    written += curves.write_beside(out, [r.training for r in records], dataset)
    written += paper.write(out, records, dataset) if with_paper else []
    print("wrote " + ", ".join(str(p) for p in written), file=sys.stderr)
    return written


USAGE = """usage: python -m bench.report {compare,history,regressions,machines,html} ... [options]

Commands:
  compare BASE.json NEW.json [options]
            the same as `python -m bench.compare` (see its --help): speed and quality changes between two
            `pytest bench/ --benchmark-json` runs, as a Markdown report
  history append HISTORY_DIR RUN.json [--cells DIR]
            add a `pytest bench/ --benchmark-json` run (and a trilemma run's cell records) to a history folder
  history show HISTORY_DIR
            one Markdown row per run in the history (`python -m bench.history`, see its --help)
  regressions HISTORY_DIR [--ratio-to NAME] [--window N] [--alpha A] [--min-change F] [--max-quality-change F]
              [--out FILE.md]
            the latest run of each machine against its previous runs (`python -m bench.regressions`, see its
            --help); exit 0 nothing flagged, 1 SLOWER or CHANGED, 2 unreadable input
  machines FILE_OR_DIR... [--out DIR]
            sampling speed of every family on every machine, merged from pytest-benchmark JSON
            (bench/test_speed_settings.py, bench/test_sampling_speed.py), .ci/gpu_timings.py JSON and trilemma
            folders, beside the paper's V100 time: a Markdown table (--out: also machines.md, .csv and one
            machines_<family>.png per family); `python -m bench.machines`, see its --help
  html OUT [--trilemma DIR ...] [--machines FILE_OR_DIR ...] [--history DIR] [--ratio-to NAME]
            one self-contained static page OUT/index.html (images embedded, no network, no JavaScript): trilemma
            tables and plots, the per-machine speed table and plots, the history's trends and latest regression
            verdicts; `python -m bench.page`, see its --help

The trilemma tables and plot are written by `python -m bench.trilemma` through this module's functions."""
COMMANDS = {"compare": compare.main, "history": history.main, "regressions": regressions.main,
            "machines": machines.main, "html": page.main}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in COMMANDS:
        return COMMANDS[argv[0]](argv[1:], prog=f"python -m bench.report {argv[0]}")
    asked = argv[:1] in (["-h"], ["--help"])
    print(USAGE, file=sys.stdout if asked else sys.stderr)
    return 0 if asked else 2


if __name__ == "__main__":
    raise SystemExit(main())
