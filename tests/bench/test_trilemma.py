"""The trilemma harness end to end on the embedded 2D mixture, at test size: files, determinism, resume, failures."""

import json
import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest
import torch

from bench import results, trilemma
from bench.merge import main as merge_main
from bench.train import main as train_main
from bench.trilemma import main

TINY = ["--quick", "--train-steps", "30", "--n", "200", "--cell-n", "ddpm=100", "--batch-size", "50", "--rounds", "1",
        "--quiet"]
CELLS = {"ddgan-t4", "ddgan-t2", "ddpm", "ddpm-10", "ddpm-50", "stylegan2"}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """The same command in two folders."""
    outs = [tmp_path_factory.mktemp(name) for name in ("a", "b")]
    codes = [main([*TINY, "--out", str(out)]) for out in outs]
    return outs, codes


def cell_records(out) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in (out / "cells").glob("*.json")}


def test_trilemma_writes_every_file_for_every_model(two_runs):
    (out, _), (code, _) = two_runs
    assert code == 0
    records = cell_records(out)
    assert set(records) == CELLS
    for name in ("trilemma.csv", "trilemma.md", "trilemma.tex", "trilemma.png"):
        assert (out / name).stat().st_size > 0
    assert all((out / f"samples_{cell}.png").is_file() for cell in CELLS)
    labels = {r["label"] for r in records.values()}
    assert {"DDGAN (T=4)", "DDGAN (T=2)", "DDPM (1000 steps)", "DDIM (10 steps)", "DDIM (50 steps)",
            "StyleGAN2"} == labels
    r = records["ddpm-10"]
    assert r["timing"]["nfe"] == 10 and r["timing"]["batch"] == 100 and r["status"] == "ok"
    assert r["schema"] == results.SCHEMA and r["git_commit"] and r["command"][:3] == ["python", "-m", "bench.trilemma"]
    assert r["device"]["name"] and r["device"]["threads"] >= 1 and "device_info" not in r  # one description
    assert r["training"]["family"] == "ddpm" and r["model_config"]["schedule"]["T"] == 1000
    budget = r["training"]["budget"]  # what the training cost, stated beside its cells
    assert budget["iterations"] == 30 and budget["images_seen"] == 30 * budget["batch_size"] > 0
    assert budget["seconds"] > 0 and budget["device"] and budget["resumed"] is False
    header = (out / "trilemma.csv").read_text().splitlines()[0]
    assert "train_iterations" in header and "plateau" in header
    assert "preset" not in header.split(",") and "train_speed" not in header  # each model's own preset, fp32
    curve = r["training"]["curve"]  # --quick: 3 points, the last at the trained iterations
    assert [p["iterations"] for p in curve["points"]] == [10, 20, 30] and curve["metric"] == "hq_fraction"
    assert isinstance(curve["plateaued"], bool) and curve["steps"] == 100  # DDPM's curves sample with DDIM-100
    assert records["ddgan-t4"]["training"]["curve"]["steps"] is None
    assert records["ddpm"]["key"]["n"] == records["ddpm"]["protocol"]["n_samples"] == 100  # --cell-n ddpm=100
    assert r["key"]["n"] == r["protocol"]["n_samples"] == 200
    saved = json.loads((out / "learning_curves.json").read_text())["curves"]
    assert {c["model"] for c in saved} == {"ddgan-t4", "ddgan-t2", "ddpm", "stylegan2"}
    assert (out / "learning_curves.png").stat().st_size > 0
    assert {"modes", "hq_fraction", "fd_identity", "recall_identity"} <= set(r["metrics"])
    assert "| DDGAN (T=2) |" in (out / "trilemma.md").read_text()
    assert (out / "trilemma.md").read_text().startswith("> --quick is a smoke test")  # not to be read as a result


def test_trilemma_same_command_twice_gives_the_same_metrics(two_runs):
    """Training, sampling and metrics are seeded: the metrics agree exactly (tolerance 0); only timings differ."""
    (a, b), _ = two_runs
    ra, rb = cell_records(a), cell_records(b)
    for cell in CELLS:
        assert ra[cell]["metrics"] == rb[cell]["metrics"], cell


