"""python -m bench.merge: one trilemma folder from the cell records of several, with its tables written anew.

Models are often trained and measured apart: on different machines, or one model again with a longer budget. Each
SOURCE is a folder written by `python -m bench.trilemma` (its cells/*.json and samples_<cell>.png). A cell found
in several sources is taken from the last one, and the cells it replaces are named. OUT gets the cell records
(copied byte for byte) and the sample grids, then trilemma.csv/.md/.tex/.png, learning_curves.json/.png and, with
--paper, paper.md/.csv, exactly as the harness writes them. Rows follow the harness's order (bench.registry's
families, their variants and cells); a family's cells that the harness does not name (given checkpoints) follow its
own, by name. Every record keeps its own command, budget and provenance, so the table states how each row was
trained. OUT may be one of the sources.

Example (a longer DDGAN (T=4) run replacing that row of a finished table):
  python -m bench.trilemma --dataset stacked-mnist --root ../shared/data --models ddgan --out runs/tsm-ddgan ...
  python -m bench.merge results/trilemma-stacked-mnist runs/tsm-ddgan --out results/trilemma-stacked-mnist --paper
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench import report, results
from bench.lock import FolderLock, FolderLocked
from bench.plan import cells, trained_entries
from bench.preflight import writable_folder
from bench.registry import FAMILIES
from bench.results import CellRecord, CellRecordError
from ddgan_ref.io import write_bytes_atomic


class MergeError(ValueError):
    """Folders that cannot be merged: no cell records, cells of different datasets, or an OUT holding other cells."""


def gather(sources: list[Path]) -> dict[str, tuple[CellRecord, Path]]:
    """Each cell's record and the source it comes from (the last source holding it)."""
    found = {source: results.read_all(source) for source in sources}
    for source, records in found.items():
        if not records:
            raise MergeError(f"{source} holds no cell records (cells/*.json); give folders written by "
                             f"python -m bench.trilemma")
    datasets = {source: sorted({r.key.dataset for r in records}) for source, records in found.items()}
    if len({d for ds in datasets.values() for d in ds}) > 1:
        listing = ", ".join(f"{source}: {' and '.join(ds)}" for source, ds in datasets.items())
        raise MergeError(f"the sources measure different datasets ({listing}); merge folders of one dataset")
    taken: dict[str, tuple[CellRecord, Path]] = {}
    for source, records in found.items():
        for r in records:
            if r.cell in taken:
                print(f"{r.cell}: from {source}, replacing the one from {taken[r.cell][1]}", file=sys.stderr)
            taken[r.cell] = (r, source)
    return taken


def ordered(records: list[CellRecord]) -> list[CellRecord]:
    """The records in the harness's order: families, their variants and cells (full, then --quick), fast settings
    after their float32 cell; in each family, cells the harness does not name (given checkpoints) after them, by
    name."""
    families = list(FAMILIES)
    rank: dict[str, int] = {}
    for entry in trained_entries(families):
        for quick in (False, True):
            for cell in cells(entry, quick):
                rank.setdefault(cell.id, len(rank))
    return sorted(records, key=lambda r: (families.index(r.model) if r.model in FAMILIES else len(families),
                                          rank.get(r.cell.partition("@")[0], len(rank)), r.cell))


def merge(sources: list[Path], out: Path, with_paper: bool) -> list[CellRecord]:
    """Copy the chosen cells and their grids into `out` and write its tables; the records in table order."""
    taken = gather(sources)
    writable_folder(out)
    here = out.resolve()
    if here not in {s.resolve() for s in sources} and results.read_all(out):
        raise MergeError(f"{out} holds cell records but is not a source: give it as the first source to keep them, "
                         f"or choose an empty --out")
    with FolderLock(out):
        for cell, (_, source) in taken.items():
            for name in (f"cells/{cell}.json", f"samples_{cell}.png"):
                if (source / name).is_file() and source.resolve() != here:
                    write_bytes_atomic((source / name).read_bytes(), out / name)
        records = ordered([r for r, _ in taken.values()])
        quick = any("--quick" in r.command for r in records)  # a smoke-test cell heads the table with its note
        report.write_folder(out, records, records[0].key.dataset, quick=quick, with_paper=with_paper)
    return records


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.merge", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sources", nargs="+", type=Path, metavar="SOURCE",
                   help="trilemma folders, earliest first: a later one's cell replaces an earlier one's")
    p.add_argument("--out", type=Path, required=True, help="the merged folder (may be one of the sources)")
    p.add_argument("--paper", action="store_true", help="also write paper.md/.csv: measured vs the paper (bench.paper)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Exit 0 when the merged folder is written, 2 when the sources cannot be merged (or hold unreadable cell
    records) or OUT is in use."""
    args = parse_args(argv)
    try:
        merge(args.sources, args.out, args.paper)
    except (MergeError, CellRecordError, FolderLocked, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
