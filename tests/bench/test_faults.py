"""Fault injection: the bad inputs and failures a new user meets, run as they would run them (subprocesses, small
presets), asserting the exit code, the message, and that nothing was lost, overwritten or started."""

import errno
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from bench import lock, preflight, trilemma
from bench import sample as sample_cli
from bench.figures import main as figures_main
from bench.metrics.__main__ import main as metrics_main
from bench.registry import family
from bench.train import TrainJob, train_model
from bench.train import main as train_main
from bench.trilemma import main as trilemma_main
from ddgan_ref.ops import _build

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def cli(*args: str, cwd: Path = REPO, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=ENV, capture_output=True, text=True,
                          timeout=timeout)


def errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """Two-iteration checkpoints: DDGAN on gaussians25 (2D), DDGAN on stacked-digits (tiny preset), DDPM and
    StyleGAN2 on gaussians25."""
    root = tmp_path_factory.mktemp("ckpt")
    runs = {"ddgan-g25": ("ddgan", "gaussians25"), "ddgan-sd": ("ddgan", "tiny"), "ddpm-g25": ("ddpm", "gaussians25"),
            "sg2-g25": ("stylegan2", "gaussians25")}
    for name, (model, preset) in runs.items():  # no sample grid: 2000 points of a 1000-step DDPM cost a minute
        f = family(model)
        train_model(TrainJob(model, preset, f.preset(preset), root / name, torch.device("cpu"), max_steps=2,
                             grid=False, quiet=True))
    return {name: root / name / "checkpoint.pt" for name in runs}


def test_faults_figures_default_output_is_not_results(tmp_path):
    """Item 1: the documented figure command no longer rewrites the committed results/denoising.json."""
    done = cli("bench.figures", "denoising", "--exact-only", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "runs" / "figures" / "denoising.json").is_file() and not (tmp_path / "results").exists()


def test_faults_figures_checkpoint_of_the_other_family_is_named(tmp_path, checkpoints, capsys):
    g25 = checkpoints["ddgan-g25"]
    assert figures_main(["denoising", "--ddgan", str(g25), "--ddpm", str(g25), "--out", str(tmp_path / "f")]) == 2
    assert f"error: --ddpm {g25}: a ddgan checkpoint, not a DDPM one" in capsys.readouterr().err
    assert not (tmp_path / "f").exists()


@pytest.mark.parametrize("command", [
    ("bench.paper", "--out", "{file}/paper.md"), ("bench.page", "{file}"), ("bench.page", "{file}/sub"),
    ("bench.merge", "results/trilemma-gaussians25", "--out", "{file}"), ("bench.speedups", "{file}")])
def test_faults_a_file_where_a_folder_or_json_should_be_is_one_error_line(tmp_path, command):
    (tmp_path / "file").write_text("{not json")
    done = cli(*(a.format(file=tmp_path / "file") for a in command))
    assert done.returncode in (1, 2) and "Traceback" not in done.stderr, done.stderr
    assert str(tmp_path / "file") in done.stderr and (tmp_path / "file").read_text() == "{not json"


@pytest.mark.parametrize("n", ["0", "-5"])
def test_faults_nonpositive_n_is_refused_before_any_work(tmp_path, checkpoints, capsys, n):
    """Item 2: --n 0 / -5 is an argument error (exit 2) in every CLI, and nothing is trained or written (the
    trilemma, which used to start training, as a subprocess; the others in-process, which is faster)."""
    out = tmp_path / "out"
    done = cli("bench.trilemma", "--n", n, "--out", str(out))
    assert done.returncode == 2 and f"{n} is not a positive integer" in done.stderr, done.stderr
    for main, args in ((sample_cli.main, ["--checkpoint", str(checkpoints["ddgan-g25"]), "--out", str(out)]),
                       (metrics_main, ["--dataset", "gaussians25", "--checkpoint", str(checkpoints["ddgan-g25"]),
                                       "--out", str(out / "m.json")])):
        with pytest.raises(SystemExit) as exit_:
            main([*args, "--n", n])
        assert exit_.value.code == 2 and f"{n} is not a positive integer" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(("device", "says"), [("bogus", "'bogus' is not a device; give auto, cpu, cuda or cuda:N"),
                                              ("meta", "'meta': the commands run on cpu or cuda")])
