"""bench.machines: each input format (pytest-benchmark JSON of bench/test_speed_settings.py and
bench/test_sampling_speed.py, .ci/gpu_timings.py's list, a trilemma folder) becomes rows named by the machine the
file reports (or "unrecorded (FILE)"), times scaled to 100 images only when the batch differs, the paper's V100 time
only at its steps on CIFAR-10; other inputs are a MachinesError saying what was expected; the CLI writes its files
and exits 0/2; the committed CPU and H100 results merge into one table with their numbers unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from bench import machines, report, results
from bench.machines import MachinesError, read, table
from bench.results import CellKey, CellRecord
from bench.timing import PaperTime

ROOT = Path(__file__).resolve().parents[2]
CPU = {"brand_raw": "AMD EPYC 7B13", "count": 4}
A100 = "NVIDIA A100-SXM4-40GB"


def write(path: Path, doc) -> Path:
    path.write_text(json.dumps(doc))
    return path


def benchmark_doc(*rows: dict) -> dict:
    """A pytest-benchmark document of `rows` (name, extra_info, median) on a 4-core AMD EPYC."""
    return {"machine_info": {"node": "runner", "cpu": CPU}, "datetime": "2026-01-05T09:00:00",
            "benchmarks": [{"name": r["name"], "stats": {"median": r.get("median", 1.0)},
                            "extra_info": r["extra_info"]} for r in rows]}


def settings_bench(family: str = "ddgan", steps: int = 4, device: str = "cpu") -> dict:
    """A bench/test_speed_settings.py row: fp32 and bf16+cl."""
    settings = {"fp32": {"median_s": 20.0, "images_per_s": 5.0, "nfe": steps},
                "bf16+cl": {"median_s": 8.0, "images_per_s": 12.5, "nfe": steps}}
    return {"name": f"test_speed_settings[{family}]", "extra_info": {
        "model": family, "preset": "cifar10", "steps": steps, "batch": 100, "device": device,
        "device_name": A100 if device == "cuda" else CPU["brand_raw"], "settings": settings}}


def sampling_bench(batch: int = 50, seconds: float = 0.1) -> dict:
    """A bench/test_sampling_speed.py row on a GPU: DDGAN T=4, cifar10."""
    return {"name": "test_sampling_speed[ddgan-T]", "median": seconds, "extra_info": {
        "model": "ddgan", "preset": "cifar10", "steps": 4, "nfe": 4, "batch": batch, "images_per_s": batch / seconds,
        "impl": "cuda", "device": "cuda", "device_name": A100}}


def gpu_timings(device_info: bool = True) -> list[dict]:
    """.ci/gpu_timings.py's list: device_info, a kernel step, DDGAN and DDPM paper_time steps, a failed step."""
    rows = [{"step": "ncsnpp_cifar10_G_fwd_bwd_b64", "ref_s": 0.1, "cuda_s": 0.1, "speedup": 1.0},
            {"step": "paper_time ddgan cifar10 steps=4 impl=cuda", "batch": 100, "seconds": 0.3, "nfe": 4,
             "joules_per_image": 0.7},
            {"step": "paper_time ddpm cifar10 steps=100 impl=auto", "batch": 100, "seconds": 3.0, "nfe": 100,
             "joules_per_image": 12.0},
            {"step": "ddpm 1000", "error": "RuntimeError: out of time"}]
    info = {"step": "device_info", "cpu": "Intel Xeon", "threads": 16, "device": "cuda", "gpu_name": A100,
            "gpu": {"available": True, "name": A100, "power_limit_w": 400.0}}
    return [info, *rows] if device_info else rows


def cell(name: str, label: str, family: str, steps: int, seconds: float, *, status: str = "ok",
         speed: dict | None = None) -> CellRecord:
    """A trilemma cell record timed on an A100 (batch 100), gaussians25."""
    timing = PaperTime(batch=100, rounds=3, seconds=seconds, seconds_all=[seconds] * 3, nfe=steps,
                       peak_memory_bytes=None, joules_per_image=0.05)
    device = {"name": A100, "device": "cuda", "cpu": "Intel Xeon", "threads": 8,
              "gpu": {"available": True, "name": A100}}
    return CellRecord(name, label, family, steps, CellKey(name, "gaussians25", 200, 0, 3, None), status=status,
                      timing=timing if status == "ok" else None, speed=speed, device=device)


