"""A new user's first hour, through the CLI in a subprocess: the version, choices that list what is valid, names
that suggest the right one, a missing extra named, refusals before any work, safe defaults, `replay` on what synth
wrote, and plugins recorded in the manifest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import cli, install_example

ROOT = Path(__file__).resolve().parents[1]


def usage_error(res, *words: str) -> str:
    text = res.stderr + res.stdout
    assert res.returncode == 2, (res.returncode, text)
    assert "Traceback" not in text and "errors.pydantic.dev" not in text
    for w in words:
        assert w in text.replace("\n", " "), (w, text)
    return text


def test_version():
    res = cli("--version")
    assert res.returncode == 0 and res.stdout.startswith("robustgen ")


@pytest.mark.parametrize(
    "args, words",
    [
        (["synth", "--out", "x", "--task", "foo"], ["'foo' is not one of", "degradation-qa"]),
        (["synth", "--out", "x", "--image-format", "gif"], ["'gif' is not one of", "'png'"]),
        (["synth", "--out", "x", "--executor", "spark"], ["in-process"]),
        (["synth", "--out", "x", "--format", "jsnl"], ["jsonl", "vlmeval-tsv"]),
        (["synth", "--out", "x", "--recipe", "robust_r1"], ["did you mean 'robust-r1'"]),
        (["synth", "--out", "x", "--export", "llama-factory"], ["did you mean 'llamafactory'"]),
        (["synth", "--out", "x", "--export", "robust-u1"], ["--keep-clean"]),
        (["synth", "--out", "x", "--license", "MIT-ish"], ["not a licence id"]),
        (["synth", "--out", "x", "--teacher", "opneai"], ["did you mean 'openai'"]),
        (["degrade", "--samples", "--degrader", "jpeg"], ["did you mean 'compression'"]),
        (["degrade", "--samples", "--degrader", "motion blur"], ["did you mean 'motion_blur'"]),
    ],
    ids=lambda v: "-".join(v) if isinstance(v, list) and v and v[0] in ("synth", "degrade") else None,
)
def test_a_wrong_value_gets_the_valid_ones_or_the_close_one_and_nothing_is_done(tmp_path, args, words):
    res = subprocess.run(
        [sys.executable, "-m", "robustgen.cli", *args], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    usage_error(res, *words)
    assert not (tmp_path / "x").exists() and not (tmp_path / "out").exists()  # refused before any work


def test_a_missing_extra_is_named_with_its_install_command(tmp_path):
    """trl not installed (blocked here): `train sft` exits 2 saying which extra to install, never 'internal error'."""
    code = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] in ('trl', 'torch', 'transformers'):\n"
        "            raise ModuleNotFoundError(f\"No module named '{name}'\", name=name)\n"
        "sys.meta_path.insert(0, Block())\n"
        f"sys.argv = ['robustgen', 'train', 'sft', '--config', {str(ROOT / 'examples/training/sft.yaml')!r}]\n"
        "from robustgen.cli import main\n"
        "main()\n"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    usage_error(res, "pip install 'robustgen[train]'")


@pytest.fixture(scope="module")
def qa_dataset(tmp_path_factory) -> Path:
    """A perception dataset: some records hold two images (which version is more degraded)."""
    out = tmp_path_factory.mktemp("first") / "ds"
    res = cli("synth", "--out", out, "--task", "degradation-qa", "--seed", 1)
    assert res.returncode == 0, res.stderr
    return out


def test_replay_takes_a_dataset_folder_or_its_shards_and_matches_every_stored_image(qa_dataset, tmp_path):
    recs = [json.loads(line) for shard in (qa_dataset / "data").glob("*.jsonl") for line in shard.open()]
    images = sum(1 + len(r.get("extra_images") or []) for r in recs)
    assert images > len(recs)  # two-image records are part of the check
    res = cli("replay", qa_dataset, "--out", tmp_path / "r1", "--check")
    assert res.returncode == 0, res.stderr
    assert f"{images}/{images} match" in res.stdout
    shards = sorted((qa_dataset / "data").glob("part-*.jsonl"))
    res = cli("replay", *shards, "--out", tmp_path / "r2", "--check")
    assert res.returncode == 0 and f"{images}/{images} match" in res.stdout, res.stderr


def test_replay_check_finds_a_changed_image(qa_dataset, tmp_path):
    import shutil

    ds = tmp_path / "ds"
    shutil.copytree(qa_dataset, ds)
    rec = json.loads(next((ds / "data").glob("*.jsonl")).read_text().splitlines()[0])
    img = ds / rec["image"]
    img.write_bytes(img.read_bytes()[:-10] + b"\0" * 10)
    res = cli("replay", ds, "--out", tmp_path / "r", "--check")
    assert res.returncode == 1 and f"{rec['id']}: {rec['image']} differs" in res.stderr


def test_degrade_and_replay_refuse_to_write_into_a_dataset_or_its_folders(qa_dataset, tmp_path):
    before = sorted(str(p) for p in qa_dataset.rglob("*"))
    usage_error(cli("degrade", "--samples", "--out", qa_dataset), "lies in the robustgen dataset")
    usage_error(cli("degrade", "--samples", "--out", qa_dataset / "data"), "lies in the robustgen dataset")
    sub = next(p for p in (qa_dataset / "images").iterdir() if p.is_dir())
    usage_error(cli("replay", qa_dataset, "--out", sub, "--check"), "lies in the robustgen dataset")
    assert sorted(str(p) for p in qa_dataset.rglob("*")) == before


def test_an_earlier_dataset_resumes_the_recipe_records_no_unset_new_setting(tmp_path):
    ds = tmp_path / "ds"
    assert cli("synth", "--out", ds, "--limit", 2).returncode == 0
    run = json.loads((ds / ".work" / "run.json").read_text())
    assert "calibration" not in run["recipe"] and "calibration_sha256" not in run["recipe"]
    res = cli("synth", "--out", ds, "--limit", 2)
    assert res.returncode == 0 and "(2 from an earlier run)" in res.stdout, res.stderr


def test_the_manifest_names_the_plugins_and_a_resume_with_others_is_refused(tmp_path):
    ds = tmp_path / "ds"
    assert cli("synth", "--out", ds, "--limit", 2).returncode == 0
    assert json.loads((ds / "manifest.json").read_text())["plugins"] == []
    env = install_example(ROOT / "examples" / "custom_degrader", tmp_path / "site")
    cmd = [sys.executable, "-m", "robustgen.cli", "synth", "--out", str(ds), "--limit", "2"]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    usage_error(res, "other robustgen plugins", "+robustgen-sepia")
    ds2 = tmp_path / "ds2"
    res = subprocess.run([*cmd[:-3], str(ds2), "--limit", "2"], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    plugins = json.loads((ds2 / "manifest.json").read_text())["plugins"]
    assert [p["name"] for p in plugins] == ["robustgen-sepia"] and "degraders:sepia" in plugins[0]["provides"]
    res = subprocess.run([*cmd[:-3], str(ds2), "--limit", "2"], env={**os.environ}, capture_output=True, text=True)
    usage_error(res, "-robustgen-sepia")


def test_the_shipped_presets_name_their_degraders():
    from robustgen.degrade.recipes import Recipe, presets

    for name in presets():
        assert Recipe.load(name).degraders, f"preset {name} draws from every installed degrader"


def test_stats_groups_every_degrader_by_stage_shows_clean_beside_degraded_and_names_damage(qa_dataset, tmp_path):
    import shutil

    ds = tmp_path / "ds"
    shutil.copytree(qa_dataset, ds)
    with (ds / "failures.jsonl").open("a") as f:
        f.write("this is not json\n")
    res = cli("stats", ds, "--gallery", 50, "--out", tmp_path / "st")
    assert res.returncode == 0, res.stderr
    recs = [json.loads(line) for shard in (ds / "data").glob("*.jsonl") for line in shard.open()]
    names = {d["name"]: d["stage"] for r in recs for d in r["degradations"]}
    lines = res.stdout.splitlines()
    for name, stage in names.items():  # every degrader, indented under its own stage
        at = next(i for i, line in enumerate(lines) if f"  {name} " in line)
        above = [
            line
            for line in lines[:at]
            if any(f" {s} " in line for s in ("acquisition", "transmission", "environment", "postprocessing"))
        ]
        assert f" {stage} " in above[-1], (name, stage)
    assert "1 damaged lines" in " ".join(res.stdout.split()) and "failures.jsonl:1" in res.stderr
    page = (tmp_path / "st" / "index.html").read_text()
    images = sum(1 + len(r.get("extra_images") or []) for r in recs)
    assert page.count("data-role='clean'") == len(recs)  # samples' clean images are shown beside
    assert page.count("data-role='degraded'") == images  # two-image records included
