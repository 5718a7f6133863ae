"""The DDGAN paper's numbers (Xiao, Kreis, Vahdat, ICLR 2022, arXiv 2112.07804) with their sources, and the
measured-vs-paper table of `python -m bench.trilemma ... --paper`.

The values and source ids are those of ../shared/spec/ddgan.md section 10 (the PDF tables were not read
directly): S1 the LDDGAN paper's re-tabulation of Table 1, S2 a summary written from the arXiv v2 HTML, S3 the
t-GDIM paper's CIFAR-10 table, S4 low-trust summaries. None marks a "-" in the paper; `note` says where a value
is single-source or disputed. Times are seconds for one batch of 100 CIFAR-10 images on one V100.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bench import preflight
from bench.results import CellRecord
from bench.tables import markdown
from ddgan_ref.io import write_bytes_atomic

PAPER_HARDWARE = "one NVIDIA V100, batch 100"
SOURCES = {
    "S1": "LDDGAN (Trinh et al.), Table 3: a re-tabulation of DDGAN's CIFAR-10 Table 1",
    "S2": "a summary written from the DDGAN arXiv v2 HTML (Table 1, Table 2 ablation, Stacked-MNIST)",
    "S3": "t-GDIM paper, CIFAR-10 IS/FID/NFE table",
    "S4": "LLM-style summaries (low trust)",
}


@dataclass(frozen=True)
class Row:
    model: str
    values: dict[str, float | None]  # is, fid, recall, nfe, time_s / modes, mode_kl
    sources: str
    note: str = ""
    extra: dict = field(default_factory=dict)


def _t1(model, is_, fid, recall, nfe, time_s, sources, note=""):
    return Row(model, {"is": is_, "fid": fid, "recall": recall, "nfe": nfe, "time_s": time_s}, sources, note)


# Table 1, CIFAR-10 unconditional (IS up, FID down, recall up, NFE, time s down).
TABLE1 = [
    _t1("DDGAN, T=4", 9.63, 3.75, 0.57, 4, 0.21, "S1,S2,S3"),
    _t1("DDPM", 9.46, 3.21, 0.57, 1000, 80.5, "S1,S2", "S3 lists 9.47 / 3.19"),
    _t1("NCSN", 8.87, 25.3, None, 1000, 107.9, "S1,S3"),
    _t1("Adversarial DSM", None, 6.10, None, 1000, None, "S1"),
    _t1("Likelihood SDE", None, 2.87, None, None, None, "S1,S3", "NFE 1000 in S1 only"),
    _t1("Score SDE (VE)", 9.89, 2.20, 0.59, 2000, 423.2, "S1,S3"),
    _t1("Score SDE (VP)", 9.68, 2.41, 0.59, 2000, 421.5, "S1,S2"),
    _t1("Probability Flow (VP)", 9.83, 3.08, 0.57, 140, 50.9, "S1,S3"),
    _t1("LSGM", 9.87, 2.10, 0.61, 147, 44.5, "S1,S3"),
    _t1("DDIM, T=50", 8.78, 4.67, 0.53, 50, 4.01, "S1,S2"),
    _t1("FastDDPM, T=50", 8.98, 3.41, 0.56, 50, 4.01, "S1,S3"),
    _t1("Recovery EBM", 8.30, 9.58, None, 180, None, "S1,S3"),
    _t1("DDPM Distillation", 8.36, 9.36, 0.51, 1, None, "S1,S3"),
    _t1("SNGAN", 8.22, 21.7, 0.44, 1, None, "S2"),
    _t1("SNGAN+DGflow", 9.35, 9.62, 0.48, 25, 1.98, "S1,S3"),
    _t1("AutoGAN", 8.60, 12.4, 0.46, 1, None, "S1,S3"),
    _t1("TransGAN", 9.02, 9.26, None, 1, None, "S3"),
    _t1("StyleGAN2 w/o ADA", 9.18, 8.32, 0.41, 1, 0.04, "S1,S3"),
    _t1("StyleGAN2 w/ ADA", 9.83, 2.92, 0.49, 1, 0.04, "S1,S2,S3"),
    _t1("StyleGAN2 w/ DiffAug", 9.40, 5.79, 0.42, 1, 0.04, "S1,S3"),
    _t1("NVAE", None, 23.5, 0.51, 1, 0.36, "S1", "IS 7.18 unverified; recall/NFE garbled in the source"),
    _t1("VAEBM", None, 12.2, 0.53, 16, 8.79, "S1", "IS 8.43 unverified"),
]

# Table 2, ablation on CIFAR-10 (IS, FID, recall); [S2] unless noted.
ABLATION = [
    Row("T=1", {"is": 8.93, "fid": 14.6, "recall": 0.19}, "S2", "about a one-shot GAN; S4 agrees on 14.6 / 0.19"),
    Row("T=2", {"is": 9.80, "fid": 4.08, "recall": 0.54}, "S2"),
    Row("T=4", {"is": 9.63, "fid": 3.75, "recall": 0.57}, "S2"),
    Row("T=8", {"is": 9.43, "fid": 4.36, "recall": 0.56}, "S2"),
    Row("one-shot GAN + diffusion as D augmentation", {"is": 8.96, "fid": 13.2, "recall": 0.25}, "S2",
        "S4 says FID 14.8; conflict, unverified"),
    Row("direct denoising (predict x_{t-1})", {"is": 9.10, "fid": 6.03, "recall": 0.53}, "S2"),
    Row("noise generation (predict eps)", {"is": 8.79, "fid": 8.04, "recall": 0.52}, "S2"),
    Row("no latent z", {"is": 8.37, "fid": 20.6, "recall": 0.42}, "S2", "S4 agrees on 20.6 / 0.42"),
]

# Stacked-MNIST, 1000 modes (modes covered up, reverse KL down).
STACKED_MNIST = [
    Row("DDGAN", {"modes": 1000, "mode_kl": 0.071}, "S2,S4"),
    Row("StyleGAN2", {"modes": 940, "mode_kl": 0.424}, "S2", "one S4 summary: StyleGAN2-ADA 928 / 0.253"),
    Row("PacGAN", {"modes": 992, "mode_kl": 0.277}, "", "unverified"),
    Row("PresGAN", {"modes": 999, "mode_kl": 0.115}, "", "unverified"),
    Row("VEEGAN", {"modes": 762, "mode_kl": 2.173}, "", "unverified"),
    Row("VAEBM", {"modes": 1000, "mode_kl": 0.087}, "", "unverified"),
]

TABLES = {"table1": TABLE1, "ablation": ABLATION, "stacked-mnist": STACKED_MNIST}
STACKED = ("stacked-mnist", "stacked-digits")
STAND_INS = {"stacked-digits": "data differs: stacked-digits (scikit-learn's 8x8 digits, three per image, 16 px) "
                               "stands in for the paper's Stacked MNIST"}


def paper_row(record: CellRecord, dataset: str) -> tuple[str, Row] | None:
    """(table, row) of the paper that a harness cell measures, by model family and network calls per image."""
    family, nfe = record.model, record.timing.nfe if record.timing else None
    find = lambda table, name: next(((table, r) for r in TABLES[table] if r.model == name), None)
    if dataset in STACKED:
        return find("stacked-mnist", {"ddgan": "DDGAN", "stylegan2": "StyleGAN2"}.get(family, ""))
    if dataset != "cifar10":
        return None
    if family == "ddgan":
        return find("table1", "DDGAN, T=4") if nfe == 4 else find("ablation", f"T={nfe}")
    if family == "ddpm":
        return find("table1", "DDPM" if nfe == 1000 else f"DDIM, T={nfe}")
    return find("table1", "StyleGAN2 w/ ADA") if family == "stylegan2" else None


def budget_note(record: CellRecord, dataset: str) -> str:
    """What differs from the paper's protocol in how the cell was made: a model the harness trained (its
    budget), on Stacked MNIST fewer samples than the paper's 26,000, and a training or sampling setting other than
    float32."""
    parts = []
    budget = (record.training or {}).get("budget")
    if budget:
        parts.append(f"trained here: {record.training.get('preset')} preset, {budget['iterations']} iterations "
                     f"({budget['images_seen']} images, {budget['seconds'] / 60:.0f} min on {budget['device']}); "
                     f"the paper trains to convergence on GPUs")
    if dataset in STACKED and record.key.n != 26_000:
        parts.append(f"modes and KL of {record.key.n} samples (the paper: 26,000)")
    if record.train_speed not in (None, "fp32"):
        parts.append(f"trained under {record.train_speed} (the paper: float32)")
    if record.speed_label != "fp32":
        parts.append(f"sampled under {record.speed_label} (the paper: float32)")
    return "; ".join(parts)


# Metrics this suite measures otherwise than the paper did (spec: ddgan.md's evaluation, metrics.md's pitfalls).
PROTOCOL_NOTES = {
    "recall": "recall here: prdc's on Inception's 2048-d features, k=5 (the paper: Kynkaanniemi et al.'s improved "
              "recall, VGG16 features, k=3)",
    "is": "IS here over 10 splits (the paper: 1)",
}


def protocol_note(record: CellRecord, metric: str) -> str:
    """How the cell's `metric` was measured where that differs from the paper's protocol: FID's N and file format
    (the paper: 50,000 JPEGs; both move FID), recall's features and k, IS's splits."""
    if metric == "fid":
        n, stored = record.key.inception_n or record.key.n, record.key.sample_format
        if n != 50_000 or stored != "jpeg":
            return f"FID of {n} samples stored as {stored} (the paper: 50,000 JPEGs; N and JPEG both move FID)"
        return ""
    return PROTOCOL_NOTES.get(metric, "")


def measured_values(record: CellRecord) -> dict[str, float | None]:
    timing = record.timing
    return {**{k: record.metrics.get(k) for k in ("is", "fid", "recall", "modes", "mode_kl")},
            "nfe": timing.nfe if timing else None,
            "time_s": timing.seconds if timing and timing.batch == 100 else None}


def compare(records: list[CellRecord], dataset: str) -> pd.DataFrame:
    """One row per (cell, metric) that the paper reports: measured, paper, delta, source, and a note that says
    when time was measured on other hardware than the paper's V100 or the data only stands in for the paper's."""
    rows = []
    for record in records:
        match = paper_row(record, dataset)
        if not record.ok or match is None:
            continue
        table, paper = match
        device = (record.device or {}).get("name")
        measured = measured_values(record)
        for metric, value in paper.values.items():
            if value is None:
                continue
            got = measured.get(metric)
            note = "; ".join(filter(None, [STAND_INS.get(dataset, ""), budget_note(record, dataset),
                                           protocol_note(record, metric), paper.note]))
            if metric == "time_s" and "V100" not in str(device):
                note = "; ".join(filter(None, [f"hardware differs: measured on {device}, paper on {PAPER_HARDWARE}",
                                               note]))
            rows.append({"cell": record.cell, "paper row": f"{table}: {paper.model}", "metric": metric,
                         "measured": got, "paper": value, "delta": None if got is None else got - value,
                         "sources": paper.sources or "-", "note": note})
    return pd.DataFrame(rows, columns=["cell", "paper row", "metric", "measured", "paper", "delta", "sources", "note"])


TITLES = {"table1": "Table 1: CIFAR-10 (IS, FID, recall, NFE, time in s for 100 images on one V100)",
          "ablation": "Table 2: ablation on CIFAR-10 (IS, FID, recall)",
          "stacked-mnist": "Stacked-MNIST, 1000 modes (modes covered, reverse KL)"}


def write(out: Path, records: list[CellRecord], dataset: str) -> list[Path]:
    """Measured vs paper (bench.paper.compare), printed and written as paper.md and paper.csv."""
    df = compare(records, dataset)
    if df.empty:
        print(f"\nthe paper reports no numbers that these cells measure on {dataset} (it has cifar10 Table 1 and "
              f"ablation rows, and Stacked-MNIST)", file=sys.stderr)
        for stale in (out / "paper.md", out / "paper.csv"):  # an earlier table's, which these cells no longer give
            stale.unlink(missing_ok=True)
        return []
    text = f"## Measured vs the DDGAN paper ({dataset})\n\n" + markdown(df)
    print("\n" + text, end="")
    return [write_bytes_atomic(text.encode(), out / "paper.md"),
            write_bytes_atomic(df.to_csv(index=False).encode(), out / "paper.csv")]


def tables_markdown() -> str:
    """The paper's tables as held here, each value with its sources and notes (`python -m bench.paper`)."""
    parts = ["# The DDGAN paper's numbers as bench/paper.py holds them", "",
             "Sources: " + "; ".join(f"{k}: {v}" for k, v in SOURCES.items()) + ".", ""]
    for name, rows in TABLES.items():
        df = pd.DataFrame([{"model": r.model, **r.values, "sources": r.sources or "-", "note": r.note} for r in rows])
        parts += [f"## {TITLES[name]}", "", markdown(df)]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.paper", description="Print (and with --out write) the "
                                "DDGAN paper's tables as bench/paper.py holds them, with sources. The measured-vs-"
                                "paper table comes from `python -m bench.trilemma --dataset cifar10 ... --paper`.")
    p.add_argument("--out", type=Path, help="also write the Markdown here")
    args = p.parse_args(argv)
    text = tables_markdown()
    print(text)
    if args.out:
        try:
            write_bytes_atomic(text.encode(), args.out)
        except OSError as e:  # an --out under a file, a read-only folder, a full disk
            return preflight.report(e)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
