"""The trust boundary of the commands added after the first hardening (eval, push, card, rebuild, eval-report,
eval-compare, calibrate) and of the chain gate, attacked from outside: records naming files outside, symlinks and
dotfiles in a dataset, YAML in a manifest, tampered rebuild manifests, reports pointed at other folders, Unicode
look-alikes. Each case: one-line errors, exact exit codes, no traceback, nothing read or written outside."""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path

import cv2
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from robustgen.annotate.base import TeacherInput
from robustgen.annotate.gate import gate_chain, normalize
from robustgen.annotate.prompts import SYSTEM
from robustgen.annotate.template import TemplateTeacher
from robustgen.degrade.recipes import Recipe
from robustgen.errors import RobustgenError
from robustgen.images import encode, load_image, write_image
from robustgen.pipelines.card import card_text
from robustgen.pipelines.corrupt import read_manifest
from robustgen.pipelines.samples import load_samples

from ..annotate.fake_openai import FakeOpenAI
from ..helpers import cli


def one_line(res, code: int) -> str:
    assert res.returncode == code, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr + res.stdout
    return res.stderr


def _records(ds: Path) -> tuple[Path, list[dict]]:
    shard = next((ds / "data").glob("*.jsonl"))
    return shard, [json.loads(line) for line in shard.read_text().splitlines() if line.strip()]


def _write(shard: Path, recs: list[dict]) -> None:
    shard.write_text("".join(json.dumps(r) + "\n" for r in recs))


@pytest.fixture(scope="module")
def folder_dataset(tmp_path_factory) -> tuple[Path, Path]:
    """A dataset synthesised from an image folder (so its manifest records the folder as a source root)."""
    base = tmp_path_factory.mktemp("trustcmd")
    photos = base / "photos"
    photos.mkdir()
    rows = []
    for name in ("coffee", "rocket", "chelsea", "astronaut"):
        write_image(photos / f"{name}.jpg", cv2.resize(load_image(f"skimage:{name}"), (96, 72)))
        rows.append({"id": name, "image": f"{name}.jpg", "question": "Which?", "answer": "0", "choices": ["a", "b"]})
    (photos / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    ds = base / "ds"
    res = cli("synth", "--out", ds, "--source", photos / "rows.jsonl")
    assert res.returncode == 0, res.stderr
    return ds, photos


@pytest.fixture
def private(tmp_path) -> Path:
    """A private image outside every root: its pixels must never be sent, its existence never told."""
    d = tmp_path / "private"
    d.mkdir()
    write_image(d / "secret.png", load_image("skimage:astronaut")[:64, :64])
    return d / "secret.png"


# ---- eval on a dataset reads only what the dataset's roots hold ------------------------------------------------


def test_eval_never_reads_a_path_a_record_names_outside_its_roots(folder_dataset, tmp_path, private):
    src, _ = folder_dataset
    ds = tmp_path / "ds"
    shutil.copytree(src, ds)
    shard, recs = _records(ds)
    assert len(recs) == 4
    hostile = [str(private), "../../../../etc/passwd", "/root/.bash_history"]
    for rec, ref in zip(recs[1:], hostile, strict=True):
        rec["source_image"] = ref
    _write(shard, recs)

    res = cli("validate", ds)
    assert (
        res.returncode == 1
        and res.stdout.count("source_image is outside") + res.stderr.count("source_image is outside") == 3
    )

    asked: list[dict] = []

    def vlm(body):
        asked.append(body)
        return "A", "stop"

    out = tmp_path / "ev"
    with FakeOpenAI(replier=vlm) as server:
        res = cli("eval", ds, "--out", out, "--model", "m", "--base-url", server.url, "--levels", "0.5")
    one_line(res, 3)
    fails = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert sorted(f["id"] for f in fails) == sorted(r["id"] for r in recs[1:])
    reasons = {f["reason"] for f in fails}
    assert len(reasons) == 1  # the same words for a file that exists, one that does not, one not an image
    assert "not read" in reasons.pop()
    assert len(asked) == 2  # the one good record, clean and at 50%: nothing of the private image was sent
    assert str(private) not in (out / "failures.jsonl").read_text()

    # the user may name a folder they trust: then the record's image is read from it
    out2 = tmp_path / "ev2"
    with FakeOpenAI(replier=vlm) as server:
        res = cli(
            "eval", ds, "--out", out2, "--model", "m", "--base-url", server.url, "--levels", "0.5",
            "--source-root", private.parent,
        )  # fmt: skip
    one_line(res, 3)
    fails = [json.loads(line)["id"] for line in (out2 / "failures.jsonl").read_text().splitlines()]
    assert recs[1]["id"] not in fails and len(fails) == 2


def test_a_manifest_widening_its_roots_to_everything_is_not_trusted(folder_dataset, tmp_path, private):
    src, _ = folder_dataset
    ds = tmp_path / "ds"
    shutil.copytree(src, ds)
    manifest = json.loads((ds / "manifest.json").read_text())
    manifest["source"]["roots"] = ["/", str(Path.home()), "/etc", "/tmp"]
    (ds / "manifest.json").write_text(json.dumps(manifest))
    shard, recs = _records(ds)
    recs[0]["source_image"] = str(private)
    _write(shard, recs)
    res = cli("validate", ds)
    assert res.returncode == 1 and "too broad for a source folder" in res.stdout + res.stderr
    with FakeOpenAI(replier=lambda body: ("A", "stop")) as server:
        res = cli("eval", ds, "--out", tmp_path / "ev", "--model", "m", "--base-url", server.url, "--levels", "0.5")
        assert len(server.requests) == 0  # no root left to read from (/tmp is a whole tree): nothing is sent
    one_line(res, 3)


def test_eval_into_a_dataset_or_a_fifo_as_input_is_refused(folder_dataset, tmp_path):
    src, _ = folder_dataset
    ds = tmp_path / "ds"
    shutil.copytree(src, ds)
    before = (ds / "failures.jsonl").read_bytes()
    res = cli("eval", ds, "--out", ds, "--model", "m", "--base-url", "http://127.0.0.1:9/v1")
    assert "holds a robustgen dataset" in one_line(res, 2)
    assert (ds / "failures.jsonl").read_bytes() == before
    fifo = tmp_path / "rows.jsonl"
    os.mkfifo(fifo)
    res = cli("eval", fifo, "--out", tmp_path / "ev", "--model", "m", "--base-url", "http://127.0.0.1:9/v1")
    assert "not a regular file" in one_line(res, 2)


# ---- push uploads exactly the dataset's files ------------------------------------------------------------------


def _push_plan(ds: Path, monkeypatch) -> tuple[int, list[str], str]:
    from huggingface_hub import HfApi
    from typer.testing import CliRunner

    from robustgen.cli import app

    seen: dict = {"paths": []}

    def create_commit(self, repo_id, operations, **kw):
        seen["paths"] = sorted(op.path_in_repo for op in operations)

        class Info:
            commit_url = "https://huggingface.co/x"

        return Info()

    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: None)
    monkeypatch.setattr(HfApi, "create_commit", create_commit)
    res = CliRunner().invoke(app, ["push", str(ds), "--repo", "someone/data"])
    return res.exit_code, seen["paths"], res.output


