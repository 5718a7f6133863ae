"""bench.paper: the paper's rows carry sources, harness cells find their rows, and the measured-vs-paper table has
the right deltas and says when the time column was measured on other hardware than the paper's V100."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest

from bench import paper
from bench.paper import write as write_paper
from bench.results import CellKey, CellRecord
from bench.timing import PaperTime


def cell(name, family, nfe, metrics, seconds=0.5, device="NVIDIA H100 80GB HBM3", status="ok"):
    timing = PaperTime(batch=100, rounds=1, seconds=seconds, seconds_all=[seconds], nfe=nfe, peak_memory_bytes=None,
                       joules_per_image=None)
    return CellRecord(name, name, family, nfe, CellKey(name, "cifar10", 100, 0, 1, None), status=status,
                      metrics=metrics, timing=timing, device={"name": device})


CIFAR = [
    cell("ddgan-t4", "ddgan", 4, {"fid": 4.00, "is": 9.50, "recall": 0.55}, seconds=0.112),
    cell("ddgan-t2", "ddgan", 2, {"fid": 5.00, "is": 9.00, "recall": 0.50}),
    cell("ddpm", "ddpm", 1000, {"fid": 3.30, "is": 9.40, "recall": 0.57}, seconds=25.5),
    cell("ddpm-50", "ddpm", 50, {"fid": 4.70, "is": 8.70, "recall": 0.52}),
    cell("ddpm-10", "ddpm", 10, {"fid": 9.0}),  # the paper has no DDIM-10 row
    cell("stylegan2", "stylegan2", 1, {"fid": 2.95}, status="failed"),
]


def test_every_row_names_its_sources():
    for table in paper.TABLES.values():
        for row in table:
            ids = [s for s in row.sources.split(",") if s]
            assert set(ids) <= set(paper.SOURCES), row
            assert ids or "unverified" in row.note, row  # a value without a source says so
    ddgan = paper.TABLE1[0]
    assert ddgan.model == "DDGAN, T=4" and ddgan.values == {"is": 9.63, "fid": 3.75, "recall": 0.57, "nfe": 4,
                                                            "time_s": 0.21}


def test_cifar10_cells_against_table1_and_the_ablation():
    df = paper.compare(CIFAR, "cifar10")
    get = lambda c, m: df[(df["cell"] == c) & (df["metric"] == m)].iloc[0]
    assert get("ddgan-t4", "fid")["paper row"] == "table1: DDGAN, T=4"
    assert get("ddgan-t4", "fid")["delta"] == pytest.approx(0.25)
    assert get("ddgan-t4", "time_s")["delta"] == pytest.approx(0.112 - 0.21)
    assert "hardware differs: measured on NVIDIA H100 80GB HBM3" in get("ddgan-t4", "time_s")["note"]
    assert get("ddgan-t4", "fid")["note"] == ("FID of 100 samples stored as png (the paper: 50,000 JPEGs; N and "
                                              "JPEG both move FID)")
    assert "k=5 (the paper: Kynkaanniemi et al.'s improved recall, VGG16 features, k=3)" in get("ddgan-t4",
                                                                                                "recall")["note"]
    assert get("ddgan-t4", "is")["note"] == "IS here over 10 splits (the paper: 1)"
    paper_protocol = replace(CIFAR[0], key=replace(CIFAR[0].key, n=50_000, sample_format="jpeg"))
    assert paper.compare([paper_protocol], "cifar10").query("metric == 'fid'")["note"].iloc[0] == ""
    assert get("ddgan-t2", "recall")["paper row"] == "ablation: T=2" and "time_s" not in set(
        df[df["cell"] == "ddgan-t2"]["metric"])
    assert get("ddpm", "nfe")["delta"] == 0 and get("ddpm", "time_s")["paper"] == 80.5
    assert get("ddpm-50", "fid")["paper row"] == "table1: DDIM, T=50"
    assert set(df["cell"]) == {"ddgan-t4", "ddgan-t2", "ddpm", "ddpm-50"}  # no DDIM-10 row; failed cells left out


def test_time_on_a_v100_carries_no_hardware_note_and_stacked_data_uses_the_stacked_mnist_table():
    v100 = [cell("ddgan-t4", "ddgan", 4, {"fid": 3.8}, device="Tesla V100-SXM2-32GB")]
    assert paper.compare(v100, "cifar10").set_index("metric").loc["time_s", "note"] == ""
    stacked = [cell("ddgan-t4", "ddgan", 4, {"modes": 998, "mode_kl": 0.09}),
               cell("stylegan2", "stylegan2", 1, {"modes": 900, "mode_kl": 0.5})]
    df = paper.compare(stacked, "stacked-digits").set_index(["cell", "metric"])
    assert df.loc[("ddgan-t4", "modes"), "delta"] == -2 and df.loc[("ddgan-t4", "mode_kl"), "paper"] == 0.071
    assert df.loc[("stylegan2", "modes"), "paper row"] == "stacked-mnist: StyleGAN2"
    assert df.loc[("ddgan-t4", "modes"), "note"].startswith("data differs: stacked-digits")
    assert not paper.compare(stacked, "stacked-mnist")["note"].str.contains("data differs").any()


def test_a_model_trained_here_or_under_bf16_and_fewer_samples_than_the_papers_are_named_in_the_note():
    budget = {"iterations": 3750, "images_seen": 240_000, "seconds": 1320.0, "device": "AMD EPYC"}
    trained = replace(cell("ddgan-t4", "ddgan", 4, {"modes": 950, "mode_kl": 0.2}),
                      training={"preset": "stacked-mnist", "budget": budget})
    note = paper.compare([trained], "stacked-mnist").set_index("metric").loc["modes", "note"]
    assert note == ("trained here: stacked-mnist preset, 3750 iterations (240000 images, 22 min on AMD EPYC); the "
                    "paper trains to convergence on GPUs; modes and KL of 100 samples (the paper: 26,000)")
    full = replace(trained, key=replace(trained.key, n=26_000), training=None)
    assert paper.compare([full], "stacked-mnist").set_index("metric").loc["modes", "note"] == ""
    bf16 = replace(full, training={"given": True, "iterations": 3750, "train_speed": "bf16+cl"})
    assert paper.compare([bf16], "stacked-mnist").set_index("metric").loc["modes", "note"] == (
        "trained under bf16+cl (the paper: float32)")
    old = replace(full, training={"preset": "stacked-mnist", "budget": {**budget, "speed": "fp32"}})
    assert "trained under" not in paper.compare([old], "stacked-mnist").set_index("metric").loc["modes", "note"]


def test_write_paper_files_and_a_dataset_without_paper_numbers(tmp_path, capsys):
    written = write_paper(tmp_path, CIFAR, "cifar10")
    assert [p.name for p in written] == ["paper.md", "paper.csv"]
    assert "| ddgan-t4 | table1: DDGAN, T=4 | fid | 4 | 3.75 | 0.25 |" in (tmp_path / "paper.md").read_text()
    assert len(pd.read_csv(tmp_path / "paper.csv")) == len(paper.compare(CIFAR, "cifar10"))
    assert write_paper(tmp_path / "g", CIFAR, "gaussians25") == []
    assert "the paper reports no numbers" in capsys.readouterr().err
    assert write_paper(tmp_path, [], "cifar10") == []  # cells that no longer meet the paper: no stale comparison
    assert not (tmp_path / "paper.md").exists() and not (tmp_path / "paper.csv").exists()


def test_paper_tables_render_with_sources(tmp_path):
    assert paper.main(["--out", str(tmp_path / "t.md")]) == 0
    text = (tmp_path / "t.md").read_text()
    assert "| DDGAN, T=4 | 9.63 | 3.75 | 0.57 | 4 | 0.21 | S1,S2,S3 |  |" in text
    assert "| T=2 | 9.8 | 4.08 | 0.54 | S2 |  |" in text and "| DDGAN | 1000 | 0.071 | S2,S4 |  |" in text
