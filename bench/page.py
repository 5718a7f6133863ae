"""One self-contained static HTML page of the suite's results (`python -m bench.report html OUT/`): trilemma runs'
tables and plots (`python -m bench.trilemma` folders), sampling speed per machine (bench.machines), and a benchmark
history's trends and latest regression verdicts (bench.history, bench.regressions).

OUT/index.html needs nothing else: the images are PNGs embedded as base64 data: URIs, the CSS is inline, there is no
JavaScript and no link leaves the page, so it opens from a CI artefact or a mail attachment without a network.

    python -m bench.page OUT/ [--trilemma DIR ...] [--machines FILE_OR_DIR ...] [--history DIR] [--ratio-to NAME]
"""

from __future__ import annotations

import argparse
import base64
import datetime
import html
import sys
import textwrap
from pathlib import Path

import pandas as pd

from bench import machines, preflight
from bench.history import HistoryError, read
from bench.machines import MachinesError
from bench.plots import png_bytes
from bench.regressions import FLAGS, flagged, regressions, shown
from bench.regressions import machines as history_machines
from bench.tables import cell
from ddgan_ref.io import write_bytes_atomic

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CSS = """body{font-family:system-ui,sans-serif;margin:1.5rem auto;max-width:1400px;padding:0 1rem;color:#222}
h1{font-size:1.5rem}h2{border-bottom:1px solid #ccc;padding-bottom:.2rem;margin-top:2rem}h3{font-size:1.05rem}
table{border-collapse:collapse;font-size:.8rem;margin:.5rem 0 1rem;display:block;overflow-x:auto}
th,td{border:1px solid #ddd;padding:.2rem .45rem;text-align:right;white-space:nowrap}th{background:#f3f3f3}
tr.flag td{background:#fbd5d5;font-weight:600}img{max-width:100%;height:auto;display:block;margin:.5rem 0}
p.none{color:#666;font-style:italic}p.meta{color:#555;font-size:.85rem}"""


class PageError(ValueError):
    """An input of the page that cannot be read: a trilemma folder without its table, an image that is no PNG."""


def absent(text: str) -> str:
    """The one line a section shows when it has nothing to show."""
    return f'<p class="none">{html.escape(text)}</p>'


def image(png: bytes, alt: str) -> str:
    """An <img> of PNG bytes as a base64 data: URI."""
    if not png.startswith(PNG_MAGIC):
        raise PageError(f"{alt}: not a PNG image")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def frame_html(df: pd.DataFrame) -> str:
    """A DataFrame as an escaped HTML table (pandas to_html), each value in bench.tables' cell format (None and NaN
    empty, floats to 4 significant digits), as in the Markdown tables."""
    return df.apply(lambda column: column.map(cell)).to_html(index=False, escape=True, border=0)


