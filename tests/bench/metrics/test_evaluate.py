"""evaluate() and python -m bench.metrics: metric names, the reference cache, sample formats and clear errors."""

import importlib
import json

import pytest
import torch
from torchvision.utils import save_image

from bench import report
from bench.data import build_dataset
from bench.metrics import Reference, cache, evaluate
from bench.metrics import __main__ as metrics_main
from bench.metrics.__main__ import main
from bench.metrics.evaluate import DEFAULT_EXTRACTOR, metric_name, table_metric
from bench.registry import family
from bench.train import TrainJob, train_model
from ddgan_ref.provenance import file_sha256
from tests.bench.metrics.test_extractors import random_inception_file


def digits(n: int = 120, train: bool = False) -> torch.Tensor:
    ds = build_dataset("digits", train=train, size=n, image_size=16)
    return torch.stack([ds[i][0] for i in range(len(ds))])


def test_metric_names_say_which_extractor_made_them():
    assert [metric_name(m, "") for m in ("fd", "kd", "kd_std", "is", "precision")] == [
        "fid", "kid", "kid_std", "is", "precision"]
    assert [metric_name(m, "digits") for m in ("fd", "kd_std", "coverage")] == [
        "fd_digits", "kd_digits_std", "coverage_digits"]


def test_inception_path_through_evaluate_names_metrics_fid_kid_is(tmp_path):
    """Inception (random weights with the official keys) on an image folder: the only extractor giving fid/is."""
    folder = tmp_path / "folder"
    folder.mkdir()
    for i, img in enumerate(torch.rand(8, 3, 24, 24)):
        save_image(img, folder / f"{i}.png")
    weights = random_inception_file(tmp_path / "inception.pth")
    out = evaluate(torch.rand(7, 3, 24, 24) * 2 - 1, Reference("image-folder", root=str(folder)),
                   weights=weights, cache_root=tmp_path / "cache")
    assert {"fid", "kid", "kid_std", "is", "is_std", "precision", "recall", "density", "coverage"} == set(
        out["metrics"])
    assert out["protocol"]["extractor"] == "inception-v3-compat" and out["protocol"]["feature_dim"] == 2048
    assert out["protocol"]["n"] == 7 and out["protocol"]["n_samples"] == 7  # as many references as samples


def test_reference_size_is_capped_by_the_split():
    out = evaluate(digits(40), Reference("digits", split="test", n=1000), use_cache=False)
    assert out["protocol"]["n"] == 359 and out["protocol"]["split"] == "test"
    assert out["protocol"]["knobs"]["kid_subset_size"] == 40  # KID's subsets, capped by the 40 samples


def test_reference_cache_is_keyed_by_n_and_weights(tmp_path):
    x = digits()
    first = evaluate(x, "digits", cache_root=tmp_path)
    files = sorted(tmp_path.iterdir())
    assert len(files) == 1
    again = evaluate(x, "digits", cache_root=tmp_path)
    assert again["metrics"] == first["metrics"] and sorted(tmp_path.iterdir()) == files
    evaluate(x, Reference("digits", n=60), cache_root=tmp_path)
    assert len(list(tmp_path.iterdir())) == 2  # another N, another entry
    key = torch.load(files[0], weights_only=True)["key"]
    assert key["n"] == 120 and key["weights_sha256"] == first["protocol"]["weights_sha256"]
    assert key["extractor"] == "digits-cnn" and key["split"] == "train"


def test_damaged_or_foreign_cache_entries_are_recomputed(tmp_path):
    x = digits()
    first = evaluate(x, "digits", cache_root=tmp_path)
    (entry,) = tmp_path.iterdir()
    entry.write_bytes(entry.read_bytes()[:100])
    with pytest.warns(UserWarning, match="unreadable metrics cache entry"):
        assert evaluate(x, "digits", cache_root=tmp_path)["metrics"] == first["metrics"]
    payload = torch.load(entry, weights_only=True)
    payload["key"]["n"] = 5  # a file whose key is not the one asked for is never used
    torch.save(payload, entry)
    assert cache.load(tmp_path, {**{k: v for k, v in payload["key"].items() if k != "version"}, "n": 120}) is None