def trilemma_folder(folder: Path) -> Path:
    for record in (cell("ddgan-t4", "DDGAN (T=4)", "ddgan", 4, 0.005),
                   cell("ddgan-t4-bf16", "DDGAN (T=4)", "ddgan", 4, 0.004, speed={"label": "bf16+cl"}),
                   cell("ddpm", "DDPM (1000 steps)", "ddpm", 1000, 0.6, status="failed")):
        results.write(folder, record)
    return folder


def test_machines_reads_speed_settings(tmp_path):
    rows = read(write(tmp_path / "settings.json", benchmark_doc(settings_bench(), settings_bench("ddpm", 4))))
    df = pd.DataFrame(rows)
    assert set(df["machine"]) == {"AMD EPYC 7B13, 4 cores"}
    ddgan = df[df["family"] == "ddgan"].set_index("setting")
    assert ddgan.loc["fp32", "s_per_100_images"] == 20.0 and ddgan.loc["bf16+cl", "images_per_s"] == 12.5
    assert ddgan.loc["fp32", "paper_v100_s_per_100"] == 0.21  # Table 1: DDGAN T=4, one V100
    assert df[df["family"] == "ddpm"]["paper_v100_s_per_100"].isna().all()  # 4 steps, not the paper's 1000
    assert set(df["model"]) == {"DDGAN (T=4)", "DDIM (4 steps)"} and set(df["source"]) == {"settings.json"}
    assert df["scaled_from_batch"].isna().all() and df["j_per_image"].isna().all()


def test_machines_reads_sampling_speed_on_a_gpu_scaling_its_batch(tmp_path):
    (row,) = read(write(tmp_path / "sampling.json", benchmark_doc(sampling_bench(batch=50, seconds=0.1))))
    assert row["machine"] == A100 and row["setting"] == "impl=cuda" and row["batch"] == 50
    assert row["s_per_100_images"] == pytest.approx(0.2) and row["scaled_from_batch"] == 50
    assert row["images_per_s"] == pytest.approx(500.0)
    (same,) = read(write(tmp_path / "b100.json", benchmark_doc(sampling_bench(batch=100, seconds=0.1))))
    assert same["s_per_100_images"] == 0.1 and same["scaled_from_batch"] is None


def test_machines_reads_gpu_timings_and_says_when_the_machine_is_unrecorded(tmp_path):
    df = pd.DataFrame(read(write(tmp_path / "gpu.json", gpu_timings())))
    assert list(df["machine"]) == [A100, A100] and list(df["setting"]) == ["impl=cuda", "impl=auto"]
    assert list(df["j_per_image"]) == [0.7, 12.0] and list(df["steps"]) == [4, 100]
    assert df["paper_v100_s_per_100"].iloc[0] == 0.21 and pd.isna(df["paper_v100_s_per_100"].iloc[1])
    bare = pd.DataFrame(read(write(tmp_path / "bare.json", gpu_timings(device_info=False))))
    assert set(bare["machine"]) == {"unrecorded (bare.json)"}


def test_machines_reads_a_trilemma_folder(tmp_path):
    df = pd.DataFrame(read(trilemma_folder(tmp_path / "run"))).set_index("setting")
    assert sorted(df.index) == ["bf16+cl", "fp32"]  # the failed DDPM cell has no time
    assert set(df["machine"]) == {A100} and set(df["source"]) == {"run"} and set(df["preset"]) == {"gaussians25"}
    assert df.loc["fp32", "s_per_100_images"] == 0.005 and df.loc["bf16+cl", "s_per_100_images"] == 0.004
    assert set(df["model"]) == {"DDGAN (T=4)"} and set(df["j_per_image"]) == {0.05}
    assert df["paper_v100_s_per_100"].isna().all()  # gaussians25: the paper's CIFAR-10 time does not apply


def test_machines_table_merges_inputs_by_family_then_machine(tmp_path):
    df = table([write(tmp_path / "gpu.json", gpu_timings()),
                write(tmp_path / "cpu.json", benchmark_doc(settings_bench("stylegan2", 1), settings_bench()))])
    assert list(df.columns) == list(machines.COLUMNS)
    assert list(df["family"]) == ["ddgan"] * 3 + ["ddpm", "stylegan2", "stylegan2"]
    assert list(df["machine"][:3]) == ["AMD EPYC 7B13, 4 cores"] * 2 + [A100]
    assert list(df[df["family"] == "stylegan2"]["paper_v100_s_per_100"]) == [0.04, 0.04]


