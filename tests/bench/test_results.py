"""bench.results: the cell record's one schema, written and read back, older records upgraded, and resume keys."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from bench import merge, report, results
from bench.results import CellKey, CellRecord
from bench.timing import PaperTime, Throughput

COMMITTED = Path(__file__).resolve().parents[2] / "results" / "trilemma-stacked-digits" / "cells"  # schema 1
TRILEMMA_FOLDERS = sorted(COMMITTED.parents[1].glob("trilemma-*/"))
KEY = CellKey("ddpm-10", "gaussians25", 200, 0, 1, "ab" * 32)


def record(**changes) -> CellRecord:
    timing = PaperTime(100, 2, 0.5, [0.4, 0.6], 10, 2**20, None, Throughput(250.0, 100, {100: 250.0}))
    base = CellRecord("ddpm-10", "DDIM (10 steps)", "ddpm", 10, KEY, metrics={"modes": 23.0}, timing=timing,
                      command=("python", "-m", "bench.trilemma"), device={"name": "a CPU", "device": "cpu"})
    return replace(base, **changes)


def test_record_written_and_read_back_equal(tmp_path):
    path = results.write(tmp_path, record())
    assert path == results.cell_path(tmp_path, "ddpm-10")
    data = json.loads(path.read_text())
    assert data["schema"] == results.SCHEMA and data["timing"]["nfe"] == 10 and data["key"]["n"] == 200
    back = results.read(tmp_path, "ddpm-10")
    assert back.timing.throughput.images_per_s == 250.0 and back.key == KEY and back.metrics == {"modes": 23.0}
    assert replace(back, timing=None) == replace(record(), timing=None)


def test_done_needs_an_ok_record_made_under_the_same_key(tmp_path):
    results.write(tmp_path, record())
    assert results.done(tmp_path, KEY) == results.read(tmp_path, "ddpm-10")
    assert results.done(tmp_path, replace(KEY, n=201)) is None
    results.write(tmp_path, record(status="failed", reason="RuntimeError: x"))
    assert results.done(tmp_path, KEY) is None


def test_unreadable_or_foreign_records_are_measured_again_by_the_harness_and_named_by_read_all(tmp_path):
    (tmp_path / "cells").mkdir()
    (tmp_path / "cells" / "a.json").write_text("{not json")
    (tmp_path / "cells" / "b.json").write_text(json.dumps({"schema": "something/else", "cell": "b"}))
    (tmp_path / "cells" / "c.json").write_text(json.dumps({**results.to_json(record()), "surprise": 1}))
    assert [results.read(tmp_path, c) for c in "abc"] == [None, None, None]  # the harness redoes these cells
    with pytest.raises(results.CellRecordError) as error:
        results.read_all(tmp_path)
    assert [p.split(": not a readable cell record")[0] for p in str(error.value).split("; ")[:3]] == [
        str(tmp_path / "cells" / f"{c}.json") for c in "abc"]


def test_schema_1_records_are_read_with_one_device_description(tmp_path):
    shutil.copytree(COMMITTED, tmp_path / "cells")
    records = {r.cell: r for r in results.read_all(tmp_path)}
    r = records["ddgan-t4"]
    old = json.loads((COMMITTED / "ddgan-t4.json").read_text())
    assert old["schema"] == "ddgan-bench/trilemma-cell/1" and "device_info" in old
    assert r.device["name"] == old["device_info"]["cpu"] and r.device["threads"] == old["device_info"]["threads"]
    assert r.timing.nfe == 4 and r.metrics == old["metrics"] and r.ok and r.key.sample_format == "png"
    assert len(records) == len(list(COMMITTED.glob("*.json")))


def test_committed_main_job_records_carry_budget_and_curve():
    records = results.read_all(COMMITTED.parents[1] / "trilemma-gaussians25")
    assert len(records) == 8 and all(r.ok and r.key.sample_format == "png" for r in records)
    assert all(r.training["budget"]["iterations"] > 0 and len(r.training["curve"]["points"]) == 5 for r in records)


def test_committed_stacked_mnist_run_is_real_data_at_the_stated_protocol():
    """results/trilemma-stacked-mnist: the four families trained here on real Stacked MNIST (16 px CPU presets),
    modes and KL from mnist-cnn (26,000 samples but where --cell-n says fewer), Inception at a stated N."""
    folder = COMMITTED.parents[1] / "trilemma-stacked-mnist"
    records = {r.cell: r for r in results.read_all(folder)}
    assert set(records) == {"ddgan-t4", "ddgan-t2", "ddpm", "ddpm-10", "ddpm-20", "ddpm-50", "ddpm-100", "stylegan2"}
    for r in records.values():
        assert r.ok and r.key.dataset == "stacked-mnist" and r.training["preset"] == "stacked-mnist"
        assert r.protocol["extractor"] == "mnist-cnn" and r.protocol["n_samples"] == r.key.n
        assert r.protocol["inception"]["n_samples"] == min(r.key.inception_n, r.key.n) and "fid" in r.metrics
        assert "--data-root ../shared/data" in r.training["command"] and r.training["curve"]["points"]
    assert all(records[c].key.n == 26_000 for c in ("ddgan-t4", "ddgan-t2", "stylegan2"))
    assert all(r.key.n < 26_000 for c, r in records.items() if c.startswith("ddpm"))  # --cell-n: stated N
    assert (folder / "paper.md").is_file() and (folder / "learning_curves.json").is_file()


def test_committed_stacked_mnist_five_epoch_ddgan_states_its_budget_and_channel_readings():
    """results/trilemma-stacked-mnist-ddgan-5-epochs: one DDGAN (T=4) cell trained 5 epochs (the preset trains 2),
    with the per-channel readings that explain its mode count."""
    (r,) = results.read_all(COMMITTED.parents[1] / "trilemma-stacked-mnist-ddgan-5-epochs")
    assert r.ok and r.cell == "ddgan-t4" and r.key.dataset == "stacked-mnist" and r.key.n == 26_000
    assert r.training["config"]["train"]["num_epoch"] == 5 and r.training["budget"]["iterations"] == 9375
    assert len(r.training["curve"]["points"]) == 5
    assert {"digit_kl", "confident_share", "ref_digit_kl", "ref_confident_share"} <= set(r.metrics)


def test_committed_stacked_mnist_24px_ddpm_was_trained_by_the_harness_from_its_preset():
    """results/trilemma-stacked-mnist-ddpm-24px: DDPM's stacked-mnist-24 preset trained by the harness
    (--presets), its DDPM and DDIM cells at the 16 px run's N, each with its reference at that N."""
    folder = COMMITTED.parents[1] / "trilemma-stacked-mnist-ddpm-24px"
    records = {r.cell: r for r in results.read_all(folder)}
    assert set(records) == {"ddpm", "ddpm-10", "ddpm-20", "ddpm-50", "ddpm-100"}
    for r in records.values():
        assert r.ok and r.key.dataset == "stacked-mnist" and r.training["preset"] == "stacked-mnist-24"
        assert r.model_config["data_shape"] == [3, 24, 24] and r.train_speed == "fp32"
        assert " --preset stacked-mnist-24 " in r.training["command"] and len(r.training["curve"]["points"]) == 3
        assert r.protocol["n_samples"] == r.key.n and {"ref_modes", "ref_mode_kl"} <= set(r.metrics)
    assert [records[c].key.n for c in ("ddpm", "ddpm-10", "ddpm-20")] == [100, 2000, 1000]
    assert "--presets" in records["ddpm"].command
    table = pd.read_csv(folder / "trilemma.csv")
    assert list(table["preset"]) == ["stacked-mnist-24"] * 5