def test_push_skips_dotfiles_and_stray_links_and_refuses_linked_dataset_files(folder_dataset, tmp_path, monkeypatch):
    src, _ = folder_dataset
    ds = tmp_path / "ds"
    shutil.copytree(src, ds)
    outside = tmp_path / "outside.txt"
    outside.write_text("private")
    (ds / "data" / ".env").write_text("OPENAI_API_KEY=sk-private-123456")
    (ds / "images" / "extra.png").symlink_to(outside)
    (ds / "clean").mkdir(exist_ok=True)
    (ds / "clean" / "x.png").symlink_to(outside)
    code, paths, output = _push_plan(ds, monkeypatch)
    assert code == 0, output
    _, recs = _records(ds)
    assert len([p for p in paths if p.startswith("images/")]) == len(recs)
    assert not any(p.endswith((".env", "extra.png")) or p.startswith("clean/") for p in paths)

    # a data shard that is a link: validate names it, push refuses the whole dataset
    shard, _ = _records(ds)
    (ds / "data" / "part-zz.jsonl").symlink_to(shard)
    res = cli("validate", ds)
    assert res.returncode == 1 and "data/part-zz.jsonl: not a regular file" in res.stdout + res.stderr
    code, paths, output = _push_plan(ds, monkeypatch)
    assert code == 2 and paths == [] and "refusing to push" in output


# ---- card: a manifest is data, never markup; a link planted in the folder is replaced, never written through -----


