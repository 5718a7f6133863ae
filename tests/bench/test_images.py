"""bench.images (folders of PNG or JPEG written as save_image writes them), bench.data.export and
bench.sample --sample-format."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from bench.data import build_dataset, stack_items
from bench.data.export import main as export_main
from bench.images import as_stored, read_folder, write_folder
from bench.metrics.features import to_uint8
from bench.sample import main as sample_main
from bench.train import main as train_main


@pytest.fixture(scope="module")
def digits():
    return stack_items(build_dataset("stacked-digits", train=False, size=6))


def test_png_folder_reads_back_exactly_as_the_metrics_quantise(digits, tmp_path):
    paths = write_folder(digits, tmp_path / "png")
    assert [p.name for p in paths] == [f"{i:06d}.png" for i in range(6)]
    assert torch.equal(read_folder(tmp_path / "png"), to_uint8(digits))


def test_16_bit_pngs_read_as_their_8_bit_values(digits, tmp_path):
    """A 16-bit PNG (x * 257 of an 8-bit one) reads as the 8-bit image, not as uint16 samples the metrics would
    take for values up to 65535."""
    eight = to_uint8(digits)
    (tmp_path / "16").mkdir()
    for i, x in enumerate(eight):
        Image.fromarray(x[0].numpy().astype(np.uint16) * 257).save(tmp_path / "16" / f"{i:06d}.png")
    assert torch.equal(read_folder(tmp_path / "16"), eight[:, :1])


def test_jpeg_folder_equals_the_in_memory_round_trip_and_is_lossy(digits, tmp_path):
    write_folder(digits, tmp_path / "jpeg", "jpeg")
    stored = read_folder(tmp_path / "jpeg", allow_lossy=True, rgb=True)
    assert torch.equal(stored, as_stored(digits, "jpeg"))
    assert not torch.equal(stored, to_uint8(digits))  # quality 75 changes pixels
    assert as_stored(digits, "png") is digits
    with pytest.raises(ValueError, match="lossy images"):
        read_folder(tmp_path / "jpeg")
    with pytest.raises(ValueError, match="unknown image format 'gif'"):
        write_folder(digits, tmp_path / "gif", "gif")


def test_export_writes_a_split_as_a_folder_with_its_description(tmp_path):
    assert export_main(["--dataset", "digits", "--split", "test", "--n", "5", "--format", "jpeg",
                        "--out", str(tmp_path / "d")]) == 0
    assert len(list((tmp_path / "d").glob("*.jpg"))) == 5
    record = json.loads((tmp_path / "d" / "export.json").read_text())
    assert record["n"] == 5 and record["format"] == "jpeg" and record["command"][:3] == ["python", "-m",
                                                                                          "bench.data.export"]
    assert export_main(["--dataset", "gaussians25", "--n", "5", "--out", str(tmp_path / "g")]) == 2
    assert export_main(["--dataset", "mnist", "--root", str(tmp_path / "none"), "--out", str(tmp_path / "m")]) == 2
    assert export_main(["--dataset", "digits", "--n", "3", "--out", str(tmp_path / "d")]) == 2  # would mix
    assert len(list((tmp_path / "d").glob("*.jpg"))) == 5
    assert export_main(["--dataset", "digits", "--n", "3", "--out", str(tmp_path / "d"), "--overwrite"]) == 0
    assert sorted(p.name for p in (tmp_path / "d").glob("0*")) == ["000000.png", "000001.png", "000002.png"]
    (tmp_path / "file").write_text("")
    assert export_main(["--dataset", "digits", "--n", "3", "--out", str(tmp_path / "file" / "x")]) == 2


def test_sample_cli_writes_jpeg_on_request(tmp_path):
    assert train_main(["--model", "ddgan", "--preset", "tiny", "--out", str(tmp_path / "t"), "--max-steps", "2",
                       "--quiet"]) == 0
    out = tmp_path / "s"
    assert sample_main(["--checkpoint", str(tmp_path / "t" / "checkpoint.pt"), "--n", "3", "--out", str(out),
                        "--sample-format", "jpeg", "--quiet"]) == 0
    assert sorted(p.name for p in out.glob("*.jpg")) == ["000000.jpg", "000001.jpg", "000002.jpg"]
    assert json.loads((out / "samples.json").read_text())["sample_format"] == "jpeg"
