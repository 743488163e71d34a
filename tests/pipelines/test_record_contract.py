"""The record contract is held where records are written, for every teacher: a plugin teacher that skips every
check (a wrong answer, a TYPE naming what was never applied, a reasoning too short for its band) or that raises
anything at all (``sys.exit``, ``CancelledError``, a bare ``BaseException``) gets those rows failed, with their
images removed, while the rest is written, and ``validate`` finds the dataset clean. Plugins are installed as a
user installs them: an entry point in an installed distribution."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from ..helpers import robustgen_cmd

PLUGIN = r'''
import asyncio, sys, zlib
from pydantic import BaseModel, ConfigDict
from robustgen.annotate.base import Teacher
from robustgen.annotate.template import TemplateTeacher
from robustgen.schemas import TeacherInfo, TeacherResult, Usage


class HostileConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fault: str = "answer"


class HostileTeacher(Teacher):
    """Writes the template's chain, spoiled on every other row; calls no check of its own."""

    name = "hostile"
    Config = HostileConfig

    async def annotate(self, item):
        chain = TemplateTeacher().chain_for(item)
        if zlib.crc32(item.sample_id.encode()) % 2:
            fault = self.config.fault
            if fault == "answer":
                chain = chain.model_copy(update={"answer": "a giraffe"})
            elif fault == "type":
                chain = chain.model_copy(update={"types": [("halftone print", 0.5)]})
            elif fault == "short":
                chain = chain.model_copy(update={"reasoning": "It is plain to see."})
            elif fault == "exit":
                sys.exit(0)
            elif fault == "cancel":
                raise asyncio.CancelledError()
            elif fault == "base":
                raise BaseException("a plugin raised BaseException")
            elif fault == "none":
                return None
        return TeacherResult(chain=chain, usage=Usage(), teacher=TeacherInfo(kind="hostile", model="h"))


class SlothTeacher(Teacher):
    """The template's chain, after blocking its worker for 30 ms (a slow offline teacher)."""

    name = "sloth"

    async def annotate(self, item):
        import time
        time.sleep(0.03)
        chain = TemplateTeacher().chain_for(item)
        return TeacherResult(chain=chain, usage=Usage(), teacher=TeacherInfo(kind="sloth", model="s"))


class LookerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    log: str


class LookerTeacher(Teacher):
    """Looks at the pixels it is shown and notes their hash."""

    name = "looker"
    Config = LookerConfig

    @property
    def wants_images(self):
        return True

    async def annotate(self, item):
        import hashlib, json
        digest = hashlib.sha256(item.degraded.tobytes()).hexdigest()
        with open(self.config.log, "a") as f:
            f.write(json.dumps({"id": item.sample_id, "sha": digest}) + "\n")
        chain = TemplateTeacher().chain_for(item)
        return TeacherResult(chain=chain, usage=Usage(), teacher=TeacherInfo(kind="looker", model="l"))
