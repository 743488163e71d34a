"""Every source format becomes the same kind of row; broken rows become failures, not crashes."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from robustgen.pipelines.sources import SourceError, read_source
from robustgen.schemas import Failure, SourceRow


def test_samples_have_questions_answers_and_rationales():
    rows = list(read_source("samples"))
    assert len(rows) >= 12 and len({r.id for r in rows}) == len(rows) and all(isinstance(r, SourceRow) for r in rows)
    assert all(r.image.startswith("skimage:") and r.question and r.answer and r.rationale for r in rows)
    assert any(r.choices for r in rows) and any(not r.choices for r in rows)


def test_jsonl_rows_resolve_under_the_root_and_bad_rows_fail_alone(bad_jsonl):
    rows = list(read_source(str(bad_jsonl)))
    good = [r for r in rows if isinstance(r, SourceRow)]
    bad = {r.id: r.reason for r in rows if isinstance(r, Failure)}
    assert all(r.stage == "read" for r in rows if isinstance(r, Failure))
    assert len(good) == 12 + 5  # zero/notimage/truncated/missing/bomb fail later, at decode time
    assert all(r.image.startswith(str(bad_jsonl.parent)) for r in good)
    assert "escapes its folder" in bad["escape"] and "escapes its folder" in bad["absolute"]
    assert "missing 'question'" in bad["noquestion"]
    assert any("malformed JSON line" in e for e in bad.values())


def test_csv_with_pipe_separated_choices(tmp_path, image_dir):
    p = tmp_path / "rows.csv"
    (tmp_path / "a.jpg").write_bytes((image_dir / "coffee.jpg").read_bytes())
    p.write_text("id,image,question,answer,choices\nc1,a.jpg,What drink?,1,tea|coffee|milk\n")
    (row,) = read_source(str(p))
    assert row.choices == ["tea", "coffee", "milk"] and row.answer == "1"


def test_llava_conversations(tmp_path, image_dir):
    (tmp_path / "a.jpg").write_bytes((image_dir / "coffee.jpg").read_bytes())
    data = [
        {
            "id": "l1",
            "image": "a.jpg",
            "conversations": [
                {"from": "human", "value": "<image>\nWhat is on the table?"},
                {"from": "gpt", "value": "A cup."},
            ],
        },
        {"id": "l2", "image": "a.jpg", "conversations": [{"from": "human", "value": "hi"}]},
    ]
    p = tmp_path / "llava.json"
    p.write_text(json.dumps(data))
    rows = list(read_source(str(p)))
    assert rows[0].question == "What is on the table?" and rows[0].answer == "A cup."
    assert isinstance(rows[1], Failure)


def test_aokvqa_renders_questions_as_robust_r1_does(tmp_path, image_dir):
    (tmp_path / "val2017").mkdir()
    (tmp_path / "val2017" / "000000000042.jpg").write_bytes((image_dir / "coffee.jpg").read_bytes())
    data = [
        {
            "question_id": "abc",
            "image_id": 42,
            "question": "What is in the cup?",
            "choices": ["tea", "coffee", "soup", "water"],
            "correct_choice_idx": 1,
            "rationales": ["It is dark brown.", "There is crema."],
        }
    ]
    p = tmp_path / "aokvqa_v1p0_val.json"
    p.write_text(json.dumps(data))
    (row,) = read_source(str(p), coco_root=str(tmp_path))
    assert row.question == "What is in the cup?\n0. tea\n1. coffee\n2. soup\n3. water"
    assert row.answer == "1" and row.choices[1] == "coffee"
    assert row.image.endswith("val2017/000000000042.jpg") and row.rationale.startswith("It is dark brown.")


def test_vlmeval_tsv_keeps_base64_and_maps_letters(vlmeval_tsv):
    rows = list(read_source(str(vlmeval_tsv)))
    assert [r.answer for r in rows] == ["0", "1", "2", "3"]
    assert rows[0].choices == ["astronaut", "coffee", "chelsea", "rocket"]
    assert rows[0].image_bytes[:2] == b"\xff\xd8" and rows[0].image is None


def test_parquet_with_image_bytes(tmp_path, image_dir):
    data = (image_dir / "rocket.jpg").read_bytes()
    table = pa.table(
        {"id": ["p1"], "image": [{"bytes": data, "path": None}], "question": ["What is it?"], "answer": ["a rocket"]}
    )
    p = tmp_path / "d.parquet"
    pq.write_table(table, p)
    (row,) = read_source(str(p))
    assert row.image_bytes == data and row.answer == "a rocket"


def test_folder_rows_are_open_ended(image_dir):
    rows = list(read_source(str(image_dir), question="What is shown?"))
    assert len(rows) == 4 and all(r.answer is None and r.question == "What is shown?" for r in rows)


def test_folder_symlinks_out_of_the_folder_and_fifos_are_failures(image_dir, tmp_path):
    import os

    src = tmp_path / "src"
    src.mkdir()
    (src / "ok.jpg").write_bytes((image_dir / "coffee.jpg").read_bytes())
    (tmp_path / "secret.jpg").write_bytes((image_dir / "rocket.jpg").read_bytes())
    (src / "link.jpg").symlink_to(tmp_path / "secret.jpg")
    os.mkfifo(src / "pipe.jpg")
    rows = {r.id: r for r in read_source(str(src), question="What is shown?")}
    assert isinstance(rows["ok"], SourceRow)
    assert isinstance(rows["link"], Failure) and "escapes its folder" in rows["link"].reason
    assert isinstance(rows["pipe"], Failure) and "not a regular file" in rows["pipe"].reason


def test_unusable_sources_are_usage_errors(tmp_path):
    with pytest.raises(SourceError, match="no such file"):
        read_source(str(tmp_path / "nope.jsonl"))
    (tmp_path / "x.weird").write_text("x")
    with pytest.raises(SourceError, match="pass --format"):
        read_source(str(tmp_path / "x.weird"))
    with pytest.raises(SourceError, match="expected one of"):
        read_source(str(tmp_path), fmt="xml")


def test_a_lone_surrogate_fails_its_row_only_and_the_failure_is_writable(tmp_path, image_dir):
    (tmp_path / "a.jpg").write_bytes((image_dir / "coffee.jpg").read_bytes())
    p = tmp_path / "rows.jsonl"
    p.write_text(
        '{"id": "ok", "image": "a.jpg", "question": "q?", "answer": "1"}\n'
        '{"id": "\\ud800", "image": "a.jpg", "question": "q?", "answer": "1"}\n'
        '{"id": "q", "image": "a.jpg", "question": "bad \\udfff text?", "answer": "1"}\n'
    )
    rows = list(read_source(str(p)))
    assert isinstance(rows[0], SourceRow)
    bad = [r for r in rows[1:] if isinstance(r, Failure)]
    assert len(bad) == 2 and bad[0].id == "\\ud800"
    for f in bad:
        f.model_dump_json().encode("utf-8")  # a failure line can always be written


def test_a_folder_file_name_that_is_not_utf8_fails_alone(image_dir, tmp_path):
    import os

    src = tmp_path / "src"
    src.mkdir()
    data = (image_dir / "coffee.jpg").read_bytes()
    (src / "ok.jpg").write_bytes(data)
    with open(os.path.join(os.fsencode(src), b"caf\xe9.jpg"), "wb") as f:
        f.write(data)
    rows = list(read_source(str(src), question="What is shown?"))
    assert [type(r) for r in rows].count(SourceRow) == 1
    (bad,) = [r for r in rows if isinstance(r, Failure)]
    assert bad.id == "caf\\udce9" and bad.model_dump_json().encode("utf-8")
