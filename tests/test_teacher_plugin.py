"""A third-party teacher installed from ``examples/custom_teacher`` works end to end like a built-in: listed,
configured through the CLI with one-line errors, estimated by --dry-run, run by synth on Ray, resumed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import install_example

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "custom_teacher"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return install_example(EXAMPLE, tmp_path_factory.mktemp("site"))


def cli(env, *args):
    cmd = [sys.executable, "-m", "robustgen.cli", *map(str, args)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def records(out: Path) -> dict[str, dict]:
    return {r["id"]: r for shard in sorted((out / "data").glob("*.jsonl")) for r in map(json.loads, shard.open())}


def test_plugin_teacher_is_listed_with_its_settings(env):
    res = cli(env, "teachers", "--json")
    rows = {r["name"]: r for r in json.loads(res.stdout)}
    assert {"template", "openai", "rationale"} <= set(rows)
    assert rows["rationale"]["settings"] == ["lead", "filler", "call_log"]


def test_bad_settings_are_one_line_naming_the_field(env, tmp_path):
    res = cli(env, "synth", "--out", tmp_path / "x", "--teacher", "rationale", "--teacher-set", "colour=red")
    assert res.returncode == 2 and "colour" in res.stderr and "lead" in res.stderr and "Traceback" not in res.stderr
    res = cli(env, "synth", "--out", tmp_path / "x", "--teacher", "rationnale")
    assert res.returncode == 2 and "did you mean 'rationale'" in res.stderr


def test_plugin_teacher_through_synth_dry_run_and_resume(env, tmp_path):
    out, log = tmp_path / "ds", tmp_path / "calls.jsonl"
    conf = tmp_path / "teacher.yaml"
    conf.write_text("lead: Ignoring the damage\n")
    args = ["synth", "--out", out, "--teacher", "rationale", "--teacher-config", conf, "--limit", 8]
    dry = cli(env, *args, "--dry-run")
    assert dry.returncode == 0 and "rows without a rationale" in dry.stdout and not out.exists()

    first = cli(env, *args, "--teacher-set", f"call_log={log}")
    assert first.returncode == 0, first.stderr
    recs = records(out)
    assert len(recs) == 8
    for r in recs.values():
        assert r["teacher"]["kind"] == "rationale"
        assert r["chain"]["reasoning"].startswith("Ignoring the damage, ")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["teacher"] == {
        "kind": "rationale",
        "lead": "Ignoring the damage",
        "filler": manifest["teacher"]["filler"],
        "call_log": str(log),
    }
    assert len(log.read_text().splitlines()) == 8

    # a resume with more rows annotates only the new ones; a speed-only setting may change, the lead may not
    more = cli(env, *[a if a != 8 else 12 for a in args])
    assert more.returncode == 2 and "different settings" in more.stderr  # --limit is part of the run
    again = cli(env, *args, "--teacher-set", f"call_log={log}")
    assert again.returncode == 0 and len(log.read_text().splitlines()) == 8  # nothing asked twice
    assert records(out) == recs
    other = cli(env, *args, "--teacher-set", "lead=Something else")
    assert other.returncode == 2 and "teacher" in other.stderr


def test_the_readme_command_passes_the_gate_in_process(env, tmp_path):
    """The example's own README command: every sample written (its filler sentences vary, so the quality gate
    passes them), in this process (an offline teacher is not pooled), and validate agrees."""
    readme = (EXAMPLE / "README.md").read_text()
    assert 'robustgen synth --out ds/ --teacher rationale --teacher-set lead="Ignoring the noise"' in readme
    out = tmp_path / "ds"
    res = cli(env, "synth", "--out", out, "--teacher", "rationale", "--teacher-set", "lead=Ignoring the noise")
    assert res.returncode == 0, res.stderr
    assert "14 written, 0 failed" in res.stdout
    assert json.loads((out / "manifest.json").read_text())["run"]["executor"] == "in-process"
    assert cli(env, "validate", out).returncode == 0
