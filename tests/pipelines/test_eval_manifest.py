"""Evaluation sets as manifests: `corrupt-eval --manifest-only` writes records and pixel hashes instead of
images; `rebuild` turns the manifest and the clean source back into corrupt-eval's files byte for byte, and
names the rows whose pixels differ."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import cv2

from robustgen.images import encode, load_image, write_image

from ..helpers import cli


def _tsv(tmp_path: Path) -> Path:
    rows = ["index\tquestion\tA\tB\tanswer\timage"]
    for i, name in enumerate(["coffee", "rocket", "chelsea"]):
        b64 = base64.b64encode(encode(cv2.resize(load_image(f"skimage:{name}"), (80, 60)), "jpg")).decode()
        rows.append(f"{i}\tWhat is shown?\tx\ty\tA\t{b64}")
    rows.append("3\tAnd here?\tx\ty\tB\t0")  # VLMEvalKit's shared image: the image of row 0
    rows.append("4\tBroken?\tx\ty\tA\tnot-an-image")
    p = tmp_path / "Bench.tsv"
    p.write_text("\n".join(rows) + "\n")
    return p


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_tsv_manifest_rebuilds_byte_for_byte_and_catches_tampering(tmp_path):
    src = _tsv(tmp_path)
    full = cli("corrupt-eval", src, "--out", tmp_path / "full", "--seed", 3)
    assert full.returncode == 3  # row 4's image is unreadable, kept clean
    man = cli("corrupt-eval", src, "--out", tmp_path / "man", "--seed", 3, "--manifest-only")
    assert man.returncode == 3
    manifest = tmp_path / "man" / "Bench.manifest.jsonl"
    assert sorted(p.name for p in (tmp_path / "man").iterdir()) == ["Bench.manifest.jsonl"]
    assert manifest.stat().st_size < sum(len(b) for b in _files(tmp_path / "full").values()) / 3
    lines = [json.loads(x) for x in manifest.read_text().splitlines()]
    assert lines[0]["robustgen_manifest"] == 1 and lines[0]["level_names"] == [25, 50, 100]
    assert len(lines) == 1 + 5 * 3 and {x["id"] for x in lines[1:]} == {"0", "1", "2", "3", "4"}

    res = cli("rebuild", manifest, "--source", src, "--out", tmp_path / "rebuilt")
    assert res.returncode == 0, res.stderr
    assert _files(tmp_path / "rebuilt") == _files(tmp_path / "full")

    tampered = tmp_path / "tampered.jsonl"
    tampered_lines = [json.dumps(x) for x in lines]
    entry = json.loads(tampered_lines[4])  # row 1 at some level
    entry["sha256"] = "0" * 64
    tampered_lines[4] = json.dumps(entry)
    tampered.write_text("\n".join(tampered_lines) + "\n")
    res = cli("rebuild", tampered, "--source", src, "--out", tmp_path / "again")
    assert res.returncode == 3 and "1 row(s) differ" in res.stderr and f": {entry['id']}" in res.stderr


def test_folder_manifest_rebuilds_and_names_rows_missing_on_either_side(tmp_path):
    src = tmp_path / "imgs"
    write_image(src / "a.png", cv2.resize(load_image("skimage:coffee"), (64, 48)))
    write_image(src / "sub" / "b.jpg", cv2.resize(load_image("skimage:rocket"), (64, 48)))
    assert cli("corrupt-eval", src, "--out", tmp_path / "full", "--levels", "0.5,1.0").returncode == 0
    assert cli("corrupt-eval", src, "--out", tmp_path / "man", "--levels", "0.5,1.0", "--manifest-only").returncode == 0
    manifest = tmp_path / "man" / "imgs.manifest.jsonl"
    res = cli("rebuild", manifest, "--source", src, "--out", tmp_path / "rebuilt")
    assert res.returncode == 0, res.stderr
    assert _files(tmp_path / "rebuilt") == _files(tmp_path / "full")

    changed = tmp_path / "changed"
    shutil.copytree(src, changed)
    (changed / "sub" / "b.jpg").unlink()
    write_image(changed / "c.png", cv2.resize(load_image("skimage:chelsea"), (64, 48)))
    res = cli("rebuild", manifest, "--source", changed, "--out", tmp_path / "changed-out")
    assert res.returncode == 3 and "2 row(s) differ" in res.stderr
    assert "sub/b.jpg" in res.stderr and "c.png" in res.stderr


def test_rebuild_refuses_what_is_not_a_manifest(tmp_path):
    bad = tmp_path / "x.jsonl"
    bad.write_text('{"id": 1}\n')
    res = cli("rebuild", bad, "--source", tmp_path, "--out", tmp_path / "o")
    assert (
        res.returncode == 2 and "not a robustgen corrupt-eval manifest" in res.stderr and "Traceback" not in res.stderr
    )
