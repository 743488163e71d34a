"""Source readers and exporters are plugins like degraders: the example plugins, installed with pip into the
test's environment, are read and written through the CLI exactly as their READMEs say."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from .helpers import install_example

ROOT = Path(__file__).resolve().parents[1]


def run(env, *args, cwd=None):
    cmd = [sys.executable, "-m", "robustgen.cli", *map(str, args)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=cwd)


def test_the_example_source_and_exporter_plug_in_end_to_end(tmp_path):
    env = install_example(ROOT / "examples" / "custom_source", tmp_path / "site")
    env = install_example(ROOT / "examples" / "custom_exporter", tmp_path / "site") | {"PYTHONPATH": env["PYTHONPATH"]}

    # the source README's command, run from the repository root
    ds = tmp_path / "qa-ds"
    res = run(env, "synth", "--source", "examples/custom_source/sample/quiz.qa", "--out", ds, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    recs = [json.loads(line) for shard in (ds / "data").glob("*.jsonl") for line in shard.open()]
    assert sorted(r["question"] for r in recs) == sorted(
        ["What is in the cup?", "What is standing on the launch pad?", "Which animal is this?"]
    )
    assert {r["choices"][int(r["answer"])] for r in recs} == {"coffee", "a rocket", "a cat"}

    # the exporter, from `export` and from `synth --export`
    res = run(env, "export", ds, "--to", "qa-pairs", "--out", tmp_path / "e")
    assert res.returncode == 0, res.stderr
    pairs = [json.loads(line) for line in (tmp_path / "e" / "pairs.jsonl").open()]
    assert len(pairs) == 3 and all((tmp_path / "e" / p["images"][0]).is_file() for p in pairs)
    assert not list((tmp_path / "e").glob(".tmp-*"))
    res = run(env, "synth", "--out", tmp_path / "ds2", "--limit", 2, "--export", "qa-pairs")
    assert res.returncode == 0, res.stderr
    assert len((tmp_path / "ds2" / "exports" / "qa-pairs" / "pairs.jsonl").read_text().splitlines()) == 2

    # a hostile block is that row's failure; an unknown format names the plugin's beside the built-ins
    bad = tmp_path / "src"
    shutil.copytree(ROOT / "examples" / "custom_source" / "sample", bad)
    with (bad / "quiz.qa").open("a") as f:
        f.write("\nimage: ../../../etc/passwd\nquestion: Out?\nanswer: 0\n\nquestion: no image\nanswer: 1\n")
    res = run(env, "synth", "--source", bad / "quiz.qa", "--out", tmp_path / "ds3")
    assert res.returncode == 3, res.stderr
    fails = [json.loads(line) for line in (tmp_path / "ds3" / "failures.jsonl").open()]
    assert sorted(f["reason"].split(":")[0] for f in fails) == ["block 3", "block 4"]
    res = run(env, "synth", "--out", tmp_path / "ds4", "--format", "qaa")
    assert res.returncode == 2 and "did you mean 'qa'" in res.stderr
    res = run(env, "export", ds, "--to", "qa-pair", "--out", tmp_path / "e2")
    assert res.returncode == 2 and "did you mean 'qa-pairs'" in res.stderr


def test_without_the_plugins_their_formats_are_unknown(tmp_path):
    res = run(None, "synth", "--source", ROOT / "examples/custom_source/sample/quiz.qa", "--out", tmp_path / "d")
    assert res.returncode == 2 and "cannot tell the format" in res.stderr