def test_card_from_a_hostile_manifest_is_inert_and_writes_through_no_link(folder_dataset, tmp_path):
    src, _ = folder_dataset
    ds = tmp_path / "ds"
    shutil.copytree(src, ds)
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    manifest = json.loads((ds / "manifest.json").read_text())
    manifest["license"] = f"mit\nconfigs:\n- config_name: default\n  data_files: {other}"
    manifest["recipe"]["name"] = "<script>alert(1)</script> [x](http://evil)"
    (ds / "manifest.json").write_text(json.dumps(manifest))
    victims = {name: tmp_path / f"victim-{name}" for name in ("README.md", ".tmp-metadata.jsonl", "metadata.jsonl")}
    for name, victim in victims.items():
        victim.write_text("untouched")
        (ds / name).unlink(missing_ok=True)
        (ds / name).symlink_to(victim)
    res = cli("card", ds)
    one_line(res, 0)
    assert all(v.read_text() == "untouched" for v in victims.values())
    assert not (ds / "README.md").is_symlink()
    card = (ds / "README.md").read_text()
    front = yaml.safe_load(card.split("---\n")[1])
    assert front["license"] == "other"
    assert front["configs"][0]["data_files"] == [{"split": "train", "path": ["metadata.jsonl", "images/**"]}]
    assert "<script>" not in card and "](http" not in card


@pytest.mark.parametrize("command", ["card", "synth"])
def test_a_licence_that_is_no_id_is_refused_before_any_work(folder_dataset, tmp_path, command):
    src, _ = folder_dataset
    if command == "card":
        res = cli("card", src, "--license", "cc-by-4")
    else:
        res = cli("synth", "--out", tmp_path / "new", "--limit", 1, "--license", "not-a-licence")
        assert not (tmp_path / "new").exists()
    err = one_line(res, 2)
    assert "not a licence id" in err
    if command == "card":
        assert "cc-by-4.0" in err  # the close match


# ---- rebuild treats its manifest as input --------------------------------------------------------------------------


def _bench(tmp_path: Path, duplicate: bool = False) -> Path:
    rows = ["index\tquestion\tA\tB\tanswer\timage"]
    for i, name in enumerate(["coffee", "rocket", "chelsea"]):
        b64 = base64.b64encode(encode(cv2.resize(load_image(f"skimage:{name}"), (64, 48)), "jpg")).decode()
        rows.append(f"{0 if duplicate and i == 2 else i}\tWhat is shown?\tx\ty\tA\t{b64}")
    p = tmp_path / "Bench.tsv"
    p.write_text("\n".join(rows) + "\n")
    return p


def _manifest(tmp_path: Path, src: Path) -> Path:
    res = cli("corrupt-eval", src, "--out", tmp_path / "m", "--levels", "0.3,0.6", "--manifest-only")
    assert res.returncode == 0, res.stderr
    return next((tmp_path / "m").glob("*.manifest.jsonl"))


@pytest.mark.parametrize(
    "header",
    [{"levels": [0, 0]}, {"seed": "abc"}, {"seed": -1}, {"kind": "zip"}, {"levels": "0.5"}, {"levels": [5]}],
    ids=["zero-levels", "seed-text", "seed-negative", "kind", "levels-text", "level-5"],
)
def test_a_tampered_rebuild_header_is_refused_before_anything_is_written(tmp_path, header):
    src = _bench(tmp_path)
    man = _manifest(tmp_path, src)
    lines = man.read_text().splitlines()
    lines[0] = json.dumps({**json.loads(lines[0]), **header})
    man.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    res = cli("rebuild", man, "--source", src, "--out", out)
    assert "manifest" in one_line(res, 2)
    assert not out.exists() or not any(out.iterdir())


def test_damaged_rebuild_entries_fail_their_rows_by_name_and_the_rest_rebuild(tmp_path):
    src = _bench(tmp_path)
    man = _manifest(tmp_path, src)
    lines = man.read_text().splitlines()
    entries = [json.loads(line) for line in lines[1:]]
    damage = {
        "0": lambda e: {**e, "degradations": "fog"},
        "1": lambda e: {**e, "degradations": [{**e["degradations"][0], "severity": 5}]},
        "2": lambda e: {**e, "degradations": [{**e["degradations"][0], "name": "no_such_degrader"}]},
    }
    victim = {"0": 50, "1": 100, "2": 50}  # levels 0.3 and 0.6 are named 50 and 100
    entries = [damage[e["id"]](e) if e["level"] == victim[e["id"]] else e for e in entries]
    man.write_text("\n".join([lines[0], *map(json.dumps, entries)]) + "\n")
    res = cli("rebuild", man, "--source", src, "--out", tmp_path / "out")
    err = one_line(res, 3)
    for rid in ("0", "1", "2"):
        assert f"{rid}: level" in err
    assert "severity" in err and "no_such_degrader" in err
    rebuilt = (tmp_path / "out" / "Bench_Robust_50.tsv").read_text().splitlines()
    assert len(rebuilt) == 4  # header and every row, the failed ones kept clean