@pytest.mark.parametrize("name,content,message", [
    ("missing.json", None, "no such file"),
    ("notes.txt", "not json", "not readable JSON"),
    ("dict.json", {"rows": []}, "of another kind"),
    ("list.json", [1, 2], "of another kind"),
    ("ops.json", benchmark_doc({"name": "test_bias_act_speed[x]", "extra_info": {"op": "bias_act"}}),
     "no sampling benchmark"),
    ("kernels.json", [{"step": "ncsnpp_cifar10_G_fwd_bwd_b64", "ref_s": 1.0}], "no timed `paper_time"),
    ("broken.json", benchmark_doc({"name": "test_speed_settings[ddgan]", "extra_info": {
        "model": "ddgan", "preset": "cifar10", "steps": 4, "batch": 100, "settings": {"fp32": {}}}}),
     "unusable row"),
    ("zero.json", [{"step": "paper_time ddgan cifar10 steps=4 impl=cuda", "batch": 100, "seconds": 0.0}],
     "unusable row"),
])
def test_machines_rejects_other_inputs_saying_what_it_expected(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(MachinesError, match=message) as info:
        read(path)
    assert "expected a pytest-benchmark JSON" in str(info.value) and str(path) in str(info.value)


def test_machines_rejects_a_folder_without_cells(tmp_path):
    with pytest.raises(MachinesError, match=r"without cells/\*\.json; expected"):
        read(tmp_path)


def test_machines_cli_prints_markdown_writes_files_and_exits_2_on_bad_input(tmp_path, capsys):
    gpu = write(tmp_path / "gpu.json", gpu_timings())
    assert report.main(["machines", str(gpu)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("| machine | family |") and A100 in printed and not (tmp_path / "out").exists()
    assert report.main(["machines", str(gpu), "--out", str(tmp_path / "out")]) == 0
    out = tmp_path / "out"
    assert capsys.readouterr().err.count("wrote ") == 4
    assert sorted(p.name for p in out.iterdir()) == ["machines.csv", "machines.md", "machines_ddgan.png",
                                                      "machines_ddpm.png"]
    assert (out / "machines.md").read_text() == printed
    assert (out / "machines_ddgan.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    csv = pd.read_csv(out / "machines.csv")
    assert list(csv["steps"]) == [4, 100] and "4.0" not in (out / "machines.csv").read_text().split("\n")[1]
    assert report.main(["machines", str(tmp_path / "nothing.json")]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_machines_merges_the_committed_cpu_and_h100_results():
    """results/bench_speed_settings_cpu.json (a 2-core Intel Xeon) and results/gpu_timings_h100_first.json (a lent
    H100, device_info from nvidia-ml-py): both machines by their reported names, DDGAN's numbers as in the files."""
    cpu_path, gpu_path = ROOT / "results/bench_speed_settings_cpu.json", ROOT / "results/gpu_timings_h100_first.json"
    df = table([cpu_path, gpu_path])
    cpu_doc, gpu_doc = json.loads(cpu_path.read_text()), json.loads(gpu_path.read_text())
    cpu = cpu_doc["machine_info"]["cpu"]
    cpu_name = f"{cpu['brand_raw']}, {cpu['count']} cores"
    assert ("Intel" in cpu_name or "AMD" in cpu_name) and set(df["machine"]) == {cpu_name, "NVIDIA H100 80GB HBM3"}
    ddgan = df[df["family"] == "ddgan"]
    settings = next(b for b in cpu_doc["benchmarks"] if b["extra_info"]["model"] == "ddgan")["extra_info"]["settings"]
    on_cpu = ddgan[ddgan["machine"] == cpu_name].set_index("setting")
    assert sorted(on_cpu.index) == sorted(settings)
    for label, values in settings.items():
        assert on_cpu.loc[label, "s_per_100_images"] == values["median_s"]
        assert on_cpu.loc[label, "images_per_s"] == values["images_per_s"]
        assert on_cpu.loc[label, "nfe"] == values["nfe"] == 4
    on_gpu = ddgan[ddgan["machine"] == "NVIDIA H100 80GB HBM3"].set_index("setting")
    steps = {r["step"].rsplit(" ", 1)[1]: r for r in gpu_doc if r["step"].startswith("paper_time ddgan")}
    assert sorted(on_gpu.index) == sorted(steps)
    for setting, r in steps.items():
        assert on_gpu.loc[setting, "s_per_100_images"] == r["seconds"]
        assert on_gpu.loc[setting, "j_per_image"] == r["joules_per_image"]
    assert (ddgan["paper_v100_s_per_100"] == 0.21).all() and ddgan["scaled_from_batch"].isna().all()
