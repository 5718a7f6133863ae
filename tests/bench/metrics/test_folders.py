"""python -m bench.metrics compare DIR_A DIR_B on real MNIST digits with the FID Inception file: the same FID as
torch_fidelity.calculate_metrics with the same weights, and pytorch-fid (an independent implementation, given the
mapped weights and the TF graph's input scaling) to 1e-6 at 299x299; lossy folders only on request."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torch_fidelity
from torchvision.io import ImageReadMode, decode_image, write_jpeg

from bench import images as images_folder
from bench.data.mnist import load_mnist
from bench.metrics.__main__ import main
from bench.metrics.folders import compare, read_folder
from bench.metrics.inception import read_weights, write_fidelity_weights

N = 24  # images per folder: a few seconds of Inception on 2 CPU cores per folder


def write_folder(images: torch.Tensor, folder, side: int | None = None):
    """uint8 digits as a PNG folder (bench.images), upsampled to side x side first if given."""
    if side is not None:
        images = F.interpolate(images.float(), size=(side, side), mode="bilinear", align_corners=False)
        images = images.round().clamp(0, 255).to(torch.uint8)
    images_folder.write_folder(images, folder)
    return folder


@pytest.fixture(scope="module")
def digits(mnist_root):
    images, _ = load_mnist(mnist_root, train=False)
    return images[:N], images[N:2 * N]


@pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")  # torch-fidelity's 4 workers
def test_compare_equals_torch_fidelity_with_the_same_file(digits, inception_port, tmp_path):
    a, b = write_folder(digits[0], tmp_path / "a"), write_folder(digits[1], tmp_path / "b")
    out = tmp_path / "compare.json"
    assert main(["compare", str(a), str(b), "--inception-weights", str(inception_port), "--json", str(out),
                 "--kid-subset-size", "10", "--quiet"]) == 0
    record = json.loads(out.read_text())
    assert "is" not in record["metrics"] and "no logits layer" in record["unavailable"]["is"]
    assert record["protocol"]["weights_layout"] == "torchscript" and "third-party" in record["protocol"]["weights_note"]
    write_fidelity_weights(inception_port, tmp_path / "fidelity.pth")
    theirs = torch_fidelity.calculate_metrics(input1=str(b), input2=str(a), fid=True, isc=True, verbose=False,
                                              cuda=False, feature_extractor_weights_path=str(tmp_path / "fidelity.pth"))
    assert record["metrics"]["fid"] == pytest.approx(theirs["frechet_inception_distance"], rel=1e-6)
    assert np.isnan(theirs["inception_score_mean"])  # no logits in the file: torch-fidelity's IS is NaN, not wrong


def pytorch_fid_distance(folders, state, normalize_input: bool) -> float:
    from pytorch_fid import fid_score
    from pytorch_fid import inception as pytorch_fid_inception

    original = pytorch_fid_inception.load_state_dict_from_url
    pytorch_fid_inception.load_state_dict_from_url = lambda *args, **kwargs: state  # the mapped weights, offline
    try:
        net = pytorch_fid_inception.InceptionV3([3], resize_input=False, normalize_input=normalize_input).eval()
    finally:
        pytorch_fid_inception.load_state_dict_from_url = original
    stats = []
    for folder in folders:
        images = torch.stack([decode_image(str(f), mode=ImageReadMode.RGB) for f in sorted(folder.iterdir())]).float()
        x = images / 255 if normalize_input else (images - 128) / 128  # pytorch-fid's scaling, or the TF graph's
        with torch.no_grad():
            features = net(x)[0].flatten(1).double().numpy()
        stats.append((features.mean(0), np.cov(features, rowvar=False)))
    return float(fid_score.calculate_frechet_distance(*stats[0], *stats[1]))


@pytest.mark.filterwarnings("ignore:The `disp` argument:DeprecationWarning")  # pytorch-fid 0.3 calling scipy
def test_compare_agrees_with_pytorch_fid_at_299(digits, inception_port, tmp_path):
    folders = [write_folder(x, tmp_path / name, side=299) for x, name in zip(digits, "ab", strict=True)]
    ours = compare(*folders, weights=inception_port)["metrics"]["fid"]
    state, _ = read_weights(inception_port)
    # Same input scaling as the TF graph ((x - 128) / 128): pytorch-fid's network and Frechet distance agree.
    assert pytorch_fid_distance(folders, state, normalize_input=False) == pytest.approx(ours, rel=1e-6)
    # pytorch-fid's own scaling (x / 127.5 - 1) moves FID by about 1e-3 (results/inception-fid-agreement.md).
    assert pytorch_fid_distance(folders, state, normalize_input=True) == pytest.approx(ours, rel=5e-3)


def test_compare_reads_jpeg_only_when_asked(digits, tmp_path, capsys):
    a = write_folder(digits[0][:8], tmp_path / "a")
    b = tmp_path / "b"
    b.mkdir()
    for i, image in enumerate(digits[1][:8]):
        write_jpeg(image.expand(3, -1, -1).contiguous(), str(b / f"{i}.jpg"), quality=75)
    assert main(["compare", str(a), str(b), "--extractor", "mnist-cnn", "--quiet"]) == 2
    assert "lossy images (0.jpg, ...)" in capsys.readouterr().err
    assert main(["compare", str(a), str(b), "--extractor", "mnist-cnn", "--allow-jpeg", "--quiet"]) == 0
    assert read_folder(b, allow_lossy=True).shape == (8, 3, 32, 32)


def test_compare_of_a_folder_with_itself_is_zero(digits, tmp_path):
    a = write_folder(digits[0], tmp_path / "a")
    record = compare(a, a, "mnist-cnn")
    assert record["metrics"]["fd_mnist"] == pytest.approx(0, abs=1e-3)  # 24 points in 384 dims: sqrtm's rounding
    assert record["metrics"]["recall_mnist"] == 1.0 and record["unavailable"] == {}


def test_compare_errors_name_the_problem(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["compare", str(tmp_path / "empty"), str(tmp_path / "empty"), "--extractor", "identity"]) == 2
    assert "holds no .png files" in capsys.readouterr().err
    assert main(["compare", str(tmp_path / "nowhere"), str(tmp_path / "empty"), "--extractor", "identity"]) == 2
    assert "nowhere is not a folder of images" in capsys.readouterr().err


def test_compare_refuses_folders_too_small_for_the_metrics_before_any_feature_pass(digits, tmp_path, capsys):
    a = write_folder(digits[0][:3], tmp_path / "a")
    b = write_folder(digits[0][:8], tmp_path / "b")
    assert main(["compare", str(a), str(b), "--extractor", "identity", "--quiet"]) == 2
    assert f"8 samples against 3 reference items ({a}): the metrics need at least 6" in capsys.readouterr().err
