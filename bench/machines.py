"""Sampling speed per machine: the results of several machines merged into one table (Markdown, CSV) and one seaborn
plot per model family, from pytest-benchmark JSON of bench/test_speed_settings.py and bench/test_sampling_speed.py,
.ci/gpu_timings.py's JSON list and trilemma run folders (cells/*.json), beside the paper's V100 time (bench.paper).

A machine is named by what its hardware reported, never by a typed label: the GPU's name (nvidia-ml-py through
ddgan_ref.provenance.describe_device, or torch's device name in pytest-benchmark's extra_info device_name) where the
model ran on a GPU, else the CPU model (pytest-benchmark's machine_info cpu brand_raw with its core count, or
describe_device's CPU with the threads torch used). A file that records nothing about its machine says so:
"unrecorded (FILE)". Times are seconds for a batch of 100 images, the paper's unit (Table 1: one V100, CIFAR-10); a
batch of another size is scaled by 100 / batch and its row names the batch in `scaled_from_batch`. The paper's time
stands beside rows of its family at the paper's steps on CIFAR-10 only.

    python -m bench.machines FILE_OR_DIR... [--out DIR]      (also `python -m bench.report machines`)
"""

from __future__ import annotations

import argparse
import re
import sys
import textwrap
from pathlib import Path
from typing import Any

import pandas as pd

from bench.paper import TABLE1
from bench.plots import png_bytes
from bench.results import from_json
from bench.speedups import seconds_per_call
from bench.tables import markdown
from ddgan_ref.io import read_json, write_bytes_atomic

FAMILIES = ("ddgan", "ddpm", "stylegan2")
PAPER_ROWS = {"ddgan": "DDGAN, T=4", "ddpm": "DDPM", "stylegan2": "StyleGAN2 w/ ADA"}  # Table 1's row per family
PAPER_PRESET = "cifar10"  # Table 1's data: its times stand beside CIFAR-10 rows only
BATCH = 100  # the paper's batch: every time is scaled to it
COLUMNS = ("machine", "family", "model", "preset", "setting", "steps", "nfe", "batch", "s_per_100_images",
           "scaled_from_batch", "images_per_s", "j_per_image", "paper_v100_s_per_100", "source")
INTEGERS = ("steps", "nfe", "batch", "scaled_from_batch")  # written without decimals in the CSV
PAPER_STEP = re.compile(r"paper_time (?P<family>\S+) (?P<preset>\S+)(?P<rest>( \S+=\S+)*)")  # .ci/gpu_timings.py
EXPECTED = ("expected a pytest-benchmark JSON of bench/test_speed_settings.py or bench/test_sampling_speed.py "
            "(`pytest ... --benchmark-json FILE`), a JSON list written by .ci/gpu_timings.py (rows with 'step'), or "
            "a trilemma run folder (`python -m bench.trilemma` output, with cells/*.json)")


class MachinesError(ValueError):
    """An input that is none of the sampling-speed formats read here, is unreadable, or holds no sampling time."""


def paper_time(family: str) -> tuple[int, float] | None:
    """(steps, seconds for 100 images on one V100) of the family's Table 1 row, or None. For these three families
    the paper's NFE is its step count."""
    row = next((r for r in TABLE1 if r.model == PAPER_ROWS.get(family)), None)
    if row is None or row.values.get("time_s") is None:
        return None
    return int(row.values["nfe"]), float(row.values["time_s"])


def label(family: str, steps: int) -> str:
    """The trilemma's label of a family at `steps` (bench.registry's cells): DDPM below 1000 steps samples with DDIM."""
    if family == "ddgan":
        return f"DDGAN (T={steps})"
    if family == "ddpm":
        return f"DDPM ({steps} steps)" if steps == 1000 else f"DDIM ({steps} steps)"
    return "StyleGAN2" if family == "stylegan2" else family


def unrecorded(source: str) -> str:
    return f"unrecorded ({source})"


