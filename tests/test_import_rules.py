"""STYLE.md's import rules, checked by import-linter (contracts in pyproject.toml) and by reading the tree."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("lint-imports") is None, reason="import-linter is not installed")
def test_import_linter_contracts_hold():
    res = subprocess.run(["lint-imports"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package,forbidden", [("ddgan_ref", ("bench", "baselines")), ("baselines", ("bench",))])
def test_package_never_imports(package, forbidden):
    for path in (ROOT / package).rglob("*.py"):
        bad = {m for m in imported_modules(path) if m.split(".")[0] in forbidden}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def function_level_imports(path: Path, packages: tuple[str, ...]) -> list[str]:
    """`line: module` of every import of `packages` inside a function or class body (hidden from a reader)."""
    found = []
    for outer in ast.walk(ast.parse(path.read_text())):
        if not isinstance(outer, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        for node in ast.walk(outer):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            found += [f"{node.lineno}: {n}" for n in names if n.split(".")[0] in packages]
    return sorted(set(found))


def test_bench_imports_first_party_modules_at_module_top():
    """Third-party imports (matplotlib, seaborn, pynvml) may stay lazy; ours would only hide a cycle or a cost."""
    for path in (ROOT / "bench").rglob("*.py"):
        late = function_level_imports(path, ("bench", "ddgan_ref", "baselines"))
        assert not late, f"{path.relative_to(ROOT)} imports inside a function: {late}"


def test_baselines_use_only_ops_rng_and_io_from_ddgan_ref():
    for path in (ROOT / "baselines").rglob("*.py"):
        bad = {m for m in imported_modules(path)
               if m.startswith("ddgan_ref") and not m.startswith(("ddgan_ref.ops", "ddgan_ref.rng", "ddgan_ref.io"))}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_no_weights_only_false_and_single_build_site():
    for path in ROOT.glob("[!.]*/**/*.py"):
        if "tests" in path.parts:
            continue
        text = path.read_text()
        assert "weights_only=False" not in text.replace(" ", ""), path
        if path.name != "_build.py":
            assert "cpp_extension.load" not in text, path


@pytest.mark.parametrize("commands", [
    "bench.sample, bench.train, ddgan_ref.train, baselines.ddpm.train, baselines.stylegan2.train",
    "bench.report, bench.merge, bench.page, bench.compare, bench.history, bench.paper"])
def test_training_sampling_and_table_commands_start_without_torchvision_or_dynamo(commands):
    """torchvision and torch._dynamo (which torchvision, torch-fidelity and torch.compiler's decorators import)
    cost a command about 2 s of start-up; the training, sampling and table commands import them only where they
    use them."""
    probe = (f"import sys, {commands}\n"
             "print(sorted(m for m in ('torchvision', 'torch._dynamo', 'torch_fidelity') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def test_gpu_scripts_collect_without_torch_fidelity_or_prdc():
    """.ci/gpu-check and .ci/gpu-speed-check run on the lent GPU machines' image, which has torch, pytest-benchmark,
    pandas and seaborn but neither torch-fidelity nor prdc: their tests, benchmarks and tables must import without
    them (a conftest that imported bench.metrics once made the speed check's test step fail at collection)."""
    files = ["tests/bench/test_speed.py", "tests/ddgan_ref/test_upfirdn2d_kernels.py",
             "tests/ddgan_ref/test_bias_act.py", "bench/test_speed_settings.py", "bench/test_ops_speed.py"]
    probe = ("import sys\n"
             "sys.modules.update(torch_fidelity=None, prdc=None)  # None: importing them raises ImportError\n"
             "import pytest, bench.speedups, bench.machines\n"
             "args = ['--collect-only', '-q', '-p', 'no:cacheprovider', '-m', 'cuda or not cuda']\n"
             f"sys.exit(pytest.main(args + {files}))")
    res = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "test_speed_settings[ddgan]" in res.stdout and "test_cuda_graphs_replay_the_eager_sampler" in res.stdout
