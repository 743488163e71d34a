"""The command line as a user runs it: the installed ``robustgen`` script, real files."""

import json
import subprocess

import cv2
import numpy as np
import pytest

from robustgen.images import read_image, write_image

from .helpers import robustgen_cmd


def run(*args, cwd=None):
    return subprocess.run([*robustgen_cmd(), *map(str, args)], capture_output=True, text=True, cwd=cwd)


def test_every_command_has_help():
    for cmd in ("list", "degrade", "replay", "preview"):
        res = run(cmd, "--help")
        assert res.returncode == 0 and "Usage" in res.stdout, cmd


def test_degrade_then_replay_check_reproduces_every_image(tmp_path):
    res = run("degrade", "--samples", "--out", tmp_path / "out", "--seed", 5)
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in (tmp_path / "out" / "records.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and all(r["plan"]["degradations"] for r in rows)
    for r in rows:
        assert read_image(tmp_path / "out" / r["output"]).shape == (r["height"], r["width"], 3)
    res = run("replay", tmp_path / "out" / "records.jsonl", "--out", tmp_path / "again", "--check")
    assert res.returncode == 0, res.stderr
    assert "6/6 match" in res.stdout
    for r in rows:
        assert np.array_equal(
            read_image(tmp_path / "again" / f"{r['id']}.png"), read_image(tmp_path / "out" / r["output"])
        )


def test_degrade_folder_with_named_degraders_and_bad_files(tmp_path):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    img = cv2.resize(read_image_sample(), (64, 48))
    write_image(src / "a.png", img)
    write_image(src / "sub" / "b.jpg", img)
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    res = run("degrade", src, "--out", tmp_path / "out", "--degrader", "motion_blur=0.8", "--degrader", "noise")
    assert res.returncode == 3
    assert "broken.png: not a readable image" in res.stderr
    assert "Traceback" not in res.stderr
    rows = [json.loads(line) for line in (tmp_path / "out" / "records.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["a", "sub__b"]
    for r in rows:
        degs = r["plan"]["degradations"]
        assert [(d["name"], d["severity"]) for d in degs] == [("motion_blur", 0.8), ("noise", 0.5)]
    failures = [json.loads(line) for line in (tmp_path / "out" / "failures.jsonl").read_text().splitlines()]
    assert len(failures) == 1 and failures[0]["id"] == "broken"


def read_image_sample():
    from robustgen.images import load_image

    return load_image("skimage:rocket")


@pytest.mark.parametrize(
    "args, message",
    [
        (("degrade", "--samples", "--degrader", "motionblur"), "did you mean 'motion_blur'"),
        (("degrade", "--samples", "--degrader", "fog=1.5"), "severity must lie in (0, 1]"),
        (("degrade", "--samples", "--degrader", "fog=abc"), "is not a number"),
        (("degrade", "--out", "x"), "no input images"),
        (("degrade", "--samples", "--recipe", "missing.yaml"), "missing.yaml: cannot read recipe"),
        (("preview", "--degrader", "nope"), "unknown degrader 'nope'"),
        (("replay", "nothing.jsonl"), "nothing.jsonl: no such file"),
    ],
)
def test_user_mistakes_are_one_line_and_exit_2(tmp_path, args, message):
    res = run(*args, cwd=tmp_path)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert message in res.stderr
    assert "Traceback" not in res.stderr
    assert res.stderr.strip().startswith("error:")


def test_replay_reports_tampered_records(tmp_path):
    assert run("degrade", "skimage:coffee", "--out", tmp_path / "o", "--degrader", "noise=0.3").returncode == 0
    rec_path = tmp_path / "o" / "records.jsonl"
    row = json.loads(rec_path.read_text())
    row["plan"]["degradations"][0]["seed"] += 1
    rec_path.write_text(json.dumps(row) + "\n{not json\n")
    res = run("replay", rec_path, "--out", tmp_path / "r", "--check")
    assert res.returncode == 1
    assert "mismatch" in res.stderr and "records.jsonl:2" in res.stderr


def test_preview_writes_a_labelled_grid(tmp_path):
    out = tmp_path / "grid.png"
    res = run("preview", "--out", out, "--degrader", "fog", "--degrader", "motion_blur", "--cell", 96)
    assert res.returncode == 0, res.stderr
    sheet = read_image(out)
    assert sheet.shape[0] > 2 * 64 and sheet.shape[1] > 6 * 96
    # the label column holds dark text on a light background
    labels = sheet[:, :200]
    assert (labels < 100).any() and np.median(labels) > 200


def test_list_stage_filter():
    res = run("list", "--stage", "transmission", "--json")
    stages = {r["stage"] for r in json.loads(res.stdout)}
    assert stages == {"transmission"}


def test_names_that_look_like_markup_are_printed_verbatim(tmp_path):
    weird = tmp_path / "[red]odd[x] [bold].png"
    weird.write_bytes(b"not an image")
    res = run("degrade", weird, "--out", tmp_path / "o")
    assert res.returncode == 3
    assert "[red]odd[x] [bold].png: not a readable image" in res.stderr and "Traceback" not in res.stderr
    bad = tmp_path / "r.yaml"
    bad.write_text("degraders: [fog, motionblur]\n")
    res = run("degrade", "--samples", "--recipe", bad, "--out", tmp_path / "o2")
    assert res.returncode == 2 and "degraders[1]: unknown degrader" in res.stderr
