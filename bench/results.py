"""Self-describing result records of the harness: one JSON per cell (model x steps), written atomically.

A record holds the schema version, the command, the cell's config and seeds, the metrics and their protocol,
the timing, the device, versions and the git commit, and a status: "ok", or "failed" with the reason. A cell
whose record is "ok" and was made under the same cell key is not run again (resume).
"""

from __future__ import annotations

import json
from pathlib import Path

from ddgan_ref.io import write_json_atomic

SCHEMA = "ddgan-bench/trilemma-cell/1"


def cell_path(out: Path, cell_id: str) -> Path:
    return out / "cells" / f"{cell_id}.json"


def write(out: Path, cell_id: str, record: dict) -> Path:
    return write_json_atomic({"schema": SCHEMA, **record}, cell_path(out, cell_id))


def read(out: Path, cell_id: str) -> dict | None:
    """The cell's record, or None if absent or unreadable."""
    path = cell_path(out, cell_id)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if record.get("schema") == SCHEMA else None


def done(out: Path, cell_id: str, key: dict) -> dict | None:
    """The finished record of a cell made under the same key (config, seeds, n), or None."""
    record = read(out, cell_id)
    return record if record and record.get("status") == "ok" and record.get("key") == key else None


def read_all(out: Path) -> list[dict]:
    """Every readable cell record under out/cells, sorted by file name."""
    records = (read(out, p.stem) for p in sorted((out / "cells").glob("*.json")))
    return [r for r in records if r is not None]