def test_an_image_folder_written_again_under_its_name_is_not_served_stale_features(tmp_path):
    folder = tmp_path / "ref"
    folder.mkdir()

    def write(seed):
        g = torch.Generator().manual_seed(seed)
        for i in range(12):
            save_image(torch.rand(3, 8, 8, generator=g), folder / f"{i:03d}.png")

    write(0)
    samples = torch.rand(12, 3, 8, 8, generator=torch.Generator().manual_seed(5)) * 2 - 1
    ref = Reference("image-folder", root=str(folder))
    first = evaluate(samples, ref, "identity", cache_root=tmp_path / "cache")["metrics"]
    assert evaluate(samples, ref, "identity", cache_root=tmp_path / "cache")["metrics"] == first  # cached
    write(1)  # the same names and count, other pixels
    assert evaluate(samples, ref, "identity", cache_root=tmp_path / "cache")["metrics"] != first


def test_cli_tensor_and_png_folder_give_the_same_numbers(tmp_path, capsys):
    x = digits()
    torch.save(x, tmp_path / "samples.pt")
    pngs = tmp_path / "pngs"
    pngs.mkdir()
    for i, img in enumerate(x):
        save_image((img + 1) / 2, pngs / f"{i:06d}.png")
    common = ["--dataset", "digits", "--cache-dir", str(tmp_path / "cache"), "--quiet"]
    assert main(["--samples", str(tmp_path / "samples.pt"), "--out", str(tmp_path / "a.json"), *common]) == 0
    assert main(["--samples", str(pngs), "--out", str(tmp_path / "b.json"), *common]) == 0
    a, b = (json.loads((tmp_path / f).read_text()) for f in ("a.json", "b.json"))
    assert a["metrics"] == b["metrics"] and a["metrics"]["modes"] == 10
    assert a["command"][:3] == ["python", "-m", "bench.metrics"] and a["git_commit"] is not None
    assert "fd_digits" in capsys.readouterr().out


def test_cli_from_a_checkpoint_records_which_checkpoint_and_how_long_it_trained(tmp_path, capsys, monkeypatch):
    """Samples drawn from a checkpoint: the result names its bytes (SHA-256) and its iterations from the meta, so
    a learning curve's points say where they stand whatever the files were called."""
    f = family("ddgan")
    train_model(TrainJob("ddgan", "gaussians25", f.preset("gaussians25"), tmp_path / "run", torch.device("cpu"),
                         max_steps=3, grid=False, quiet=True))
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    assert main(["--dataset", "gaussians25", "--checkpoint", str(checkpoint), "--n", "200", "--no-cache", "--quiet",
                 "--out", str(tmp_path / "m.json")]) == 0
    source = json.loads((tmp_path / "m.json").read_text())["source"]
    assert source["checkpoint_sha256"] == file_sha256(checkpoint) and source["steps"] == 4
    assert source["training"] == {"given": True, "iterations": 3, "train_speed": "fp32"}
    capsys.readouterr()
    monkeypatch.setattr(metrics_main, "draw", lambda *args: pytest.fail("sampled before refusing"))
    assert main(["--dataset", "digits", "--checkpoint", str(checkpoint), "--n", "100000", "--quiet"]) == 2
    assert "draws items of shape (2,), which do not fit digits (items of shape (1, 32, 32)); it was trained on " \
           "gaussians25: pass --dataset gaussians25" in capsys.readouterr().err


