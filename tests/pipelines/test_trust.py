"""The promises of the README's "Trust and safety" section, attacked from outside through the CLI: records and
datasets from others are untrusted, paths never escape their folders, an output folder is never mixed or wiped
by mistake, and no command answers with a traceback."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from robustgen.pipelines.output import safe_name

from ..helpers import cli


def one_line_error(res, code: int = 2) -> str:
    assert res.returncode == code, (res.returncode, res.stderr)
    assert "Traceback" not in res.stderr and "Traceback" not in res.stdout
    return res.stderr


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("trust") / "ds"
    res = cli("synth", "--out", out, "--limit", 4)
    assert res.returncode == 0, res.stderr
    return out


def _copy(ds: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(ds, dst)
    return dst


def _shard(ds: Path) -> tuple[Path, list[dict]]:
    shard = next((ds / "data").glob("*.jsonl"))
    return shard, [json.loads(line) for line in shard.read_text().splitlines()]


# ---- file names -----------------------------------------------------------------------------------------


def test_the_id_to_file_name_mapping_is_one_to_one():
    ids = [
        "cat 169",
        "cat_169",
        "cat%20169",
        ".hidden",
        "%2Ehidden",
        "a/b",
        "a__b",
        "a" * 130,
        "a" * 131,
        "é",
        "\ud800",
    ]
    ids.append("cat_169-05ad6691")  # looked like another id's hashed name in the old mapping
    names = [safe_name(i) for i in ids]
    assert len(set(names)) == len(ids)
    for n in names:
        assert "/" not in n and not n.startswith(".") and len(n) <= 125
        n.encode("utf-8")


def test_synth_writes_two_lookalike_ids_to_two_files(tmp_path, image_dir):
    shutil.copy(image_dir / "coffee.jpg", tmp_path / "a.jpg")
    rows = [
        {"id": i, "image": "a.jpg", "question": "What is shown?", "answer": "a cup"} for i in ("cat 169", "cat_169")
    ]
    rows.append({**rows[0], "id": safe_name("cat 169")})
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    res = cli("synth", "--source", tmp_path / "rows.jsonl", "--out", out)
    assert res.returncode == 0, res.stderr
    _, recs = _shard(out)
    assert len({r["image"] for r in recs}) == 3
    assert cli("validate", out).returncode == 0


# ---- records and datasets from others -------------------------------------------------------------------


def test_a_record_pointing_outside_the_dataset_is_a_problem_and_never_exported(dataset, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "v.jpg").write_bytes(next(dataset.glob("images/*/*.jpg")).read_bytes())
    for image in ("images/../../victim/v.jpg", str(victim / "v.jpg")):
        ds = _copy(dataset, tmp_path / image.replace("/", "_"))
        shard, recs = _shard(ds)
        recs[0]["image"] = image
        shard.write_text("".join(json.dumps(r) + "\n" for r in recs))
        res = cli("validate", ds)
        assert res.returncode == 1 and "inside the dataset folder" in res.stderr
        for fmt in ("trl", "llamafactory", "robust-r1"):
            exp = one_line_error(cli("export", ds, "--to", fmt, "--out", tmp_path / f"exp-{fmt}"))
            assert "fails validation" in exp


def test_a_symlinked_image_pointing_out_of_the_dataset_is_refused(dataset, tmp_path):
    ds = _copy(dataset, tmp_path)
    _, recs = _shard(ds)
    img = ds / recs[0]["image"]
    outside = tmp_path / "outside.jpg"
    shutil.move(img, outside)
    img.symlink_to(outside)
    res = cli("validate", ds)
    assert res.returncode == 1 and f"{recs[0]['image']}: a symbolic link" in res.stderr  # even one pointing inside
    one_line_error(cli("export", ds, "--to", "trl", "--out", tmp_path / "exp"))


@pytest.mark.parametrize(
    "damage,expect",
    [
        (lambda ds: (ds / "failures.jsonl").write_text('{"id": "x"\n[1]\n'), "failures.jsonl:1"),
        (lambda ds: (ds / "manifest.json").write_text("[1, 2]"), "expected a JSON object"),
        (lambda ds: (ds / "manifest.json").write_text('{"counts": "lots"}'), "counts"),
        (lambda ds: next((ds / "data").glob("*.jsonl")).write_bytes(b'{"id": "caf\xe9"}\n'), "not valid UTF-8"),
        (lambda ds: next((ds / "data").glob("*.jsonl")).write_text("[" * 100_000 + "\n"), "nested too deeply"),
    ],
    ids=["failures-line", "manifest-list", "manifest-counts", "shard-latin1", "shard-deep"],
)
def test_damaged_datasets_get_one_line_answers(dataset, tmp_path, damage, expect):
    ds = _copy(dataset, tmp_path)
    damage(ds)
    res = cli("validate", ds)
    assert res.returncode in (1, 2) and "Traceback" not in res.stderr and expect in res.stderr, res.stderr
    for args in (("stats", ds, "--out", tmp_path / "st"), ("export", ds, "--to", "trl", "--out", tmp_path / "e")):
        res = cli(*args)
        assert res.returncode in (0, 2) and "Traceback" not in res.stderr, res.stderr


def test_stats_takes_tex_specials_and_markup_in_records_as_text(dataset, tmp_path):
    ds = _copy(dataset, tmp_path)
    shard, recs = _shard(ds)
    recs[0]["degradations"][0]["name"] = "$\\frac{1}{0$ <b>x</b>"
    shard.write_text("".join(json.dumps(r) + "\n" for r in recs))
    manifest = json.loads((ds / "manifest.json").read_text())
    manifest["counts"]["written"] = "<script>alert(1)</script>"
    (ds / "manifest.json").write_text(json.dumps(manifest))
    res = cli("stats", ds, "--out", tmp_path / "st")
    assert res.returncode == 0, res.stderr
    page = (tmp_path / "st" / "index.html").read_text()
    assert "<script>alert(1)" not in page and "&lt;script&gt;" in page


def test_a_broken_dataset_info_in_the_export_folder_is_named_not_overwritten(dataset, tmp_path):
    (tmp_path / "dataset_info.json").write_text("{broken")
    err = one_line_error(cli("export", dataset, "--to", "llamafactory", "--out", tmp_path))
    assert "dataset_info.json" in err and (tmp_path / "dataset_info.json").read_text() == "{broken"


def test_replay_keeps_hostile_ids_inside_out_and_refuses_absurd_params(tmp_path):
    res = cli("degrade", "skimage:coffee", "--out", tmp_path / "deg", "--degrader", "motion_blur=0.5")
    assert res.returncode == 0, res.stderr
    rec = json.loads((tmp_path / "deg" / "records.jsonl").read_text())
    lines = []
    for rid in ("../../escaped", "/tmp/abs-escaped", ".hidden"):
        lines.append({**rec, "id": rid})
    bad = json.loads(json.dumps(rec))
    bad["id"] = "huge"
    bad["plan"]["degradations"][0]["params"]["length"] = 1000.0
    lines.append(bad)
    (tmp_path / "hostile.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    out = tmp_path / "rep" / "inner"
    t0 = time.monotonic()
    res = cli("replay", tmp_path / "hostile.jsonl", "--out", out)
    assert time.monotonic() - t0 < 60
    assert res.returncode == 3 and "Traceback" not in res.stderr
    assert "length" in res.stderr  # the tampered parameter is named
    written = sorted(p.name for p in out.iterdir())
    assert len(written) == 3 and all(out / n for n in written)
    assert not (tmp_path / "escaped.png").exists() and not Path("/tmp/abs-escaped.png").exists()


# ---- output folders -----------------------------------------------------------------------------------------


def test_overwrite_never_clears_a_folder_that_is_not_a_run(tmp_path):
    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    err = one_line_error(cli("synth", "--out", precious, "--overwrite", "--limit", 1))
    assert "holds no robustgen run" in err and (precious / "thesis.tex").read_text() == "years of work"


def test_out_overlapping_the_source_is_refused(tmp_path, image_dir):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(image_dir / "coffee.jpg", src / "a.jpg")
    (src / "rows.jsonl").write_text(json.dumps({"id": "a", "image": "a.jpg", "question": "q?", "answer": "x"}) + "\n")
    err = one_line_error(cli("synth", "--source", src / "rows.jsonl", "--out", src, "--overwrite"))
    assert "holds the source" in err and (src / "rows.jsonl").is_file()
    err = one_line_error(cli("synth", "--source", src, "--out", src / "out", "--question", "What?"))
    assert "inside the source folder" in err and not (src / "out" / "manifest.json").exists()
    err = one_line_error(cli("corrupt-eval", src, "--out", src / "robust"))
    assert "inside the source folder" in err


def test_a_changed_source_at_the_same_path_is_not_resumed_into(tmp_path, image_dir):
    shutil.copy(image_dir / "coffee.jpg", tmp_path / "a.jpg")
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"id": "a", "image": "a.jpg", "question": "What?", "answer": "a cup"}) + "\n")
    out = tmp_path / "out"
    assert cli("synth", "--source", rows, "--out", out).returncode == 0
    assert cli("synth", "--source", rows, "--out", out).returncode == 0  # same content: resumes
    rows.write_text(json.dumps({"id": "a", "image": "a.jpg", "question": "What now?", "answer": "a mug"}) + "\n")
    err = one_line_error(cli("synth", "--source", rows, "--out", out))
    assert "source_digest" in err


@pytest.mark.parametrize("command", ["degrade", "corrupt-eval", "synth", "stats", "preview"])
def test_a_file_where_a_folder_should_be_is_one_line_exit_2(tmp_path, dataset, command, image_dir):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    target = blocker / "sub"
    args = {
        "degrade": ("degrade", "skimage:coffee", "--out", target),
        "corrupt-eval": ("corrupt-eval", image_dir, "--out", target),
        "synth": ("synth", "--out", target, "--limit", 1),
        "stats": ("stats", dataset, "--out", target),
        "preview": ("preview", "--out", target / "p.png", "--degrader", "noise"),
    }[command]
    err = one_line_error(cli(*args))
    assert str(blocker) in err and "re-run" not in err


def test_an_unreachable_ray_address_is_refused_in_seconds(tmp_path):
    t0 = time.monotonic()
    err = one_line_error(cli("synth", "--out", tmp_path / "o", "--ray-address", "127.0.0.1:1"))
    assert time.monotonic() - t0 < 60 and "127.0.0.1:1" in err


def test_corrupt_eval_keeps_every_row_byte_for_byte_and_says_what_it_could_not_degrade(tmp_path, image_dir):
    import base64

    b64 = base64.b64encode((image_dir / "coffee.jpg").read_bytes()).decode()
    src = tmp_path / "bench.tsv"
    src.write_bytes(
        b"index\tquestion\tA\tB\tanswer\timage\n"
        + f"1\tWhat?\tx\ty\tA\t{b64}\n".encode()
        + b"2\tcaf\xe9?\tx\ty\tB\t1\n"  # Latin-1 text; the image of row 1 (VLMEvalKit's shared image)
        + b"3\tQ?\tx\ty\tA\tnot-an-image\n"
    )
    res = cli("corrupt-eval", src, "--out", tmp_path / "out", "--levels", "0.5,1.0")
    assert res.returncode == 3 and "Traceback" not in res.stderr and "1 of 3" in res.stderr
    for n in (50, 100):
        rows = (tmp_path / "out" / f"bench_Robust_{n}.tsv").read_bytes().splitlines()
        original = src.read_bytes().splitlines()
        assert len(rows) == len(original) and rows[2:] == original[2:]  # untouched, bytes included
        assert rows[1].split(b"\t")[:5] == original[1].split(b"\t")[:5] and rows[1] != original[1]
        sides = [
            json.loads(x) for x in (tmp_path / "out" / f"bench_Robust_{n}.degradations.jsonl").read_text().splitlines()
        ]
        assert sides[1] == {"index": "2", "image_of": "1"} and "error" in sides[2]


def test_degrade_on_a_folder_refuses_symlinks_out_and_fifos_as_failures(tmp_path, image_dir):
    import os

    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(image_dir / "coffee.jpg", src / "a.jpg")
    shutil.copy(image_dir / "coffee.jpg", tmp_path / "secret.jpg")
    (src / "link.jpg").symlink_to(tmp_path / "secret.jpg")
    os.mkfifo(src / "pipe.jpg")
    res = cli("degrade", src, "--out", tmp_path / "out", "--degrader", "noise")
    assert res.returncode == 3 and "Traceback" not in res.stderr
    fails = {
        json.loads(x)["id"]: json.loads(x)["reason"]
        for x in (tmp_path / "out" / "failures.jsonl").read_text().splitlines()
    }
    assert "escapes its folder" in fails["link"] and "not a regular file" in fails["pipe"]
    assert [json.loads(x)["id"] for x in (tmp_path / "out" / "records.jsonl").read_text().splitlines()] == ["a"]


def test_an_empty_source_is_a_usage_error_not_a_finished_run(tmp_path):
    """A folder without images (or a file without rows) is exit 2 in one line, not "0 written" and exit 0."""
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    rows = tmp_path / "rows.jsonl"
    rows.write_text("\n")
    for source in (empty, rows):
        res = cli("synth", "--out", tmp_path / f"out-{source.name}", "--source", source, "--task", "degradation-qa")
        assert res.returncode == 2, res.stdout + res.stderr
        assert "nothing was written" in res.stderr and len(res.stderr.strip().splitlines()) == 1
