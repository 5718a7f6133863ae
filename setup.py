"""Ships csrc/ (kernel sources, compiled on first use) in wheels as ddgan_ref/ops/csrc; metadata: pyproject.toml."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

CSRC = Path(__file__).resolve().parent / "csrc"


class BuildPyWithKernelSources(build_py):
    """build_py, plus a copy of csrc/*.{h,cpp,cu} into the built ddgan_ref/ops/csrc (editable installs read csrc/)."""

    def run(self):
        super().run()
        target = Path(self.build_lib) / "ddgan_ref" / "ops" / "csrc"
        target.mkdir(parents=True, exist_ok=True)
        for source in sorted(CSRC.glob("*")):
            if source.suffix in {".h", ".cpp", ".cu"}:
                shutil.copy2(source, target / source.name)


setup(cmdclass={"build_py": BuildPyWithKernelSources})