def flagged_html(df: pd.DataFrame, flag: pd.Series) -> str:
    """An escaped HTML table whose rows where `flag` is true carry class="flag" (to_html cannot mark rows)."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    rows = []
    for values, bad in zip(df.itertuples(index=False), flag, strict=True):
        attr = ' class="flag"' if bad else ""
        rows.append(f"<tr{attr}>" + "".join(f"<td>{html.escape(cell(v))}</td>" for v in values) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def trilemma_section(folder: Path) -> str:
    """One trilemma run: its table (trilemma.csv) and its trilemma.png and learning_curves.png where present."""
    folder = Path(folder)
    path = folder / "trilemma.csv"
    if not path.is_file():
        raise PageError(f"{folder}: no trilemma.csv; pass a `python -m bench.trilemma` output folder")
    try:
        df = pd.read_csv(path)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise PageError(f"{path}: not a readable CSV table ({e}); re-run `python -m bench.trilemma`") from e
    parts = [f"<h3>{html.escape(folder.name)}</h3>", frame_html(df)]
    for name, what in (("trilemma.png", "quality against sampling time"), ("learning_curves.png", "learning curves")):
        png = folder / name
        parts.append(image(png.read_bytes(), f"{folder.name}: {what}") if png.is_file()
                     else absent(f"No {name} in {folder.name}."))
    return "\n".join(parts)


def machines_section(inputs: list[Path]) -> str:
    """The per-machine sampling-speed table and one plot per family (bench.machines)."""
    df = machines.table(inputs)
    plots = ((f, machines.plot(df, f)) for f in machines.families(df))
    return "\n".join([frame_html(df), *(image(png, f"{f}: seconds per 100 images") for f, png in plots if png)])


def trends(frame: pd.DataFrame, kind: str) -> bytes | None:
    """PNG of a history frame's `kind` rows ("speed" | "quality"): each benchmark's value over time, one panel per
    benchmark and one line per machine; None without such rows."""
    import matplotlib

    matplotlib.use("Agg")
    import seaborn as sns

    df = frame[frame["kind"] == kind]
    if df.empty:
        return None
    df = df.assign(time=df["time"].dt.tz_convert("UTC").dt.tz_localize(None),
                   benchmark=[textwrap.fill(b, 45) for b in df["benchmark"]])  # long pytest ids over two lines
    g = sns.relplot(data=df, x="time", y="value", hue="machine", col="benchmark", col_wrap=3, kind="line",
                    marker="o", height=2.6, aspect=1.6, facet_kws={"sharey": False})
    g.set_titles("{col_name}", size=8)
    g.set_axis_labels("run (UTC)", "median seconds per call" if kind == "speed" else "value")
    for ax in g.axes.flat:
        ax.tick_params(axis="x", labelrotation=30, labelsize=7)
    return png_bytes(g, dpi=100)


def history_section(history_dir: Path, ratio_to: str | None) -> str:
    """The history's machines, trend plots of speed and quality, and the latest run's regression verdicts."""
    frame = read(history_dir)
    verdicts = regressions(frame, ratio_to=ratio_to)
    judged = f"relative to {ratio_to} in the same run" if ratio_to else "absolute seconds per call"
    result = "REGRESSION" if flagged(verdicts) else "no regression"
    readable = shown(verdicts)
    parts = ["<h3>Machines</h3>", frame_html(history_machines(frame)), "<h3>Trends</h3>"]
    for kind in ("speed", "quality"):
        png = trends(frame, kind)
        parts.append(image(png, f"{kind} over time") if png else absent(f"No {kind} numbers in the history."))
    parts += [f"<h3>Latest regression verdicts: {result}</h3>",
              f'<p class="meta">The latest run of each machine against its previous runs ({html.escape(judged)}; '
              f"bench.regressions' defaults). {' and '.join(FLAGS)} rows are highlighted.</p>",
              flagged_html(readable, readable["status"].isin(FLAGS))]
    return "\n".join(parts)


def page(*, trilemma: list[Path], machine_inputs: list[Path], history_dir: Path | None,
         ratio_to: str | None = None) -> str:
    """The whole page as HTML text; each section without input says so in one line."""
    runs = "\n".join(trilemma_section(d) for d in trilemma) or absent("No trilemma run given (--trilemma DIR).")
    speed = (machines_section(machine_inputs) if machine_inputs
             else absent("No sampling-speed results given (--machines FILE_OR_DIR)."))
    hist = (history_section(history_dir, ratio_to) if history_dir
            else absent("No benchmark history given (--history DIR)."))
    made = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    inputs = [*trilemma, *machine_inputs, *([history_dir] if history_dir else [])]
    sources = ", ".join(html.escape(str(p)) for p in inputs) or "no input"
    return "\n".join([
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>DDGAN-Bench results</title>\n<style>{CSS}</style>\n</head>\n<body>",
        "<h1>DDGAN-Bench results</h1>",
        f'<p class="meta">Written by <code>python -m bench.report html</code> at {made} from: {sources}.</p>',
        f'<h2 id="trilemma">Trilemma runs</h2>\n{runs}',
        f'<h2 id="machines">Sampling speed per machine</h2>\n{speed}',
        f'<h2 id="history">Benchmark history</h2>\n{hist}',
        "</body>\n</html>\n"])


def write(out: Path, text: str) -> Path:
    """OUT/index.html, written atomically."""
    return write_bytes_atomic(text.encode(), Path(out) / "index.html")


def parser(prog: str = "python -m bench.page") -> argparse.ArgumentParser:
    """The CLI's arguments; `prog` names the command in usage lines (bench.report's `html` reuses them)."""
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path, metavar="OUT", help="the folder to write index.html into (created if missing)")
    p.add_argument("--trilemma", nargs="+", action="extend", type=Path, default=[], metavar="DIR",
                   help="a `python -m bench.trilemma` output folder (trilemma.csv, trilemma.png, learning_curves.png); "
                   "repeatable")
    p.add_argument("--machines", nargs="+", action="extend", type=Path, default=[], metavar="FILE_OR_DIR",
                   help="sampling-speed inputs of `python -m bench.report machines` (pytest-benchmark JSON, "
                   ".ci/gpu_timings.py JSON, trilemma folders); repeatable")
    p.add_argument("--history", type=Path, metavar="DIR", help="a benchmark history folder (bench.history append): "
                   "trend plots and the latest regression verdicts")
    p.add_argument("--ratio-to", metavar="NAME", help="judge the history's speed as multiples of benchmark NAME's "
                   "time in the same run (as `python -m bench.report regressions --ratio-to`); needs --history")
    return p


def main(argv: list[str] | None = None, prog: str = "python -m bench.page") -> int:
    """The CLI: write OUT/index.html and print its path; exit 0, or 2 on unreadable input."""
    p = parser(prog)
    args = p.parse_args(argv)
    if args.ratio_to and not args.history:
        p.error("--ratio-to needs --history")
    try:
        text = page(trilemma=args.trilemma, machine_inputs=args.machines, history_dir=args.history,
                    ratio_to=args.ratio_to)
    except (PageError, MachinesError, HistoryError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        print(write(args.out, text))
    except OSError as e:  # an --out that is a file, a read-only folder, a full disk
        return preflight.report(e)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