def test_a_tsv_with_a_repeated_index_rebuilds_from_its_own_manifest(tmp_path):
    src = _bench(tmp_path, duplicate=True)
    man = _manifest(tmp_path, src)
    res = cli("rebuild", man, "--source", src, "--out", tmp_path / "out")
    one_line(res, 0)
    assert "every image matches" in res.stdout


# ---- reports never overwrite what they did not create; compare only what is paired ---------------------------------


def _eval(src: Path, out: Path, url: str, *extra) -> None:
    res = cli("eval", src, "--out", out, "--model", "m", "--base-url", url, "--levels", "0.3,0.6", *extra)
    assert res.returncode == 0, res.stderr


def test_eval_report_into_an_eval_run_is_refused_and_compare_wants_pairs(tmp_path):
    src = _bench(tmp_path)
    with FakeOpenAI(replier=lambda body: ("A", "stop")) as server:
        _eval(src, tmp_path / "a", server.url)
        _eval(src, tmp_path / "b", server.url)
        _eval(src, tmp_path / "c", server.url, "--seed", "3")
    preds = tmp_path / "Bench.tsv.preds.tsv"
    preds.write_text("index\tquestion\tA\tB\tanswer\tprediction\n0\tq\tx\ty\tA\tA\n")
    before = (tmp_path / "a" / "predictions" / "clean.jsonl").read_bytes()
    man = _manifest(tmp_path, src)
    res = cli("eval-report", "--vlmeval-preds", preds, "--manifest", man, "--out", tmp_path / "a")
    assert "holds an eval run" in one_line(res, 2)
    assert (tmp_path / "a" / "predictions" / "clean.jsonl").read_bytes() == before

    assert json.loads(cli("eval-compare", tmp_path / "a", tmp_path / "b").stdout)["paired"] is True
    res = cli("eval-compare", tmp_path / "a", tmp_path / "c")
    assert "not paired" in one_line(res, 2) and "seed" in res.stderr
    res = cli("eval-compare", tmp_path / "a", tmp_path / "c", "--force")
    one_line(res, 0)
    assert json.loads(res.stdout)["paired"] is False and json.loads(res.stdout)["differences"] == ["seed"]

    (tmp_path / "b" / "predictions" / "clean.jsonl").write_text('{"id": "0", "level": "clean"}\n')
    res = cli("eval-compare", tmp_path / "a", tmp_path / "b")
    assert "clean.jsonl:1: not a prediction" in one_line(res, 2)

    fake_xlsx = tmp_path / "Bench.xlsx"
    fake_xlsx.write_bytes(b"PK\x03\x04 not a workbook at all")
    res = cli("eval-report", "--vlmeval-preds", fake_xlsx, "--manifest", man, "--out", tmp_path / "r")
    assert "not a readable prediction table" in one_line(res, 2)


# ---- the gate reads text as a reader sees it --------------------------------------------------------------------


@pytest.fixture(scope="module")
def passing():
    row = load_samples()[0]
    recipe = Recipe()
    plan = recipe.sample(seed=0, sample_id=row.id)
    chain = TemplateTeacher().chain_for(TeacherInput.for_row(row, plan.degradations, recipe.reasoning_length))
    assert gate_chain(chain, plan.degradations, row.question, row.choices) == []
    return row, plan, chain


@pytest.mark.parametrize(
    "insert, code",
    [
        ("Given the correct\u200b answer, this follows.", "leak"),
        ("Compared with the \u043eriginal image, little changed.", "leak"),
        ("Compared with the ｏｒｉｇｉｎａｌ image, little changed.", "leak"),
        (SYSTEM.replace("e", "\u0435"), "echo"),
    ],
    ids=["zero-width", "cyrillic-o", "fullwidth", "system-prompt-cyrillic-e"],
)
def test_look_alike_characters_do_not_get_a_chain_past_the_gate(passing, insert, code):
    row, plan, chain = passing
    bad = chain.model_copy(update={"reasoning": chain.reasoning + " " + insert})
    found = gate_chain(bad, plan.degradations, row.question, row.choices)
    assert code in {f.code for f in found}


def test_normalising_leaves_other_scripts_alone():
    assert normalize("Привет мир") == "Привет мир"
    assert normalize("plain text") == "plain text"


# ---- fuzzing: manifests and cards -----------------------------------------------------------------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=st.dictionaries(st.sampled_from(["kind", "levels", "seed", "recipe", "x"]), _JSON), body=_JSON)
def test_any_rebuild_manifest_is_read_or_refused_in_one_line(tmp_path, header, body):
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps({"robustgen_manifest": 1, **header}) + "\n" + json.dumps(body) + "\n")
    try:
        head, entries = read_manifest(path)
    except RobustgenError as exc:
        assert "\n" not in str(exc)
        return
    assert head.kind in ("tsv", "folder") and all(0 < v <= 1 for v in head.levels)