def test_committed_bf16_trained_ddgan_cell_says_how_its_checkpoint_trained():
    """results/trilemma-stacked-mnist-ddgan-24px-bf16: a given checkpoint's cell takes its iterations and training
    setting from the checkpoint's meta; the table and paper.md show the setting."""
    folder = COMMITTED.parents[1] / "trilemma-stacked-mnist-ddgan-24px-bf16"
    (r,) = results.read_all(folder)
    assert r.ok and r.training == {"given": True, "iterations": 3750, "train_speed": "bf16"}
    assert r.train_speed == "bf16" and r.key.n == 26_000 and r.metrics["modes"] == 938
    assert "train_speed" in (folder / "trilemma.csv").read_text().splitlines()[0]
    assert list(pd.read_csv(folder / "trilemma.csv")["preset"]) == ["stacked-mnist-24"]  # from DDGAN's config
    assert "trained under bf16 (the paper: float32)" in (folder / "paper.md").read_text()


def test_committed_stacked_mnist_24px_ddpm_at_7500_iterations_continues_the_harness_run():
    """results/trilemma-stacked-mnist-ddpm-24px-7500: the harness's 2500-iteration DDPM at 24 px resumed to 7500
    and measured as a given checkpoint, DDIM-10 at the full 26,000 samples of DDGAN's 24 px cell."""
    folder = COMMITTED.parents[1] / "trilemma-stacked-mnist-ddpm-24px-7500"
    records = {r.cell: r for r in results.read_all(folder)}
    assert set(records) == {"ddpm", "ddpm-10", "ddpm-20", "ddpm-50", "ddpm-100"}
    for r in records.values():
        assert r.ok and r.key.dataset == "stacked-mnist" and r.preset == "stacked-mnist-24"
        assert r.training == {"given": True, "iterations": 7500, "train_speed": "fp32"}
        assert r.model_config["data_shape"] == [3, 24, 24] and r.protocol["n_samples"] == r.key.n
    assert [records[c].key.n for c in ("ddpm", "ddpm-10", "ddpm-20")] == [100, 26_000, 1000]
    ddim10 = records["ddpm-10"].metrics
    assert ddim10["modes"] == 978 and ddim10["ref_modes"] == 1000
    assert len({r.key.checkpoint_sha256 for r in records.values()}) == 1