def test_trilemma_resume_keeps_finished_cells(two_runs, capsys):
    (out, _), _ = two_runs
    before = {p.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*.json")}
    assert main([*TINY, "--out", str(out)]) == 0
    assert {p.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*.json")} == before
    assert capsys.readouterr().err.count("done before, kept") == len(CELLS)


def test_trilemma_retime_times_finished_cells_again_and_keeps_their_metrics(two_runs, capsys):
    (_, out), _ = two_runs
    before = cell_records(out)
    assert main([*TINY, "--out", str(out), "--retime"]) == 0
    assert capsys.readouterr().err.count("retimed, ") == len(CELLS)
    after = cell_records(out)
    for cell in CELLS:
        assert after[cell]["metrics"] == before[cell]["metrics"]
        timed = after[cell]["timing"]
        assert timed["min_seconds"] == min(timed["seconds_all"]) and timed["iqr_seconds"] >= 0
        assert timed["load"]["cpus"] >= 1 and "noisy" in timed
    assert "seconds_iqr" in (out / "trilemma.csv").read_text().splitlines()[0]
    assert main([*TINY, "--out", str(out), "--retime", "--rounds", "2"]) == 0  # other rounds: retimed, not redone
    assert capsys.readouterr().err.count("retimed, ") == len(CELLS)
    again = cell_records(out)
    assert all(again[c]["key"]["rounds"] == 2 and len(again[c]["timing"]["seconds_all"]) == 2 for c in CELLS)
    assert all(again[c]["metrics"] == before[c]["metrics"] for c in CELLS)
    empty = out.parent / "retime-nothing"
    assert main([*TINY, "--out", str(empty), "--retime"]) == 2
    assert f"--retime times the finished cells of {empty} again, and it holds none" in capsys.readouterr().err
    assert not empty.exists()


def test_trilemma_failed_cell_is_reported_and_the_others_complete(two_runs, tmp_path, monkeypatch):
    measure = trilemma.measure

    def fail_ddim10(cell, model, run, world, reference=None):
        if cell.id == "ddpm-10":
            raise RuntimeError("injected failure")
        return measure(cell, model, run, world, reference)

    monkeypatch.setattr(trilemma, "measure", fail_ddim10)
    out = tmp_path / "out"
    shutil.copytree(two_runs[0][0], out)  # its trainings and other cells are reused: only ddpm-10 is measured
    (out / "cells" / "ddpm-10.json").unlink()
    assert main([*TINY, "--models", "ddpm", "stylegan2", "--out", str(out)]) == 1
    records = cell_records(out)
    assert records["ddpm-10"]["status"] == "failed" and "injected failure" in records["ddpm-10"]["reason"]
    assert records["ddpm"]["status"] == records["stylegan2"]["status"] == "ok"
    assert "failed: " in (out / "trilemma.md").read_text()
    assert not (out / ".lock").exists()  # released at the end


def test_trilemma_cell_failing_before_its_model_loads_is_labelled_with_its_variants_T(two_runs, tmp_path,
                                                                                        monkeypatch):
    """The label of a DDGAN cell whose model never loaded comes from its variant (DDGAN (T=2)), not a '?'."""
    load = trilemma.load

    def fail_t2(cell, checkpoint, run):
        if cell.id == "ddgan-t2":
            raise RuntimeError("unreadable checkpoint")
        return load(cell, checkpoint, run)

    monkeypatch.setattr(trilemma, "load", fail_t2)
    out = tmp_path / "out"
    shutil.copytree(two_runs[0][0], out)
    (out / "cells" / "ddgan-t2.json").unlink()
    assert main([*TINY, "--models", "ddgan", "ddpm", "--out", str(out)]) == 1  # the others kept, not measured
    record = cell_records(out)["ddgan-t2"]
    assert record["status"] == "failed" and record["label"] == "DDGAN (T=2)" and record["steps"] is None
    assert "| DDGAN (T=2) |" in (out / "trilemma.md").read_text()


def test_trilemma_speed_adds_a_fast_cell_per_cell_with_its_quality_cost(two_runs, tmp_path):
    """--speed bf16: one more cell per cell, on the float32 cell's seeds and N, recording its setting and its
    cost against the float32 cell (pixel differences of the first images, metric changes, the flag)."""
    out = tmp_path / "out"
    shutil.copytree(two_runs[0][0], out)  # trainings and float32 cells are reused: only the fast cells run
    assert main([*TINY, "--models", "ddgan", "ddpm", "--speed", "bf16", "--out", str(out)]) == 0
    records = cell_records(out)
    fast = {c for c in records if "@" in c}
    assert fast == {"ddgan-t4@bf16", "ddgan-t2@bf16", "ddpm@bf16", "ddpm-10@bf16", "ddpm-50@bf16"}
    r, ref = records["ddgan-t4@bf16"], records["ddgan-t4"]
    assert r["speed"]["label"] == "bf16" and r["speed"]["batch_invariant"] and ref["speed"]["label"] == "fp32"
    assert r["label"] == ref["label"] and r["timing"]["nfe"] == 4 and r["key"]["n"] == ref["key"]["n"]
    assert records["ddpm@bf16"]["key"]["n"] == 100  # --cell-n ddpm=100 holds for its fast cells too
    cost = r["quality_cost"]
    assert cost["against"] == "ddgan-t4" and cost["images"] == 100 and cost["metrics_compared"]
    assert 0 < cost["mean_abs_diff"] <= cost["max_abs_diff"]
    # A 30-iteration DDGAN's generator is far from smooth, so bfloat16 can move its points a lot; DDPM's many
    # small steps keep them within the pixel tolerance.
    ddpm = records["ddpm-10@bf16"]["quality_cost"]
    assert 0 < ddpm["mean_abs_diff"] <= ddpm["max_abs_diff"] < 0.1 and ddpm["mean_abs_diff"] <= 0.02
    assert cost["delta"]["hq_fraction"] == r["metrics"]["hq_fraction"] - ref["metrics"]["hq_fraction"]
    assert cost["quality_metric"] == "hq_fraction" and (cost["flagged"] is None) == (
        cost["mean_abs_diff"] <= 0.02 and abs(cost["delta"]["hq_fraction"]) <= 0.05 * ref["metrics"]["hq_fraction"])
    header = (out / "trilemma.csv").read_text().splitlines()[0].split(",")
    assert {"speed", "max_abs_diff", "mean_abs_diff", "quality_change", "quality_flag"} <= set(header)
    assert "| ddgan-t4@bf16 |" in (out / "trilemma.md").read_text()


def test_trilemma_train_speed_trains_under_the_setting_and_every_cell_records_it(tmp_path, capsys):
    """--train-speed bf16: the harness trains under bf16 (the checkpoint, trained.json and the table say so); the
    finished training is reused under the same setting and its folder refuses another one before any work; a
    given checkpoint's cells record the iterations and setting its meta states."""
    args = ["--quick", "--train-steps", "30", "--n", "200", "--batch-size", "50", "--rounds", "1", "--quiet",
            "--models", "stylegan2", "--curve-points", "0"]
    out = tmp_path / "out"
    assert main([*args, "--train-speed", "bf16", "--out", str(out)]) == 0
    trained = json.loads((out / "train" / "stylegan2" / "trained.json").read_text())
    assert trained["train_speed"] == trained["budget"]["speed"] == "bf16"
    assert trained["command"].endswith(" --speed bf16")
    checkpoint = out / "train" / "stylegan2" / "checkpoint.pt"
    assert torch.load(checkpoint, weights_only=True)["meta"]["train_speed"] == "bf16"
    assert cell_records(out)["stylegan2"]["training"]["train_speed"] == "bf16"
    table = pd.read_csv(out / "trilemma.csv")
    assert list(table["train_speed"]) == ["bf16"] and list(table["train_iterations"]) == [30]
    capsys.readouterr()
    assert main([*args, "--train-speed", "bf16", "--out", str(out), "--retime"]) == 0  # reused, not trained again
    assert "training stylegan2" not in capsys.readouterr().err
    assert main([*args, "--train-steps", "40", "--out", str(out)]) == 2  # would resume it under fp32
    assert "trained under bf16, not fp32" in capsys.readouterr().err
    assert torch.load(checkpoint, weights_only=True)["meta"]["step"] == 30
    given = shutil.copy(checkpoint, tmp_path / "sg2.pt")  # away from its trained.json
    assert main([*args, "--checkpoints", f"stylegan2={given}", "--out", str(tmp_path / "given")]) == 0
    record = cell_records(tmp_path / "given")["stylegan2"]
    assert record["training"] == {"given": True, "iterations": 30, "train_speed": "bf16"}
    assert list(pd.read_csv(tmp_path / "given" / "trilemma.csv")["train_speed"]) == ["bf16"]
    assert main([*args, "--train-speed", "bf16+compile", "--out", str(tmp_path / "x")]) == 2
    assert "compile and graphs are sampling settings" in capsys.readouterr().err


def test_trilemma_presets_train_another_preset_of_the_dataset(tmp_path, capsys):
    """--presets ddgan=tiny: the harness trains that preset (trained.json, its command and the cells' model
    config say so); presets of other data, of families the run does not train, and unknown ones are refused
    before any work, all at once."""
    args = ["--dataset", "stacked-digits", "--models", "ddgan", "--quick", "--train-steps", "2", "--n", "100",
            "--batch-size", "50", "--rounds", "1", "--quiet", "--curve-points", "0"]
    out = tmp_path / "out"
    assert main([*args, "--presets", "ddgan=tiny", "--out", str(out)]) == 0
    trained = json.loads((out / "train" / "ddgan-t4" / "trained.json").read_text())
    assert trained["preset"] == "tiny" and " --preset tiny " in trained["command"]
    records = cell_records(out)
    assert set(records) == {"ddgan-t4", "ddgan-t2"}
    assert {r["model_config"]["generator"]["num_channels_dae"] for r in records.values()} == {16}  # tiny's
    assert records["ddgan-t2"]["model_config"]["diffusion"]["num_timesteps"] == 2
    assert list(pd.read_csv(out / "trilemma.csv")["preset"]) == ["tiny", "tiny"]  # not the dataset's own
    capsys.readouterr()
    assert main([*args, "--presets", "ddgan=gaussians25", "ddpm=stacked-digits", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "--presets names ddpm, which this run does not train" in err and not (tmp_path / "x").exists()
    assert main([*args, "--presets", "ddgan=gaussians25", "--out", str(tmp_path / "x")]) == 2
    assert "ddgan=gaussians25: that preset trains on gaussians25, not stacked-digits" in capsys.readouterr().err
    assert main([*args, "--presets", "ddgan=nope", "stylegan2", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "unknown ddgan preset 'nope'" in err and "expected FAMILY=PRESET" in err


def test_trilemma_speed_refuses_what_the_device_cannot_run(tmp_path, capsys):
    out = tmp_path / "o"
    assert main([*TINY, "--device", "cpu", "--speed", "fp16", "bf16+turbo", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "'turbo' is not one of" in err and not out.exists()
    assert main([*TINY, "--device", "cpu", "--speed", "bf16+graphs", "--out", str(out)]) == 2
    assert "CUDA graphs need a CUDA device" in capsys.readouterr().err and not out.exists()


def test_trilemma_broken_checkpoint_stops_before_any_work(tmp_path, capsys):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint")
    out = tmp_path / "out"
    assert main([*TINY, "--models", "ddpm", "stylegan2", "--checkpoints", f"ddpm={bad}", "--out", str(out)]) == 2
    assert "error: " in capsys.readouterr().err and not out.exists()


def test_trilemma_cifar10_offline_lists_every_problem_at_once(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    out = tmp_path / "o"
    assert main(["--dataset", "cifar10", "--root", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and all(line.startswith("error: ") for line in err)
    assert "Inception-v3 weights not found" in err[0] and "cifar10" in err[1].lower()
    assert "pass --checkpoints for ddgan, ddpm, stylegan2" in err[2]
    given = ["--models", "ddgan", "ddpm", "--checkpoints", f"ddgan={tmp_path / 'a.pt'}", f"ddpm={tmp_path / 'b.pt'}"]
    assert main(["--dataset", "cifar10", "--root", str(tmp_path / "nowhere"), "--out", str(out), *given]) == 2
    err = capsys.readouterr().err
    assert "a.pt does not exist" in err and "b.pt does not exist" in err  # every missing checkpoint, not the first
    assert not out.exists()


def test_trilemma_cell_n_must_name_a_cell_of_the_run(tmp_path, capsys):
    out = tmp_path / "o"
    assert main([*TINY, "--models", "ddpm", "--cell-n", "ddpm-7=10", "--out", str(out)]) == 2
    assert ("error: --cell-n names ddpm-7, which this run does not measure; its cells are ddpm, ddpm-10, ddpm-50"
            in capsys.readouterr().err)
    assert main([*TINY, "--cell-n", "ddpm=x", "--out", str(out)]) == 2
    assert "expected CELL=N with N >= 2" in capsys.readouterr().err and not out.exists()


def test_trilemma_trains_on_real_stacked_mnist_with_root(tmp_path, mnist_root, capsys):
    """stacked-mnist is file-backed: the harness trains its presets on it from --root (16 px) and counts modes
    with mnist-cnn; without the files it stops at once and says where it looked."""
    assert main(["--dataset", "stacked-mnist", "--root", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "MNIST not found" in capsys.readouterr().err
    out = tmp_path / "sm"
    assert main(["--dataset", "stacked-mnist", "--root", str(mnist_root), "--models", "stylegan2", "--train-steps",
                 "2", "--curve-points", "0", "--n", "40", "--rounds", "1", "--quiet", "--out", str(out)]) == 0
    (record,) = cell_records(out).values()
    assert record["training"]["preset"] == "stacked-mnist" and record["model_config"]["data_shape"] == [3, 16, 16]
    assert f"--data-root {mnist_root}" in record["training"]["command"]
    assert {"modes", "mode_kl", "fd_mnist", "ref_modes"} <= set(record["metrics"])
    assert record["protocol"]["extractor"] == "mnist-cnn"


def test_trilemma_two_gloo_processes_equal_one_process(two_runs, tmp_path):
    """torchrun with 2 CPU processes (gloo): each draws and embeds half of every cell's samples (whole batches
    of 50); the metrics equal the single-process run's exactly (tolerance 0)."""
    (single, _), _ = two_runs
    out = tmp_path / "two"
    # torchrun sets OMP_NUM_THREADS=1 unless it is set; CPU numerics depend on the thread count, so give each
    # process the single-process run's count.
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    args = [a if a != "--n" else "--num-samples" for a in TINY]  # torchrun's own parser would take --n
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_port", str(29500 + os.getpid() % 1000), "-m", "bench.trilemma", *args,
                           "--out", str(out)], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    one, two = cell_records(single), cell_records(out)
    assert set(two) == CELLS
    for cell in CELLS:
        assert two[cell]["world_size"] == 2 and one[cell]["world_size"] == 1
        assert two[cell]["metrics"] == one[cell]["metrics"], cell


def test_trilemma_inception_beside_the_digit_classifier_on_jpeg_samples(tmp_path, inception_port):
    """--inception-n: Inception FID/KID/P/R on the first N samples of a stacked-digits cell, beside digits-cnn's
    numbers and the mode count on all of them; --sample-format jpeg measures the samples after a JPEG round trip."""
    assert train_main(["--model", "ddgan", "--preset", "tiny", "--out", str(tmp_path / "t"), "--max-steps", "2",
                       "--quiet"]) == 0
    out = tmp_path / "out"
    assert main(["--dataset", "stacked-digits", "--models", "ddgan", "--checkpoints",
                 f"ddgan={tmp_path / 't' / 'checkpoint.pt'}", "--n", "16", "--inception-n", "8", "--inception-weights",
                 str(inception_port), "--sample-format", "jpeg", "--rounds", "1", "--quiet", "--out", str(out)]) == 0
    (record,) = cell_records(out).values()
    assert {"fid", "kid", "precision", "recall", "fd_digits", "modes", "mode_kl"} <= set(record["metrics"])
    assert "is" in record["unavailable"] and record["key"]["inception_n"] == 8
    assert record["protocol"]["inception"]["n_samples"] == 8 and record["protocol"]["n_samples"] == 16
    assert record["protocol"]["stored_as"] == "jpeg" and record["key"]["sample_format"] == "jpeg"
    assert record["protocol"]["inception"]["weights_layout"] == "torchscript"


def test_merge_takes_each_cell_from_the_last_source_and_writes_the_tables_in_the_harness_order(two_runs, tmp_path):
    """A folder with one cell measured again (b's ddgan-t4) merged over a finished run: every cell, b's timing in
    its row, the grids copied, the curves of all four trained models, rows in the harness's order."""
    (a, b), _ = two_runs
    again = tmp_path / "again"
    (again / "cells").mkdir(parents=True)
    shutil.copy(b / "cells" / "ddgan-t4.json", again / "cells")
    shutil.copy(b / "samples_ddgan-t4.png", again)
    out = tmp_path / "merged"
    assert merge_main([str(a), str(again), "--out", str(out), "--paper"]) == 0
    assert set(cell_records(out)) == CELLS
    assert (out / "cells" / "ddgan-t4.json").read_bytes() == (b / "cells" / "ddgan-t4.json").read_bytes()
    assert (out / "cells" / "ddpm.json").read_bytes() == (a / "cells" / "ddpm.json").read_bytes()
    assert all((out / f"samples_{cell}.png").is_file() for cell in CELLS)
    rows = pd.read_csv(out / "trilemma.csv")
    assert list(rows["cell"]) == ["ddgan-t4", "ddgan-t2", "ddpm", "ddpm-10", "ddpm-50", "stylegan2"]
    seconds = dict(zip(rows["cell"], rows["seconds_per_batch"], strict=True))
    assert seconds["ddgan-t4"] == pytest.approx(cell_records(b)["ddgan-t4"]["timing"]["seconds"])
    assert seconds["ddpm"] == pytest.approx(cell_records(a)["ddpm"]["timing"]["seconds"])
    saved = json.loads((out / "learning_curves.json").read_text())["curves"]
    assert {c["model"] for c in saved} == {"ddgan-t4", "ddgan-t2", "ddpm", "stylegan2"}
    assert (out / "trilemma.md").read_text().startswith("> --quick is a smoke test")  # the cells' own runs were quick
    assert merge_main([str(out), str(again), "--out", str(out)]) == 0  # OUT as a source: merged in place
    assert set(cell_records(out)) == CELLS


def test_merge_puts_a_given_checkpoint_cell_with_its_family_and_shows_its_configs_preset(two_runs, tmp_path):
    """A DDGAN measured from a given checkpoint (cell `ddgan`, a config naming its preset under `preset`) merged
    with trained DDPM cells: its row leads, as its family does, and the preset column shows its config's preset."""
    (a, _), _ = two_runs
    given = tmp_path / "given"
    (given / "cells").mkdir(parents=True)
    record = json.loads((a / "cells" / "ddgan-t4.json").read_text())
    record["cell"] = record["key"]["cell"] = "ddgan"
    record["training"] = {"given": True, "iterations": 30, "train_speed": "fp32"}
    assert record["model_config"]["preset"] == "gaussians25"
    record["model_config"]["preset"] = "gaussians25-wide"
    (given / "cells" / "ddgan.json").write_text(json.dumps(record))
    trained = tmp_path / "trained"
    (trained / "cells").mkdir(parents=True)
    for cell in ("ddpm", "ddpm-10"):
        shutil.copy(a / "cells" / f"{cell}.json", trained / "cells")
    out = tmp_path / "merged"
    assert merge_main([str(trained), str(given), "--out", str(out)]) == 0
    rows = pd.read_csv(out / "trilemma.csv")
    assert list(rows["cell"]) == ["ddgan", "ddpm", "ddpm-10"]
    assert list(rows["preset"]) == ["gaussians25-wide", "gaussians25", "gaussians25"]


def test_merge_refuses_folders_it_cannot_merge(two_runs, tmp_path, capsys):
    (a, _), _ = two_runs
    empty = tmp_path / "empty"
    empty.mkdir()
    assert merge_main([str(a), str(empty), "--out", str(tmp_path / "m")]) == 2
    assert "holds no cell records" in capsys.readouterr().err
    other = tmp_path / "other"
    (other / "cells").mkdir(parents=True)
    record = json.loads((a / "cells" / "stylegan2.json").read_text())
    record["cell"], record["key"]["cell"], record["key"]["dataset"] = "sg2", "sg2", "ring8"
    (other / "cells" / "sg2.json").write_text(json.dumps(record))
    assert merge_main([str(a), str(other), "--out", str(tmp_path / "m")]) == 2
    assert f"different datasets ({a}: gaussians25, {other}: ring8)" in capsys.readouterr().err
    for path in (a / "cells").glob("*.json"):  # every cell of a replaced by one of another dataset is refused too
        record = json.loads(path.read_text())
        record["key"]["dataset"] = "ring8"
        (other / "cells" / path.name).write_text(json.dumps(record))
    assert merge_main([str(a), str(other), "--out", str(tmp_path / "m")]) == 2
    assert "different datasets" in capsys.readouterr().err
    assert merge_main([str(other), "--out", str(a)]) == 2  # a's own cells would be left out of its tables
    assert "holds cell records but is not a source" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