def test_faults_unknown_device_is_an_argument_error_in_every_cli(tmp_path, capsys, device, says):
    """--device is checked where it is parsed (it was a RuntimeError traceback from torch.device)."""
    for main, args in ((train_main, ["--out", str(tmp_path / "t")]),
                       (sample_cli.main, ["--checkpoint", "c.pt", "--n", "1", "--out", str(tmp_path / "s")]),
                       (metrics_main, ["--dataset", "gaussians25", "--samples", "s.pt"]),
                       (trilemma_main, ["--out", str(tmp_path / "r")])):
        with pytest.raises(SystemExit) as exit_:
            main([*args, "--device", device])
        assert exit_.value.code == 2 and says in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_faults_cifar10_run_lists_every_problem_before_sampling(tmp_path, checkpoints):
    """Items 3 and 4: missing data, an empty Inception file and a 2D checkpoint given for CIFAR-10 are all
    named in one run, before any sampling; nothing is created."""
    empty = tmp_path / "inception.pth"
    empty.write_bytes(b"")
    out = tmp_path / "out"
    done = cli("bench.trilemma", "--dataset", "cifar10", "--models", "ddgan", "--checkpoints",
               f"ddgan={checkpoints['ddgan-g25']}", "--inception-weights", str(empty), "--root",
               str(tmp_path / "missing"), "--out", str(out))
    assert done.returncode == 2
    problems = errors(done.stderr)
    assert len(problems) == 3, done.stderr
    assert str(empty) in problems[0]
    assert "cifar" in problems[1].lower() and str(tmp_path / "missing") in problems[1]
    assert "trained on gaussians25, not cifar10" in problems[2]
    assert "sampling" not in done.stderr and not out.exists()


def test_faults_metrics_lists_every_problem_before_features(tmp_path, capsys):
    """Items 4 and 5 for bench.metrics: missing samples, an empty Inception file and a missing CIFAR-10 folder
    in one run, before any feature is extracted."""
    empty = tmp_path / "inception.pth"
    empty.write_bytes(b"")
    assert metrics_main(["--dataset", "cifar10", "--root", str(tmp_path / "missing"), "--samples",
                         str(tmp_path / "none"), "--inception-weights", str(empty), "--out",
                         str(tmp_path / "m.json")]) == 2
    problems = errors(capsys.readouterr().err)
    assert len(problems) == 3 and "--samples" in problems[0] and str(empty) in problems[1]
    assert "CIFAR-10 not found" in problems[2] and not (tmp_path / "m.json").exists()