def row(*, machine: str, family: str, steps: int, nfe: int | None, batch: int, seconds: float, setting: str,
        preset: str | None, source: str, model: str | None = None, images_per_s: float | None = None,
        joules: float | None = None) -> dict[str, Any]:
    """One table row of one timed batch of `batch` images (`seconds`), scaled to 100 images when the batch differs."""
    if not (isinstance(seconds, (int, float)) and seconds > 0 and isinstance(batch, int) and batch > 0):
        raise TypeError(f"a time of {seconds!r} s for a batch of {batch!r}; need positive numbers")
    scaled = batch != BATCH
    paper = paper_time(family)
    on_paper = paper is not None and preset == PAPER_PRESET and steps == paper[0]
    return {"machine": machine, "family": family, "model": model or label(family, steps), "preset": preset,
            "setting": setting, "steps": steps, "nfe": nfe, "batch": batch,
            "s_per_100_images": seconds * BATCH / batch if scaled else float(seconds),
            "scaled_from_batch": batch if scaled else None,
            "images_per_s": float(images_per_s) if images_per_s is not None else batch / seconds,
            "j_per_image": joules, "paper_v100_s_per_100": paper[1] if on_paper else None, "source": source}


def benchmark_machine(info: dict, cpu: str | None, source: str) -> str:
    """The machine of one pytest-benchmark row: the GPU's name (extra_info device_name) where it ran on CUDA, else
    the CPU (machine_info)."""
    if str(info.get("device", "")).startswith("cuda"):
        name = info.get("device_name")  # describe_device's name: torch's name of the GPU
        return name if isinstance(name, str) and name else unrecorded(source)
    return cpu or unrecorded(source)


def benchmark_rows(doc: dict, source: str) -> list[dict]:
    """Rows of a pytest-benchmark document: one per setting of bench/test_speed_settings.py (extra_info settings), one
    per case of bench/test_sampling_speed.py (extra_info model, steps, batch, images_per_s); other benchmarks are
    not sampling times of a whole batch and are left out."""
    cpu_info = (doc.get("machine_info") or {}).get("cpu") or {}
    brand, count = cpu_info.get("brand_raw"), cpu_info.get("count")
    cpu = f"{brand}, {count} cores" if brand and count else brand
    rows = []
    for bench in doc["benchmarks"]:
        info = bench.get("extra_info") or {}
        common = {"machine": benchmark_machine(info, cpu, source), "family": info.get("model"),
                  "preset": info.get("preset"), "source": source}
        if isinstance(info.get("settings"), dict):
            rows += [row(**common, steps=info["steps"], nfe=cell.get("nfe", info.get("nfe")), batch=info["batch"],
                         seconds=cell["median_s"], setting=name, images_per_s=cell.get("images_per_s"))
                     for name, cell in info["settings"].items()]
        elif {"model", "steps", "batch", "images_per_s"} <= info.keys():
            setting = f"impl={info['impl']}" if info.get("impl") else "fp32"
            rows.append(row(**common, steps=info["steps"], nfe=info.get("nfe"), batch=info["batch"],
                            seconds=seconds_per_call(bench), setting=setting, images_per_s=info["images_per_s"]))
    return rows


def device_machine(device: Any, source: str) -> str:
    """The machine of a describe_device() description (a trilemma record's device, .ci/gpu_timings.py's device_info
    row): the GPU's NVML name, else torch's GPU name, else the CPU model with the threads torch used."""
    d = device if isinstance(device, dict) else {}
    gpu = d.get("gpu") if isinstance(d.get("gpu"), dict) else {}
    if gpu.get("available") and gpu.get("name"):
        return gpu["name"]
    if str(d.get("device", "")).startswith("cuda") and (d.get("gpu_name") or d.get("name")):
        return d.get("gpu_name") or d["name"]
    if d.get("cpu"):
        return f"{d['cpu']}, {d['threads']} threads" if d.get("threads") else d["cpu"]
    return unrecorded(source)


