"""bench.page: the page built from tiny synthetic inputs (a trilemma folder written by bench.report.write, a
three-run history made with bench.history.append whose last run is slower, a .ci/gpu_timings.py file) is one
self-contained file: no http(s) link or source, no script, every <img> a base64 PNG, every section's table present,
SLOWER rows highlighted, empty sections saying so; and in a real headless Chromium it logs no console error, every
image renders, and a screenshot of it is a non-trivial PNG."""

from __future__ import annotations

import base64
import html
import io
import json
import os
import re
import subprocess
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from bench import history, report, results
from bench.page import page, write
from bench.results import CellKey, CellRecord
from bench.timing import PaperTime

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CHROMIUM = Path("/usr/bin/chromium")
HEADLESS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--virtual-time-budget=10000"]  # let the page finish loading (and the probe run) before dumping
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)


class Tags(HTMLParser):
    """Every start tag of a page with its attributes."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def record(name: str, label: str, family: str, steps: int, seconds: float, hq: float) -> CellRecord:
    timing = PaperTime(batch=100, rounds=3, seconds=seconds, seconds_all=[seconds] * 3, nfe=steps,
                       peak_memory_bytes=None, joules_per_image=None)
    device = {"name": "AMD EPYC", "device": "cpu", "cpu": "AMD EPYC", "threads": 2}
    return CellRecord(name, label, family, steps, CellKey(name, "gaussians25", 200, 0, 3, None), timing=timing,
                      metrics={"hq_fraction": hq, "modes": 25.0}, device=device)


def run_doc(i: int, seconds: float) -> dict:
    """Run i of a pytest-benchmark document: two sampling benchmarks with 5 rounds each, a quality number."""
    rows = [{"name": name, "stats": {"median": s, "data": [s * (1 + 0.01 * k) for k in range(-2, 3)]},
             "extra_info": {"model": name.split("[")[1].split("-")[0], "device": "cpu", "batch": 100,
                            "quality": {"fd": 3.0 + 0.01 * i}}}
            for name, s in (("test_sampling_speed[ddgan-T]", seconds), ("test_sampling_speed[ddpm-T]", 2.0))]
    return {"machine_info": {"node": "runner", "cpu": {"brand_raw": "AMD EPYC", "count": 2}},
            "commit_info": {"id": f"{i + 1:02d}" * 20, "dirty": False, "branch": "main"},
            "datetime": (T0 + timedelta(hours=i)).isoformat(), "benchmarks": rows}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """OUT/index.html of a trilemma folder, a history whose last DDGAN run is 3x slower, and a GPU-timings file."""
    tmp = tmp_path_factory.mktemp("page")
    trilemma = tmp / "trilemma-tiny"
    records = [record("ddgan-t4", "DDGAN (T=4)", "ddgan", 4, 0.005, 0.9),
               record("ddpm", "DDPM (1000 steps)", "ddpm", 1000, 0.6, 0.8)]
    report.write(trilemma, records, "tiny: quality vs sampling time")
    for r in records:
        results.write(trilemma, r)
    hist = tmp / "history"
    for i, seconds in enumerate((0.010, 0.0101, 0.030)):
        run = tmp / f"run{i}.json"
        run.write_text(json.dumps(run_doc(i, seconds)))
        history.append(hist, run)
    gpu = tmp / "gpu_timings.json"
    gpu.write_text(json.dumps([
        {"step": "device_info", "cpu": "Intel Xeon", "threads": 16, "device": "cuda", "gpu_name": "NVIDIA A100",
         "gpu": {"available": True, "name": "NVIDIA A100"}},
        {"step": "paper_time ddgan cifar10 steps=4 impl=cuda", "batch": 100, "seconds": 0.2, "nfe": 4,
         "joules_per_image": 0.6}]))
    text = page(trilemma=[trilemma], machine_inputs=[gpu, trilemma], history_dir=hist)
    return write(tmp / "out", text)


def test_page_is_self_contained_with_png_images_and_tables(built):
    text = built.read_text()
    parser = Tags()
    parser.feed(text)
    links = [v for _, attrs in parser.tags for k, v in attrs.items() if k in ("src", "href") and v]
    assert not [v for v in links if re.match(r"\s*(https?:)?//", v, re.I)]
    assert not re.search(r"https?://", text)  # not even in text: the page names no external resource
    assert not [t for t, _ in parser.tags if t in ("script", "iframe", "object", "embed", "link")]
    images = [attrs["src"] for tag, attrs in parser.tags if tag == "img"]
    assert len(images) == 5  # trilemma.png, the two families' plots, speed and quality trends
    for src in images:
        assert src.startswith("data:image/png;base64,")
        png = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert png.startswith(PNG_MAGIC) and min(Image.open(io.BytesIO(png)).size) > 100
    assert text.count("<table") == 4  # trilemma, machines, the history's machines, the verdicts
    assert "DDGAN (T=4)" in text and "NVIDIA A100" in text and "No learning_curves.png in trilemma-tiny." in text
    flagged = re.findall(r'<tr class="flag">(.*?)</tr>', text)
    assert len(flagged) == 1 and "test_sampling_speed[ddgan-T]" in flagged[0] and "SLOWER" in flagged[0]
    assert "Latest regression verdicts: REGRESSION" in text


def test_page_says_when_a_section_has_no_input(tmp_path):
    text = page(trilemma=[], machine_inputs=[], history_dir=None)
    for line in ("No trilemma run given", "No sampling-speed results given", "No benchmark history given"):
        assert text.count(line) == 1
    assert "<img" not in text and "<table" not in text


def test_page_cli_writes_index_and_exits_2_on_unreadable_input(tmp_path, capsys):
    out = tmp_path / "out"
    assert report.main(["html", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out / "index.html")
    assert (out / "index.html").read_text().startswith("<!DOCTYPE html>")
    assert report.main(["html", str(out), "--trilemma", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith(f"error: {tmp_path}: no trilemma.csv")
    assert report.main(["html", str(out), "--history", str(tmp_path / "none")]) == 2
    with pytest.raises(SystemExit) as exit_:
        report.main(["html", str(out), "--ratio-to", "x"])
    assert exit_.value.code == 2 and "--ratio-to needs --history" in capsys.readouterr().err


# The browser check. A static page has no JavaScript of its own, so the test loads a copy of it with one small
# probe <script> injected first in <head> (before any image), and asks Chromium for the DOM after loading
# (--dump-dom). The probe records every error event (capture phase: a failed image load fires one too) and every
# console.error call, and on `load` writes JSON into the DOM: those errors and each image's complete /
# naturalWidth / naturalHeight. Independently, --enable-logging=stderr makes Chromium log each console message of
# the page as a ":CONSOLE" line; the probe logs nothing, so any such line is the browser's complaint. No websocket
# client or DevTools protocol is needed. The screenshot is taken from the page itself, not the probed copy.
PROBE = """<script>(() => {
  const errors = [];
  addEventListener("error", e => errors.push(e.message || "failed to load " + e.target.tagName + " "
                                              + String(e.target.src || e.target.href || "").slice(0, 40)), true);
  const error = console.error.bind(console);
  console.error = (...args) => { errors.push(args.join(" ")); error(...args); };
  addEventListener("load", () => {
    const images = Array.from(document.images, i => ({alt: i.alt, complete: i.complete, width: i.naturalWidth,
                                                     height: i.naturalHeight}));
    const out = document.createElement("pre");
    out.id = "ddgan-probe";
    out.textContent = JSON.stringify({errors, images});
    document.body.append(out);
  });
})();</script>"""


def chromium() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    why = "needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)"
    if os.environ.get("DDGAN_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{why}; DDGAN_REQUIRE_BROWSER=1")
    pytest.skip(f"{why}; set DDGAN_REQUIRE_BROWSER=1 to fail instead")


def browse(page_path: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(chromium()), *HEADLESS, f"--user-data-dir={profile}", *args, page_path.as_uri()],
                          capture_output=True, text=True, timeout=120)


def probe(page_path: Path, profile: Path) -> tuple[dict, list[str]]:
    """The probe's verdict ({errors, images}) on a copy of the page beside it, and Chromium's console lines."""
    probed = page_path.with_name(f"probed-{page_path.name}")
    probed.write_text(page_path.read_text().replace("<head>", "<head>" + PROBE, 1))
    run = browse(probed, profile, "--enable-logging=stderr", "--v=0", "--dump-dom")
    found = re.search(r'<pre id="ddgan-probe">(.*?)</pre>', run.stdout, re.S)
    assert found, f"no probe verdict in Chromium's DOM (exit {run.returncode}): {run.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1))), [line for line in run.stderr.splitlines() if ":CONSOLE" in line]


def test_page_probe_catches_a_broken_page(tmp_path):
    """The oracle checked: a page with a broken image and a console error fails both of the probe's checks."""
    chromium()
    broken = tmp_path / "broken.html"
    broken.write_text('<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>'
                      '<img src="data:image/png;base64,AAAA"><script>console.error("boom")</script></body></html>')
    verdict, console = probe(broken, tmp_path / "profile")
    assert verdict["images"] == [{"alt": "", "complete": True, "width": 0, "height": 0}]
    assert "boom" in verdict["errors"] and any("failed to load IMG" in e for e in verdict["errors"])
    assert any('"boom"' in line for line in console)


def test_page_renders_in_headless_chromium(built, tmp_path):
    chromium()
    verdict, console = probe(built, tmp_path / "profile")
    assert verdict["errors"] == [] and console == []
    assert len(verdict["images"]) == 5
    assert all(i["complete"] and i["width"] > 0 and i["height"] > 0 for i in verdict["images"]), verdict["images"]
    shot = Path(os.environ.get("DDGAN_PAGE_SCREENSHOT") or tmp_path / "page.png")
    shot.parent.mkdir(parents=True, exist_ok=True)
    shot.unlink(missing_ok=True)  # a screenshot left by an earlier run must not pass for this one
    run = browse(built, tmp_path / "profile-shot", f"--screenshot={shot}", "--window-size=1280,2000")
    assert shot.is_file(), f"no screenshot (exit {run.returncode}): {run.stderr[-2000:]}"
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 2000) and shot.stat().st_size > 20_000
    assert image.getcolors(maxcolors=64) is None  # more than 64 colours: plots and tables, not a blank page