'''


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    """An installed distribution holding the plugin: its module and a dist-info with the entry point."""
    site = tmp_path_factory.mktemp("site")
    (site / "hostile_teacher.py").write_text(PLUGIN)
    info = site / "hostile_teacher-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hostile-teacher\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[robustgen.teachers]\nhostile = hostile_teacher:HostileTeacher\nlooker = hostile_teacher:LookerTeacher\n"
        "sloth = hostile_teacher:SlothTeacher\n"
    )
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}


def run(env, *args) -> subprocess.CompletedProcess:
    cmd = [*robustgen_cmd(), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


def _spoiled(sample_id: str) -> bool:
    import zlib

    return bool(zlib.crc32(sample_id.encode()) % 2)


def _check(env, out: Path, res: subprocess.CompletedProcess, stage: str, words: str) -> None:
    assert res.returncode == 3, res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    written = [json.loads(line) for f in sorted((out / "data").glob("*.jsonl")) for line in f.open()]
    failed = [json.loads(line) for line in (out / "failures.jsonl").open()]
    samples = json.loads((Path(__file__).parents[2] / "robustgen" / "pipelines" / "samples.json").read_text())
    assert {r["id"] for r in written} == {s["id"] for s in samples if not _spoiled(s["id"])}
    assert {f["id"] for f in failed} == {s["id"] for s in samples if _spoiled(s["id"])}
    for f in failed:
        assert f["stage"] == stage and words in f["reason"], f
    # nothing of a failed row is left: the images folder holds exactly the written records' images
    on_disk = sorted(str(p.relative_to(out)) for p in (out / "images").rglob("*") if p.is_file())
    assert on_disk == sorted(r["image"] for r in written)
    check = run(env, "validate", out)
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize(
    ("fault", "stage", "words"),
    [
        ("answer", "validate", "does not match the known correct answer"),
        ("type", "validate", "TYPE must be exactly"),
        ("short", "validate", "the reasoning has 5 words"),
    ],
)
def test_a_plugin_teacher_that_skips_every_check_cannot_write_a_bad_record(env, tmp_path, fault, stage, words):
    out = tmp_path / "ds"
    res = run(env, "synth", "--out", out, "--teacher", "hostile", "--teacher-set", f"fault={fault}")
    _check(env, out, res, stage, words)


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        ("exit", "SystemExit"),
        ("cancel", "CancelledError"),
        ("base", "BaseException: a plugin raised BaseException"),
        ("none", "the teacher returned NoneType"),
    ],
)
def test_whatever_a_plugin_teacher_raises_fails_its_row_only(env, tmp_path, fault, words):
    out = tmp_path / "ds"
    res = run(env, "synth", "--out", out, "--teacher", "hostile", "--teacher-set", f"fault={fault}")
    _check(env, out, res, "annotate" if fault == "none" else "internal", words)
    assert "failed of 14" in res.stdout


def test_the_contract_holds_on_ray_too(env, tmp_path):
    """Ray's lanes run the same stage functions: the same rows fail for the same reason."""
    out = tmp_path / "ds"
    res = run(env, "synth", "--out", out, "--teacher", "hostile", "--teacher-set", "fault=type", "--executor", "ray")
    assert res.stderr.splitlines()[0].startswith("run: on Ray Data")
    _check(env, out, res, "validate", "TYPE must be exactly")


def test_validate_names_a_reasoning_outside_its_band(tmp_path):
    """A record edited after the run (its reasoning cut short) fails validate, as it would have failed the write."""
    out = tmp_path / "ds"
    assert run(os.environ, "synth", "--out", out, "--limit", 3).returncode == 0
    shard = next((out / "data").glob("*.jsonl"))
    recs = [json.loads(line) for line in shard.open()]
    recs[0]["chain"]["reasoning"] = "Short."
    recs[0]["response"] = recs[0]["response"].replace(
        recs[0]["response"].split("<REASONING>")[1].split("<REASONING_END>")[0], "Short."
    )
    shard.write_text("".join(json.dumps(r) + "\n" for r in recs))
    res = run(os.environ, "validate", out)
    assert res.returncode == 1 and f"({recs[0]['id']}): the reasoning has 1 words" in res.stdout + res.stderr


@pytest.mark.parametrize("executor", ["in-process", "ray"])
def test_a_teacher_that_looks_sees_the_stored_image(env, tmp_path, executor):
    """The pixels a teacher is shown are the stored JPEG's, decoded (what a trainer reads), not the render before
    encoding, on every path."""
    from robustgen.images import read_image

    out, log = tmp_path / "ds", tmp_path / "seen.jsonl"
    res = run(env, "synth", "--out", out, "--teacher", "looker", "--teacher-set", f"log={log}", "--executor", executor)
    assert res.returncode == 0, res.stderr[-3000:]
    seen = {r["id"]: r["sha"] for r in map(json.loads, log.open())}
    written = [json.loads(line) for f in sorted((out / "data").glob("*.jsonl")) for line in f.open()]
    assert len(seen) == len(written) == 14
    for rec in written:
        assert seen[rec["id"]] == hashlib.sha256(read_image(out / rec["image"]).tobytes()).hexdigest(), rec["id"]


def test_the_driver_and_rays_lanes_share_the_chunks(env, tmp_path):
    """On Ray with two workers the driver is one lane: it starts at once, Ray's lane joins once Ray is up, and the
    claims decide who does each chunk. A slow teacher (30 ms a row: about 24 s alone) leaves Ray time to join."""
    src = tmp_path / "rows.jsonl"
    names = ["astronaut", "coffee", "chelsea"]
    rows = [
        {
            "id": f"r{i:04d}",
            "image": f"skimage:{names[i % 3]}",
            "question": f"Which is #{i}?",
            "answer": "1",
            "choices": ["this", "that"],
        }
        for i in range(800)
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "ds"
    res = run(env, "synth", "--out", out, "--source", src, "--teacher", "sloth", "--workers", 2)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stderr.splitlines()[0] == "run: on Ray Data (over 500 rows, 2 workers on the embedded Ray)"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["run"]["executor"] == "ray" and manifest["run"]["driver_works"] is True
    timings = manifest["timings"]
    assert timings["rows_in_driver"] > 0 and timings["rows_on_ray"] > 0, timings
    assert timings["rows_in_driver"] + timings["rows_on_ray"] == 800
    ids = [json.loads(line)["id"] for f in (out / "data").glob("*.jsonl") for line in f.open()]
    assert len(ids) == len(set(ids)) == 800