def test_committed_stacked_mnist_24px_table_merges_both_models_and_ddgans_curve():
    """results/trilemma-stacked-mnist-24px: DDGAN-24 trained again (its weights equal the first run's, so every
    metric of its cell does) beside the 7500-iteration DDPM's cells, copied unchanged; DDGAN's curve points name
    their checkpoints, the last being the measured one."""
    results_dir = COMMITTED.parents[1]
    folder = results_dir / "trilemma-stacked-mnist-24px"
    records = {r.cell: r for r in results.read_all(folder)}
    assert set(records) == {"ddgan", "ddpm", "ddpm-10", "ddpm-20", "ddpm-50", "ddpm-100"}
    ddgan = records["ddgan"]
    assert ddgan.training == {"given": True, "iterations": 3750, "train_speed": "fp32"}
    (first,) = results.read_all(results_dir / "trilemma-stacked-mnist-ddgan-24px")
    assert ddgan.metrics == first.metrics and ddgan.metrics["modes"] == 904 and ddgan.key.n == 26_000
    for cell in ("ddpm", "ddpm-10", "ddpm-100"):
        copied = (folder / "cells" / f"{cell}.json").read_bytes()
        assert copied == (results_dir / "trilemma-stacked-mnist-ddpm-24px-7500" / "cells" / f"{cell}.json").read_bytes()
    table = pd.read_csv(folder / "trilemma.csv")
    assert list(table["cell"])[:2] == ["ddgan", "ddpm"] and set(table["preset"]) == {"stacked-mnist-24"}
    curve = [json.loads((folder / f"curve-ddgan-{s}.json").read_text()) for s in (1250, 2500, 3750)]
    assert [c["source"]["training"]["iterations"] for c in curve] == [1250, 2500, 3750]
    assert curve[-1]["source"]["checkpoint_sha256"] == ddgan.key.checkpoint_sha256
    assert all(c["protocol"]["n_samples"] == 500 and c["source"]["steps"] == 4 for c in curve)


@pytest.mark.parametrize("folder", TRILEMMA_FOLDERS, ids=lambda p: p.name)
def test_committed_table_is_what_bench_report_writes_from_its_cells(folder):
    """A change to the table reaches results/ too: `python -m bench.merge F --out F` (with --paper where F has
    paper.md) writes a folder's tables again from its cells. Rows may come in another order: the harness writes
    given checkpoints' cells in the order of --checkpoints, bench.merge in the order of their names."""
    ours = report.table(merge.ordered(results.read_all(folder))).to_csv(index=False).splitlines()
    committed = (folder / "trilemma.csv").read_text().splitlines()
    assert committed[0] == ours[0] and sorted(committed[1:]) == sorted(ours[1:])


def test_merge_stops_on_unreadable_cell_records_naming_each(tmp_path, capsys):
    """A truncated or foreign cell file in a source is an error naming it, not a cell silently taken from an
    earlier source."""
    main_job = COMMITTED.parents[1] / "trilemma-gaussians25"
    broken = tmp_path / "broken"
    (broken / "cells").mkdir(parents=True)
    (broken / "cells" / "ddpm.json").write_text((main_job / "cells" / "ddpm.json").read_text()[:100])
    (broken / "cells" / "ddpm-10.json").write_text('{"hello": 1}')
    assert merge.main([str(main_job), str(broken), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert f"{broken / 'cells' / 'ddpm-10.json'}: not a readable cell record" in err
    assert f"{broken / 'cells' / 'ddpm.json'}: not a readable cell record (JSONDecodeError" in err
    assert not (tmp_path / "m").exists()