@pytest.mark.parametrize(("setup", "message"), [
    ("jpeg", "lossy images"),
    ("inception", "Inception-v3 weights not found"),
    ("shape", "do not fit digits"),
    ("nan", "samples contain NaN or inf"),
    ("0..255", "float samples range over [0, 255], read as [-1, 1]"),
    ("truncated", "samples.pt: not a readable tensor file (truncated, or not written by torch.save"),
    ("checkpoint", "samples.pt holds a dict, not samples [N, C, H, W] or points [N, D]"),
    ("broken png", "000001.png: not a readable image"),
    ("out folder", "is a folder; pass the path of the JSON file to write"),
])
def test_cli_bad_input_is_a_clear_error(tmp_path, monkeypatch, capsys, setup, message):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    samples = tmp_path / "samples.pt"
    x = {"shape": torch.rand(10, 3, 16, 16), "nan": digits(10) * float("nan"),
         "0..255": ((digits(10) + 1) * 127.5).round()}.get(setup, digits(10))
    torch.save(x, samples)
    args = ["--samples", str(samples), "--dataset", "digits", "--no-cache", "--quiet"]
    if setup == "jpeg":
        (tmp_path / "jpgs").mkdir()
        save_image(torch.rand(3, 8, 8), tmp_path / "jpgs" / "0.jpg")
        args[1] = str(tmp_path / "jpgs")
    if setup == "inception":
        args += ["--extractor", "inception-v3-compat"]
    if setup == "truncated":
        samples.write_bytes(samples.read_bytes()[:300])
    if setup == "checkpoint":
        torch.save({"format": "ddgan-bench/ddgan", "state_dict": {}}, samples)
    if setup == "broken png":  # as a killed writer leaves one
        (tmp_path / "pngs").mkdir()
        for i in range(3):
            save_image(torch.rand(3, 8, 8), tmp_path / "pngs" / f"{i:06d}.png")
        (tmp_path / "pngs" / "000001.png").write_bytes((tmp_path / "pngs" / "000001.png").read_bytes()[:60])
        args[1] = str(tmp_path / "pngs")
    if setup == "out folder":
        args += ["--out", str(tmp_path)]
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_table_metric_follows_the_datasets_extractor():
    assert table_metric("gaussians25") == "hq_fraction"
    assert table_metric("stacked-digits") == "fd_digits"
    assert table_metric("stacked-mnist") == "fd_mnist"
    assert table_metric("cifar10") == "fid"
    assert {table_metric(d) for d in DEFAULT_EXTRACTOR} <= set(report.QUALITY)  # every table has its metric column


def write_images(folder, n: int):
    folder.mkdir()
    for i, img in enumerate(torch.rand(n, 3, 16, 16)):
        save_image(img, folder / f"{i}.png")
    return folder


def test_a_folder_too_small_for_the_metrics_is_refused_before_any_work(tmp_path, capsys):
    """A 1-image reference folder: the preflight says how many items it holds and how many the metrics need."""
    samples = write_images(tmp_path / "samples", 8)
    ref = write_images(tmp_path / "ref", 1)
    assert main(["--samples", str(samples), "--dataset", "image-folder", "--root", str(ref), "--extractor",
                 "identity", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"image-folder at {ref} holds 1 items: the metrics need at least 6" in err
    assert "evaluating" not in err  # refused before the samples are read
    assert main(["--samples", str(samples), "--dataset", "image-folder", "--root", str(ref), "--extractor",
                 "identity", "--nearest-k", "1", "--quiet"]) == 2  # FID's covariance still needs 2
    assert "holds 1 items: the metrics need at least 2" in capsys.readouterr().err


def test_too_few_samples_are_refused_before_any_feature_pass(tmp_path, monkeypatch):
    module = importlib.import_module("bench.metrics.evaluate")  # the package's attribute of that name is the function
    monkeypatch.setattr(module, "embed", lambda *a, **k: pytest.fail("a feature pass ran"))
    with pytest.raises(ValueError, match=r"5 samples against 5 reference items \(digits\): the metrics need at least "
                                         r"6 \(2 for FID's covariance, nearest_k \+ 1 = 6 for precision/recall\)"):
        evaluate(digits(5), "digits", use_cache=False)


def test_counts_too_small_for_the_metrics_are_refused_before_any_work(tmp_path, capsys):
    samples = write_images(tmp_path / "samples", 8)
    assert main(["--samples", str(samples), "--dataset", "digits", "--n-ref", "3", "--quiet"]) == 2
    assert "--n-ref 3: the metrics need at least 6" in capsys.readouterr().err