def gpu_timing_rows(doc: list[dict], source: str) -> list[dict]:
    """Rows of .ci/gpu_timings.py's list: one per `paper_time FAMILY PRESET steps=S impl=I` step that has a time;
    the machine from its device_info row."""
    info = next((r for r in doc if r.get("step") == "device_info"), None)
    machine = device_machine(info, source)
    rows = []
    for r in doc:
        m = PAPER_STEP.fullmatch(str(r.get("step", "")))
        if m is None or r.get("seconds") is None:
            continue  # another measurement, or a step that failed or was skipped
        keys = dict(kv.split("=", 1) for kv in m["rest"].split())
        rows.append(row(machine=machine, family=m["family"], preset=m["preset"], steps=int(keys["steps"]),
                        nfe=r.get("nfe"), batch=r["batch"], seconds=r["seconds"], source=source,
                        setting=f"impl={keys['impl']}" if "impl" in keys else "fp32",
                        joules=r.get("joules_per_image")))
    return rows


def trilemma_rows(folder: Path) -> list[dict]:
    """Rows of a trilemma run folder: one per finished cell record with a timing (bench.results' schema)."""
    paths = sorted((folder / "cells").glob("*.json"))
    if not paths:
        raise MachinesError(f"{folder}: a folder without cells/*.json; {EXPECTED}")
    rows = []
    for path in paths:
        try:
            record = from_json(read_json(path, MachinesError, EXPECTED))
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            raise MachinesError(f"{path}: not a trilemma cell record ({e}); {EXPECTED}") from e
        t = record.timing
        if not record.ok or t is None:
            continue
        rows.append(row(machine=device_machine(record.device, f"{folder.name}/cells/{path.name}"),
                        family=record.model, model=record.label, preset=record.key.dataset, steps=record.steps,
                        nfe=t.nfe, batch=t.batch, seconds=t.seconds, source=folder.name,
                        setting=record.speed_label, joules=t.joules_per_image))
    return rows


def detect(path: Path) -> tuple[list[dict], str]:
    """The rows of one input by its shape, and what it lacks when it has none."""
    if path.is_dir():
        return trilemma_rows(path), "no finished cell with a timing"
    doc = read_json(path, MachinesError, EXPECTED)
    if isinstance(doc, dict) and isinstance(doc.get("benchmarks"), list):
        return benchmark_rows(doc, path.name), ("no sampling benchmark (extra_info settings, or model, steps, batch "
                                                "and images_per_s)")
    if isinstance(doc, list) and doc and all(isinstance(r, dict) and "step" in r for r in doc):
        return gpu_timing_rows(doc, path.name), "no timed `paper_time ...` step"
    raise MachinesError(f"{path}: a JSON {type(doc).__name__} of another kind; {EXPECTED}")


def read(path: Path) -> list[dict]:
    """The rows of one input, its format detected; MachinesError for anything else, a broken row or no time."""
    path = Path(path)
    try:
        rows, what = detect(path)
    except MachinesError:
        raise
    except (KeyError, TypeError, AttributeError, ValueError) as e:  # a row of the right shape without its numbers
        raise MachinesError(f"{path}: an unusable row ({type(e).__name__}: {e}); {EXPECTED}") from e
    if not rows:
        raise MachinesError(f"{path}: {what}; {EXPECTED}")
    return rows


def table(paths: list[Path]) -> pd.DataFrame:
    """One row per (input, machine, family, setting, steps): the COLUMNS, by family (ddgan, ddpm, stylegan2) and
    machine, in the inputs' order otherwise."""
    df = pd.DataFrame([r for p in paths for r in read(p)], columns=list(COLUMNS))
    order = {f: i for i, f in enumerate(FAMILIES)}
    rank = df["family"].map(lambda f: order.get(f, len(order)))
    return df.assign(_rank=rank).sort_values(["_rank", "machine"], kind="stable").drop(columns="_rank").reset_index(
        drop=True)


def families(df: pd.DataFrame) -> list[str]:
    """The families of a table() in its order."""
    return list(dict.fromkeys(df["family"]))


