"""Checks a command makes before any expensive work: argument types, inputs, and output folders, with every problem
reported at once (`error:` lines, exit code 2) and nothing created on failure."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
EXIT_CODE = 2  # what argparse uses for bad arguments
CHECKED = (OSError, ValueError, KeyError)  # what a failed check raises: missing files, bad contents, unknown names


class PreflightError(ValueError):
    """One or more problems found before any work; str() is one `error:` line per problem."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(f"error: {p}" for p in problems))
        self.problems = problems


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (sample counts, rounds, batch sizes)."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer (give 1 or more)")
    return value


def nonnegative_int(text: str) -> int:
    """argparse type: an integer >= 0 (counts where 0 means none)."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative (give 0 or more)")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


class Preflight:
    """Collects problems: check(what, fn) runs fn and keeps its error message instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def add(self, problem: str) -> None:
        self.problems.append(problem)

    def check(self, fn: Callable[[], T], errors: tuple[type[BaseException], ...] = CHECKED) -> T | None:
        """fn()'s value, or None with its error kept as a problem (each of a PreflightError's)."""
        try:
            return fn()
        except errors as e:
            self.problems.extend(e.problems if isinstance(e, PreflightError) else [message(e)])
            return None

    def raise_if_any(self) -> None:
        if self.problems:
            raise PreflightError(self.problems)


def writable_folder(folder: Path, *, need_bytes: int = 0) -> None:
    """OSError unless `folder` (or, if it does not exist yet, its nearest existing parent) accepts a new file and
    has need_bytes free; creates nothing that outlives the check."""
    folder = Path(folder)
    existing = next((p for p in (folder, *folder.absolute().parents) if p.exists()), None)
    if existing is None or not existing.is_dir():
        raise NotADirectoryError(f"output folder {folder}: {existing} is not a folder; choose another --out")
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".write-check-"):
            pass
    except OSError as e:
        raise OSError(e.errno, f"output folder {folder} is not writable ({e.strerror} in {existing}); choose a "
                               f"writable --out or fix its permissions") from None
    free = shutil.disk_usage(existing).free
    if free < need_bytes:
        raise OSError(f"output folder {folder}: {free / 2**20:.0f} MiB free, the run writes about "
                      f"{need_bytes / 2**20:.0f} MiB; free space or choose another --out")


def report(error: PreflightError | OSError) -> int:
    """Print a preflight or write failure as `error:` lines; the command's exit code."""
    text = str(error) if isinstance(error, PreflightError) else f"error: {_oserror_text(error)}"
    print(text, file=sys.stderr)
    return EXIT_CODE


def message(error: BaseException) -> str:
    """The text of an error without its type's decorations (KeyError's quotes, OSError's [Errno N]); one raised in
    a DataLoader worker, which PyTorch re-raises with the worker's traceback in its text, as the original's."""
    if isinstance(error, KeyError) and error.args:
        return str(error.args[0])
    text = _oserror_text(error) if isinstance(error, OSError) else str(error)
    if "Original Traceback" in text:
        text = text.strip().splitlines()[-1].split(": ", 1)[-1]
    return text


def _oserror_text(error: OSError) -> str:
    text = error.strerror or str(error)
    return f"{text}: {error.filename}" if error.filename and str(error.filename) not in text else text
