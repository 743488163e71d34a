"""Fuzzing of record loading: whatever a dataset's shards, failures or a records.jsonl hold, validate, stats and
replay answer with problems or one-line errors, never a traceback, and every line is counted."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from robustgen.cli import app
from robustgen.errors import RobustgenError
from robustgen.pipelines.dataset import Dataset, validate_dataset
from robustgen.pipelines.stats import compute

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

_scalar = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True)
    | st.text(max_size=12)
    | st.sampled_from(["../../etc/passwd", "/etc/passwd", "images/../../x.jpg", "$\\frac{", "<b>", "\ud800"])
)
_json = st.recursive(
    _scalar, lambda i: st.lists(i, max_size=3) | st.dictionaries(st.text(max_size=6), i, max_size=3), max_leaves=6
)


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    from robustgen.pipelines.job import SynthConfig, synth

    out = tmp_path_factory.mktemp("fuzzrec") / "ds"
    synth(SynthConfig(out=str(out), limit=3))
    return out


def _mutate(record: dict, path: list[str], value) -> dict:
    """``record`` with the value at ``path`` (keys into nested dicts/lists) replaced by ``value``."""
    rec = json.loads(json.dumps(record))
    node = rec
    for key in path[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if isinstance(node, list):
        node[int(path[-1])] = value
    else:
        node[path[-1]] = value
    return rec


PATHS = [
    ["id"],
    ["image"],
    ["width"],
    ["question"],
    ["answer"],
    ["choices"],
    ["degradations"],
    ["degradations", "0", "name"],
    ["degradations", "0", "severity"],
    ["degradations", "0", "params"],
    ["chain"],
    ["chain", "answer"],
    ["response"],
    ["quality"],
    ["teacher"],
]


@FUZZ
@given(where=st.sampled_from(PATHS), value=_json, junk=st.binary(max_size=40))
def test_fuzzed_records_are_problems_not_crashes(clean, tmp_path, where, value, junk):
    ds = tmp_path / "ds"
    shutil.rmtree(ds, ignore_errors=True)
    shutil.copytree(clean, ds)
    shard = next((ds / "data").glob("*.jsonl"))
    lines = shard.read_text().splitlines()
    first = json.loads(lines[0])
    lines[0] = json.dumps(_mutate(first, where, value), allow_nan=True, ensure_ascii=False)
    shard.write_bytes("\n".join(lines).encode("utf-8", "surrogatepass") + b"\n" + junk)
    (ds / "failures.jsonl").write_bytes(junk)
    problems = validate_dataset(ds)  # never raises for a dataset whose manifest reads
    assert all(isinstance(p, str) and "\n" not in p for p in problems)
    try:
        compute(Dataset.open(ds))
    except RobustgenError as exc:  # an invalid record: stats says which, in one line
        assert "\n" not in str(exc)


@FUZZ
@given(where=st.sampled_from([["id"], ["source"], ["plan"], ["plan", "degradations"], ["sha256"]]), value=_json)
def test_fuzzed_replay_records_fail_alone(tmp_path, where, value):
    records = tmp_path / "records.jsonl"
    if not records.exists():
        runner = CliRunner()
        res = runner.invoke(app, ["degrade", "skimage:coffee", "--out", str(tmp_path), "--degrader", "noise=0.3"])
        assert res.exit_code == 0, res.output
    good = json.loads(records.read_text().splitlines()[0])
    hostile = tmp_path / "hostile.jsonl"
    line = json.dumps(_mutate(good, where, value), allow_nan=True, ensure_ascii=False)
    hostile.write_bytes((json.dumps(good) + "\n" + line + "\n").encode("utf-8", "surrogatepass"))
    out = tmp_path / "replayed"
    res = CliRunner().invoke(app, ["replay", str(hostile), "--out", str(out)])
    assert res.exit_code in (0, 3), (res.exit_code, res.output, res.exception)
    assert res.exception is None or isinstance(res.exception, SystemExit)
    for f in out.iterdir():
        assert f.resolve().parent == out.resolve()  # whatever the id, nothing is written outside --out


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("params", {"bogus": 1}, "parameter"),  # the degrader's own parameters replaced
        ("name", "not_a_degrader", "not_a_degrader"),  # a degrader this install does not have
    ],
)
def test_validate_names_a_degradation_that_replay_would_refuse(clean, tmp_path, field, value, named):
    ds = tmp_path / "ds"
    shutil.copytree(clean, ds)
    shard = next((ds / "data").glob("*.jsonl"))
    lines = shard.read_text().splitlines()
    first = json.loads(lines[0])
    first["degradations"][0][field] = value
    lines[0] = json.dumps(first)
    shard.write_text("\n".join(lines) + "\n")
    problems = validate_dataset(ds)
    assert len(problems) == 1 and "cannot be replayed" in problems[0] and named in problems[0]
    assert first["id"] in problems[0]


def test_validate_names_a_parameter_outside_its_bounds(clean, tmp_path):
    ds = tmp_path / "ds"
    shutil.copytree(clean, ds)
    shard = next((ds / "data").glob("*.jsonl"))
    lines = shard.read_text().splitlines()
    first = json.loads(lines[0])
    d = first["degradations"][0]
    key = next(iter(d["params"]))
    d["params"][key] = 10**9  # beyond any degrader's bound
    lines[0] = json.dumps(first)
    shard.write_text("\n".join(lines) + "\n")
    problems = validate_dataset(ds)
    assert any("cannot be replayed" in p and f"parameter {key}" in p for p in problems), problems
