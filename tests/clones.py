"""Runs a test file's CPU-kernel tests again in a child process whose kernels use a narrower instruction-set clone.

The compiled CPU kernels pick their AVX-512, AVX2 or baseline clone once per process (csrc/cpu_isa.h); the
environment variable DDGAN_CPU_ISA lowers that choice, so a machine with AVX-512 can test all three clones.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NARROWER = ("avx2", "baseline")


def run_tests_with_isa(isa: str, test_file: str, select: str) -> None:
    """Run the tests of `test_file` that match the pytest -k expression `select` with DDGAN_CPU_ISA=isa; fail
    with their output if any fails (or none ran)."""
    env = dict(os.environ, DDGAN_CPU_ISA=isa)
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", select, str(test_file)]
    run = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, f"DDGAN_CPU_ISA={isa}: {' '.join(cmd)}\n{run.stdout[-4000:]}\n{run.stderr[-2000:]}"
    assert " passed" in run.stdout, run.stdout[-2000:]


def isa_error(isa: str) -> str:
    """The error a kernel call gives in a child process with DDGAN_CPU_ISA=isa ('' if the call succeeds)."""
    script = ("import torch\nfrom ddgan_ref.ops import bias_act\n"
              "try:\n    bias_act(torch.ones(2, 3), torch.ones(3), 1, 'lrelu', impl='cpu')\n"
              "except RuntimeError as error:\n    print(error)\n")
    run = subprocess.run([sys.executable, "-c", script], env=dict(os.environ, DDGAN_CPU_ISA=isa), cwd=REPO,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout.strip()
