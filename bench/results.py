"""Self-describing result records of the harness: one JSON per cell (model x steps x sampling setting), written
atomically.

A record (`CellRecord`, the one schema `bench.report` and `bench.paper` read) holds the schema version, the
command, the cell's key (dataset, n, seeds, rounds, the checkpoint's SHA-256), the metrics and their protocol,
the timing, the sampling setting (bench.speed) and what a fast one costs in quality, the device, versions and the
git commit, and a status: "ok", or "failed" with the reason. A cell whose record is "ok" and was made under the
same key is not run again (resume). Records of schema 1 (before the device had one description) are read too.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from bench.timing import PaperTime, Throughput
from ddgan_ref.io import write_json_atomic

SCHEMA = "ddgan-bench/trilemma-cell/2"
OLD_SCHEMAS = ("ddgan-bench/trilemma-cell/1",)


class CellRecordError(ValueError):
    """A cell record file that is missing, truncated, edited into something else or from another suite version."""


@dataclass(frozen=True)
class CellKey:
    """Everything besides the code that a cell's numbers depend on."""

    cell: str
    dataset: str
    n: int
    seed: int
    rounds: int
    checkpoint_sha256: str | None
    sample_format: str = "png"  # jpeg: the samples were measured after a JPEG round trip (the paper's FID protocol)
    inception_n: int | None = None  # samples that also went through Inception (FID/KID/P/R) besides the extractor


@dataclass(frozen=True)
class CellRecord:
    """One cell of the trilemma table: what was measured, how, where, and with what result."""

    cell: str
    label: str
    model: str  # the family (bench.registry)
    steps: int | None
    key: CellKey
    status: str = "ok"  # "ok" or "failed"
    reason: str | None = None
    traceback: str | None = None
    checkpoint: str | None = None
    training: dict[str, Any] | None = None  # how the harness trained the checkpoint, if it did
    metrics: dict[str, float] = field(default_factory=dict)
    protocol: dict[str, Any] | None = None  # how the metrics were measured (bench.metrics.evaluate)
    unavailable: dict[str, str] = field(default_factory=dict)  # metrics the extractor cannot give, and why
    timing: PaperTime | None = None
    grid: str | None = None  # the sample picture, beside the cells folder
    world_size: int = 1
    model_config: dict[str, Any] | None = None
    speed: dict[str, Any] | None = None  # the bench.speed setting it sampled under (bench.speed.describe)
    quality_cost: dict[str, Any] | None = None  # a fast cell against its float32 cell (bench.speed.quality_cost)
    command: tuple[str, ...] = ()
    # Provenance (ddgan_ref.provenance.provenance): versions, the device (one description), commit, time.
    python: str | None = None
    torch: str | None = None
    platform: str | None = None
    device: dict[str, Any] | None = None
    git_commit: str | None = None
    created: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def speed_label(self) -> str:
        """The cell's sampling setting (bench.speed notation); records made before settings existed are float32."""
        return (self.speed or {}).get("label", "fp32")

    @property
    def preset(self) -> str | None:
        """The config preset of the cell's model: the one the harness trained, else the name the checkpoint's config
        carries (DDGAN's config calls it `preset`, the baselines' `name`)."""
        config = self.model_config or {}
        return (self.training or {}).get("preset") or config.get("name") or config.get("preset")

    @property
    def train_speed(self) -> str | None:
        """The setting the checkpoint trained under (bench.train --speed), where the record knows it: the harness's
        marker or budget, or a given checkpoint's meta; None for checkpoints that do not say (converted official
        ones)."""
        training = self.training or {}
        return training.get("train_speed") or (training.get("budget") or {}).get("speed")


def to_json(record: CellRecord) -> dict[str, Any]:
    return {"schema": SCHEMA, **asdict(record)}


def from_json(d: dict[str, Any]) -> CellRecord:
    """The record of a JSON dict of this schema or an old one; ValueError for anything else."""
    d = dict(d)
    schema = d.pop("schema", None)
    if schema in OLD_SCHEMAS:
        d = _upgrade_v1(d)
    elif schema != SCHEMA:
        raise ValueError(f"not a trilemma cell record (schema {schema!r}, expected {SCHEMA!r})")
    unknown = sorted(set(d) - {f.name for f in fields(CellRecord)})
    if unknown:
        raise ValueError(f"a cell record with unknown fields {unknown}")
    timing = d.get("timing")
    if timing is not None:
        throughput = timing.get("throughput")
        d["timing"] = PaperTime(**{**timing, "throughput": Throughput(**throughput) if throughput else None})
    return CellRecord(**{**d, "key": CellKey(**d["key"]), "command": tuple(d.get("command", ()))})


def _upgrade_v1(d: dict[str, Any]) -> dict[str, Any]:
    """Schema 1 kept a device string and a `device_info` dict; schema 2 keeps one description as `device`."""
    info = d.pop("device_info", None) or {}
    name = info.get("gpu_name") or info.get("cpu")
    d["device"] = {"name": name, **{k: v for k, v in info.items() if k != "gpu_name"}} if info else None
    return d


def cell_path(out: Path, cell_id: str) -> Path:
    return out / "cells" / f"{cell_id}.json"


def write(out: Path, record: CellRecord) -> Path:
    return write_json_atomic(to_json(record), cell_path(out, record.cell))


def read(out: Path, cell_id: str) -> CellRecord | None:
    """The cell's record, or None if absent or unreadable (the harness then measures the cell again)."""
    try:
        return parse(cell_path(out, cell_id))
    except CellRecordError:
        return None


def parse(path: Path) -> CellRecord:
    """The record in `path`; CellRecordError, naming the file, when it is missing, truncated or not a record."""
    try:
        return from_json(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as e:
        raise CellRecordError(f"{path}: not a readable cell record ({type(e).__name__}: {e})") from e


def done(out: Path, key: CellKey) -> CellRecord | None:
    """The finished record of the key's cell made under the same key, or None."""
    record = read(out, key.cell)
    return record if record is not None and record.ok and record.key == key else None


def read_all(out: Path) -> list[CellRecord]:
    """Every cell record under out/cells, sorted by file name; CellRecordError naming every unreadable one."""
    records, problems = [], []
    for path in sorted((out / "cells").glob("*.json")):
        try:
            records.append(parse(path))
        except CellRecordError as e:
            problems.append(str(e))
    if problems:
        raise CellRecordError("; ".join(problems) + ". Restore those files (from git or a copy) or delete them to "
                              "leave their cells out")
    return records