def test_faults_checkpoint_of_another_dataset_or_family_is_named(tmp_path, checkpoints, capsys):
    """Item 3: a stacked-digits checkpoint given for gaussians25 says where it was trained; item 9: a DDGAN
    checkpoint given as ddpm says which format it found."""
    out = tmp_path / "out"
    assert trilemma_main(["--models", "ddgan", "--checkpoints", f"ddgan={checkpoints['ddgan-sd']}",
                          "--out", str(out)]) == 2
    assert "the model was trained on stacked-digits, not gaussians25" in capsys.readouterr().err
    assert trilemma_main(["--models", "ddpm", "--checkpoints", f"ddpm={checkpoints['ddgan-g25']}",
                          "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "this is a ddgan checkpoint (format 'ddgan-bench/" in err and "give it as ddgan=PATH" in err
    assert trilemma_main(["--models", "ddpm", "--checkpoints", f"ddgan={checkpoints['ddgan-g25']}",
                          "--out", str(out)]) == 2  # the checkpoint would be dropped and DDPM trained instead
    assert f"--checkpoints ddgan={checkpoints['ddgan-g25']}: not measured, since --models ddpm leaves the family " \
           f"out" in capsys.readouterr().err
    assert not out.exists()


def test_faults_every_family_writes_the_same_run_folder(checkpoints):
    """Item 9: every family's run folder describes itself (config.json) and its files have one mode."""
    modes = set()
    for name in ("ddgan-g25", "ddpm-g25", "sg2-g25"):
        folder = checkpoints[name].parent
        assert json.loads((folder / "config.json").read_text())["dataset"] == "gaussians25"
        modes |= {(folder / f).stat().st_mode & 0o777 for f in ("checkpoint.pt", "config.json")}
    assert len(modes) == 1


def test_faults_read_only_output_is_one_error_before_work(tmp_path, checkpoints, monkeypatch, capsys):
    """Item 5: an output folder that refuses writes (EROFS, simulated: the tests may run as root) is one `error:`
    line naming the folder, before any sampling."""
    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(preflight.tempfile, "NamedTemporaryFile", refuse)
    drawn = []
    monkeypatch.setattr(sample_cli, "draw", lambda *a: drawn.append(a))
    out = tmp_path / "ro" / "samples"
    assert sample_cli.main(["--checkpoint", str(checkpoints["ddgan-g25"]), "--n", "4", "--out", str(out)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: output folder") and "not writable (Read-only file system" in line
    assert drawn == [] and not out.exists()


@pytest.fixture
def tmpfs(tmp_path):
    """mount(options) -> a fresh tmpfs folder; skipped (with the reason) where mounting is not permitted."""
    mounted = []

    def mount(options: str) -> Path:
        folder = tmp_path / f"mnt{len(mounted)}"
        folder.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True,
                              text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'mount failed'}); the patched-writer "
                        f"tests cover the same paths")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", str(folder)], check=False)


def test_faults_real_read_only_and_full_file_systems(tmpfs, checkpoints):
    """Item 5 on real mounts: a read-only file system and one too small for the samples are refused before
    sampling, each with one `error:` line, and nothing is written."""
    ro, tiny = tmpfs("ro,size=1m"), tmpfs("size=256k")
    done = cli("bench.sample", "--checkpoint", str(checkpoints["ddgan-sd"]), "--n", "4", "--out", str(ro / "s"))
    assert done.returncode == 2 and len(errors(done.stderr)) == 1, done.stderr
    assert "is not writable (Read-only file system" in done.stderr and "sampling" not in done.stderr
    done = cli("bench.sample", "--checkpoint", str(checkpoints["ddgan-sd"]), "--n", "2000", "--out", str(tiny / "s"))
    assert done.returncode == 2 and "MiB free, the run writes about 7 MiB" in done.stderr, done.stderr
    assert "sampling" not in done.stderr and list(tiny.iterdir()) == []


def test_faults_disk_full_while_writing_keeps_the_previous_file(tmp_path, checkpoints, monkeypatch, capsys):
    """Item 5: a disk that fills up while the samples are written (simulated at fsync) is one `error:` line; the
    previous samples.pt is intact and no temporary file is left."""
    out = tmp_path / "samples"
    assert sample_cli.main(["--checkpoint", str(checkpoints["ddgan-g25"]), "--n", "4", "--out", str(out),
                            "--quiet"]) == 0
    before = (out / "samples.pt").read_bytes()
    capsys.readouterr()

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    assert sample_cli.main(["--checkpoint", str(checkpoints["ddgan-g25"]), "--n", "6", "--out", str(out),
                            "--quiet"]) == 2
    assert errors(capsys.readouterr().err) == ["error: No space left on device"]
    assert (out / "samples.pt").read_bytes() == before
    assert not [p for p in out.iterdir() if ".tmp-" in p.name]


def test_faults_resume_says_what_it_does(tmp_path):
    """Item 6: --resume without a checkpoint is an error unless --fresh-ok; a resume says from which step; the
    checkpoint interval does not block it; a refused resume names every differing field."""
    out = tmp_path / "run"
    base = ("bench.train", "--model", "ddgan", "--preset", "tiny", "--out", str(out), "--quiet", "--grid-n", "4")
    refused = cli(*base, "--resume", "--max-steps", "2")
    assert refused.returncode == 2 and "holds no checkpoint.pt" in refused.stderr and "--fresh-ok" in refused.stderr
    assert not out.exists()
    fresh = cli(*base, "--resume", "--fresh-ok", "--max-steps", "2")
    assert fresh.returncode == 0 and f"no checkpoint in {out}: starting fresh" in fresh.stderr
    assert json.loads((out / "config.json").read_text())["preset"] == "tiny"
    resumed = cli(*base, "--resume", "--max-steps", "4", "--checkpoint-every", "7")
    assert resumed.returncode == 0 and "resuming from step 2 of 4" in resumed.stderr, resumed.stderr
    done = cli(*base, "--resume", "--max-steps", "3")
    assert done.returncode == 0 and "is at step 4, the end of this run's 3: nothing to train" in done.stderr
    assert cli(*base, "--fresh-ok", "--max-steps", "2").returncode == 2  # --fresh-ok without --resume
    other = cli(*base, "--resume", "--max-steps", "6", "--seed", "5", "--lr-g", "0.001")
    assert other.returncode == 2
    assert "train.lr_g = 0.0002 there, 0.001 now; train.seed = 0 there, 5 now" in other.stderr, other.stderr


def test_faults_second_run_into_a_folder_stops_naming_the_holder(tmp_path):
    """Item 7: while one run holds the folder, a second stops at once with the holder's pid; a lock whose
    process is gone is taken over with a message."""
    out = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "bench.train", "--model", "ddgan", "--preset", "tiny", "--out",
                              str(out), "--max-steps", "400", "--quiet"], cwd=REPO, env=ENV,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not (out / lock.LOCK_NAME).exists() and time.time() < deadline and first.poll() is None:
            time.sleep(0.05)
        second = cli("bench.train", "--model", "ddgan", "--preset", "tiny", "--out", str(out), "--resume",
                     "--fresh-ok", "--max-steps", "2")
        assert second.returncode == 2 and f"in use by another run (pid {first.pid} on" in second.stderr, second.stderr
    finally:
        first.kill()
        first.wait()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (out / lock.LOCK_NAME).write_text(json.dumps({"pid": int(gone.stdout), "host": socket.gethostname()}))
    with lock.FolderLock(out):
        assert json.loads((out / lock.LOCK_NAME).read_text())["pid"] == os.getpid()
    assert not (out / lock.LOCK_NAME).exists()


def test_faults_a_stale_lock_taken_over_by_two_runs_at_once_goes_to_one(tmp_path):
    """Runs A and B both read the same stale lock; A takes it over first. B's takeover must not remove A's live
    lock (it moves it aside, sees it is not the stale one, and puts it back), and no run removes a lock not its own
    when it leaves."""
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = {"pid": int(gone.stdout), "host": socket.gethostname()}
    out = tmp_path / "run"
    out.mkdir()
    (out / lock.LOCK_NAME).write_text(json.dumps(stale))
    with lock.FolderLock(out):  # run A
        mine = json.loads((out / lock.LOCK_NAME).read_text())
        assert not lock._remove_stale(out / lock.LOCK_NAME, stale)  # run B, late
        assert json.loads((out / lock.LOCK_NAME).read_text()) == mine
        with pytest.raises(lock.FolderLocked, match=f"in use by another run \\(pid {os.getpid()} on"):
            lock.FolderLock(out).__enter__()
        (out / lock.LOCK_NAME).write_text(json.dumps({**mine, "started": "another run's"}))
    assert json.loads((out / lock.LOCK_NAME).read_text())["started"] == "another run's"  # left in place
    assert sorted(p.name for p in out.iterdir()) == [lock.LOCK_NAME]


def test_faults_taking_a_folder_removes_the_temporaries_of_killed_writes_only(tmp_path):
    """A run killed mid-write leaves `.NAME.tmp-PID`; the next run to lock the folder removes those of dead
    processes (in subfolders too), never a live one's; an empty lock file is named as such."""
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    out = tmp_path / "run"
    (out / "train" / "ddpm").mkdir(parents=True)
    pid = int(gone.stdout)
    dead = [out / f".checkpoint.pt.tmp-{pid}", out / "train" / "ddpm" / f".x.json.tmp-{pid}"]
    live = out / f".checkpoint.pt.tmp-{os.getpid()}"
    for path in (*dead, live, out / "checkpoint.pt"):
        path.write_bytes(b"partial")
    with lock.FolderLock(out):
        assert not any(p.exists() for p in dead) and live.exists() and (out / "checkpoint.pt").exists()
    (out / lock.LOCK_NAME).write_text("")
    with pytest.raises(lock.FolderLocked, match="names no run .*delete"):
        lock.FolderLock(out).__enter__()


def test_faults_first_kernel_build_announces_itself(tmp_path, capsys):
    """Item 11: a build with nothing cached says what it does and how long it takes; a cached one is silent."""
    class FakeExtension:
        @staticmethod
        def _get_build_directory(name, verbose):
            return str(tmp_path)

    _build._announce(FakeExtension, "ddgan_upfirdn2d_cpu", "upfirdn2d", "cpu")
    assert "building the upfirdn2d CPU kernel with ninja" in capsys.readouterr().err
    (tmp_path / "ddgan_upfirdn2d_cpu.so").write_bytes(b"")
    _build._announce(FakeExtension, "ddgan_upfirdn2d_cpu", "upfirdn2d", "cpu")
    assert capsys.readouterr().err == ""


def test_a_broken_image_met_in_a_dataloader_worker_is_one_line_naming_it(tmp_path, capsys):
    """The error a DataLoader worker raises comes back with the worker's traceback in its text; the command prints
    the original message (the file and the fix), in one line."""
    from PIL import Image

    for i in range(3):
        Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(tmp_path / f"img{i}.png")
    (tmp_path / "img1.png").write_bytes((tmp_path / "img1.png").read_bytes()[:40])
    rc = train_main(["--model", "ddgan", "--preset", "tiny", "--dataset", "image-folder", "--data-root",
                     str(tmp_path), "--max-steps", "2", "--batch-size", "3", "--num-workers", "2", "--out",
                     str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert rc == 2 and err.startswith(f"error: {tmp_path / 'img1.png'}: not a readable image (")
    assert err.endswith("; export it again or remove it from the folder")


def test_faults_a_training_folder_past_the_asked_budget_is_refused_and_locked_while_trained(tmp_path, capsys,
                                                                                            monkeypatch):
    """A harness folder whose model trained further than --train-steps now asks is refused before any work (its
    learning curve would label the longer-trained model with the shorter budget's steps); while the harness trains
    a model, the bench.train command it prints cannot write the same folder."""
    out = tmp_path / "tri"
    assert train_main(["--model", "stylegan2", "--preset", "gaussians25", "--max-steps", "4", "--out",
                       str(out / "train" / "stylegan2"), "--quiet"]) == 0
    assert trilemma_main(["--models", "stylegan2", "--train-steps", "2", "--out", str(out), "--quiet"]) == 2
    assert "trained for 4 iterations, past the 2 this run asks for" in capsys.readouterr().err
    held = []

    def training(entry, run, folder, *rest):  # stands in for the training the harness does under the lock
        held.append((folder / lock.LOCK_NAME).is_file())
        assert train_main(["--model", "stylegan2", "--preset", "gaussians25", "--max-steps", "6", "--resume",
                           "--out", str(folder), "--quiet"]) == 2  # the command the harness prints
        raise RuntimeError("stopped here")

    monkeypatch.setattr(trilemma, "train_in_folder", training)
    assert trilemma_main(["--models", "stylegan2", "--train-steps", "6", "--out", str(out), "--quiet"]) == 1
    assert held == [True] and "in use by another run" in capsys.readouterr().err


def test_faults_resuming_another_familys_run_names_its_family(tmp_path, capsys):
    assert train_main(["--model", "ddgan", "--preset", "tiny", "--max-steps", "2", "--out", str(tmp_path),
                       "--quiet"]) == 0
    capsys.readouterr()
    assert train_main(["--model", "ddpm", "--preset", "tiny", "--max-steps", "4", "--resume", "--out", str(tmp_path),
                       "--quiet"]) == 2
    assert "holds a ddgan run, not a ddpm one: resume it with --model ddgan" in capsys.readouterr().err
    assert train_main(["--model", "ddpm", "--preset", "tiny", "--num-workers", "2", "--out", str(tmp_path / "w"),
                       "--quiet"]) == 2
    assert "--num-workers does not apply to --model ddpm" in capsys.readouterr().err


def test_faults_sample_counts_the_metrics_cannot_use_are_refused_before_training(tmp_path, capsys):
    assert trilemma_main(["--n", "4", "--cell-n", "ddpm=3", "--out", str(tmp_path / "out")]) == 2
    problems = errors(capsys.readouterr().err)
    assert [p.removeprefix("error: ").split(":")[0] for p in problems] == ["--n 4", "--cell-n 3"]
    assert not (tmp_path / "out").exists()