def cases(sub: pd.DataFrame) -> list[str]:
    """Each row's bar label within one family: the setting, with steps and preset where they vary in the family."""
    vary = [c for c in ("steps", "preset") if sub[c].nunique(dropna=False) > 1]
    suffix = {"steps": lambda v: f"{v} steps", "preset": str}
    return [", ".join([r["setting"], *(suffix[c](r[c]) for c in vary)]) for _, r in sub.iterrows()]


def places(sub: pd.DataFrame) -> list[str]:
    """Each row's x label: its machine, with the source where the machine's rows come from several files (whose
    bars would otherwise be averaged), wrapped for the axis."""
    sources = sub.groupby("machine")["source"].nunique()
    return [textwrap.fill(m + (f" [{s}]" if sources[m] > 1 else ""), 24) for m, s in zip(sub["machine"],
                                                                                          sub["source"], strict=True)]


def plot(df: pd.DataFrame, family: str) -> bytes | None:
    """PNG of one family: one bar per row, seconds per 100 images (log), labelled with its setting and coloured by
    machine, the paper's V100 time as a dashed horizontal line; None when the family has no rows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sub = df[df["family"] == family]
    if sub.empty:
        return None
    sub = sub.assign(case=cases(sub), place=places(sub), seconds=sub["s_per_100_images"].astype(float),
                     bar=[str(i) for i in range(len(sub))])  # one category per row: no empty slots between bars
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(sub) + 4.5), 5.2))
    sns.barplot(data=sub, x="bar", y="seconds", hue="place", dodge=False, errorbar=None, ax=ax)
    ax.set_yscale("log")
    for bars in ax.containers:
        ax.bar_label(bars, fmt="%.3g", fontsize=7, padding=2)
    ax.set_xticks(range(len(sub)), sub["case"], rotation=35, ha="right", fontsize=8)
    paper = paper_time(family)
    if paper:
        ax.axhline(paper[1], color="black", ls="--", lw=1,
                   label=f"paper: one V100, CIFAR-10,\nsteps={paper[0]}: {paper[1]:g} s")
    ax.set(xlabel="setting", ylabel="seconds per 100 images (log)")
    fig.suptitle(f"{family}: sampling time of 100 images per machine and setting")  # centred on the figure: fits
    ax.legend(fontsize=7, bbox_to_anchor=(1.02, 1), loc="upper left", title="machine", title_fontsize=8)
    fig.tight_layout()
    return png_bytes(fig, dpi=120)


def write(df: pd.DataFrame, out: Path) -> list[Path]:
    """machines.md, machines.csv and machines_<family>.png in `out`, each written atomically."""
    out = Path(out)
    csv = df.astype({c: "Int64" for c in INTEGERS}).to_csv(index=False)
    written = [write_bytes_atomic(markdown(df).encode(), out / "machines.md"),
               write_bytes_atomic(csv.encode(), out / "machines.csv")]
    for family in families(df):
        png = plot(df, family)
        if png is not None:
            written.append(write_bytes_atomic(png, out / f"machines_{family}.png"))
    return written


def parser(prog: str = "python -m bench.machines") -> argparse.ArgumentParser:
    """The CLI's arguments; `prog` names the command in usage lines (bench.report's `machines` reuses them)."""
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", type=Path, metavar="FILE_OR_DIR",
                   help="a pytest-benchmark JSON (bench/test_speed_settings.py, bench/test_sampling_speed.py), a "
                   ".ci/gpu_timings.py JSON list, or a trilemma run folder; the format is detected")
    p.add_argument("--out", type=Path, metavar="DIR", help="also write machines.md, machines.csv and "
                   "machines_<family>.png here (atomically); without it only the Markdown table is printed")
    return p


def main(argv: list[str] | None = None, prog: str = "python -m bench.machines") -> int:
    """The CLI: print the Markdown table (and write the files to --out); exit 0, or 2 on unreadable input."""
    args = parser(prog).parse_args(argv)
    try:
        df = table(args.inputs)
    except MachinesError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(markdown(df), end="")
    for path in write(df, args.out) if args.out else []:
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