@settings(max_examples=150, deadline=None)
@given(manifest=st.dictionaries(st.sampled_from(["license", "recipe", "teacher", "counts", "versions", "seed"]), _JSON))
def test_any_manifest_makes_a_card_whose_yaml_is_the_fixed_one(manifest):
    card = card_text(manifest, 3, None)
    front = yaml.safe_load(card.split("---\n")[1])
    assert set(front) == {"license", "task_categories", "tags", "configs"}
    assert front["configs"][0]["data_files"] == [{"split": "train", "path": ["metadata.jsonl", "images/**"]}]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(
        st.dictionaries(
            st.sampled_from(["id", "image", "question", "answer", "choices", "x"]),
            _JSON | st.just("skimage:coffee") | st.lists(st.text(max_size=5), max_size=40),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_any_eval_input_row_is_an_item_or_a_failure(tmp_path, rows):
    from robustgen.eval.run import _unaskable, eval_rows, prompt_for
    from robustgen.schemas import Failure, SourceRow

    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    items = list(eval_rows(str(path)))
    assert len(items) == len(rows)  # nothing lost
    for item in items:
        assert isinstance(item, SourceRow | Failure)
        if isinstance(item, SourceRow) and _unaskable(item) is None:
            assert item.question in prompt_for(item)


def test_a_manifest_root_reached_through_a_link_is_not_trusted(folder_dataset, tmp_path):
    """A root that is a symbolic link (here to /) would let a record name any file through it: left out."""
    src, _ = folder_dataset
    ds = tmp_path / "ds"
    shutil.copytree(src, ds)
    (ds / "imgs").symlink_to("/")
    manifest = json.loads((ds / "manifest.json").read_text())
    manifest["source"]["roots"] = [str(ds / "imgs")]
    (ds / "manifest.json").write_text(json.dumps(manifest))
    shard, recs = _records(ds)
    for rec in recs:
        rec["source_image"] = str(ds / "imgs" / "etc" / "passwd")
    _write(shard, recs)
    with FakeOpenAI(replier=lambda body: ("A", "stop")) as server:
        res = cli("eval", ds, "--out", tmp_path / "ev", "--model", "m", "--base-url", server.url, "--levels", "0.5")
        assert len(server.requests) == 0
    one_line(res, 3)


def test_an_ordinary_dataset_validates_and_a_folder_named_like_a_shard_is_named(folder_dataset, tmp_path):
    src, photos = folder_dataset
    assert cli("validate", src).returncode == 0  # its source folder sits in a temporary folder: still valid
    manifest = json.loads((src / "manifest.json").read_text())
    assert manifest["source"]["roots"] == [str(photos.resolve())]
    ds = tmp_path / "ds"
    shutil.copytree(src, ds)
    (ds / "data" / "zz.jsonl").mkdir()
    res = cli("validate", ds)
    assert res.returncode == 1 and "data/zz.jsonl: not a regular file" in res.stdout + res.stderr
    one_line(cli("card", ds), 0)  # the folder is no shard: the card is written from the real ones


def test_a_torn_last_prediction_line_is_what_a_kill_leaves_and_is_not_an_error(tmp_path):
    src = _bench(tmp_path)
    with FakeOpenAI(replier=lambda body: ("A", "stop")) as server:
        _eval(src, tmp_path / "a", server.url)
    clean = tmp_path / "a" / "predictions" / "clean.jsonl"
    clean.write_bytes(clean.read_bytes() + b'{"id": "9", "lev')
    res = cli("eval-compare", tmp_path / "a", tmp_path / "a")
    one_line(res, 0)


def test_a_folder_of_the_users_own_predictions_is_not_taken_for_a_report(tmp_path):
    mine = tmp_path / "exp"
    (mine / "predictions").mkdir(parents=True)
    (mine / "predictions" / "model-a.jsonl").write_text('{"id": "1", "correct": true}\n')
    src = _bench(tmp_path)
    man = _manifest(tmp_path, src)
    preds = tmp_path / "Bench.preds.tsv"
    preds.write_text("index\tquestion\tA\tB\tanswer\tprediction\n0\tq\tx\ty\tA\tA\n")
    res = cli("eval-report", "--vlmeval-preds", preds, "--manifest", man, "--out", mine)
    assert "files robustgen did not write" in one_line(res, 2)
    assert (mine / "predictions" / "model-a.jsonl").is_file()
