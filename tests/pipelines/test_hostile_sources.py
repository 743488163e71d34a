"""Hostile and broken source files: each bad value fails its own row, never the file or the run, and every row
read is accounted for (a row or a failure). Fixed cases first, then hypothesis fuzzing of every reader."""

from __future__ import annotations

import base64
import json
import shutil
import string
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from robustgen.pipelines.sources import SourceError, read_source
from robustgen.schemas import Failure, SourceRow

GOOD = {"image": "a.jpg", "question": "What is shown?", "answer": "1"}


@pytest.fixture
def src(tmp_path, image_dir) -> Path:
    shutil.copy(image_dir / "coffee.jpg", tmp_path / "a.jpg")
    (tmp_path / "train2017").mkdir()
    shutil.copy(image_dir / "coffee.jpg", tmp_path / "train2017" / f"{7:012d}.jpg")
    return tmp_path


def _split(rows) -> tuple[list[SourceRow], list[Failure]]:
    rows = list(rows)
    assert all(isinstance(r, SourceRow | Failure) for r in rows)
    for f in rows:
        if isinstance(f, Failure):
            assert "\n" not in f.reason and f.reason
            f.model_dump_json().encode("utf-8")  # always writable
    return [r for r in rows if isinstance(r, SourceRow)], [r for r in rows if isinstance(r, Failure)]


def _aokvqa(qid: str, **over) -> dict:
    rec = {"question_id": qid, "image_id": 7, "question": "What?", "choices": ["a", "b"], "correct_choice_idx": 1}
    return {**rec, **over}


def test_aokvqa_infinity_and_1e400_fail_their_rows_only(src):
    p = src / "aokvqa_v1p0_train.json"
    body = [_aokvqa("ok"), _aokvqa("inf", image_id="__INF__"), _aokvqa("big", correct_choice_idx="__BIG__")]
    text = json.dumps(body).replace('"__INF__"', "Infinity").replace('"__BIG__"', "1e400")
    p.write_text(text)
    ok, bad = _split(read_source(str(p)))
    assert [r.id for r in ok] == ["ok"]
    assert {f.id for f in bad} == {"inf", "big"}
    assert any("image_id" in f.reason for f in bad) and any("correct_choice_idx" in f.reason for f in bad)


def test_a_record_nested_100000_deep_fails_alone_in_jsonl_and_json(src):
    deep = "[" * 100_000
    jl = src / "rows.jsonl"
    jl.write_text(json.dumps({"id": "a", **GOOD}) + "\n" + deep + "\n" + json.dumps({"id": "b", **GOOD}) + "\n")
    ok, bad = _split(read_source(str(jl)))
    assert [r.id for r in ok] == ["a", "b"] and len(bad) == 1 and "rows.jsonl:2" in bad[0].source

    rec = {
        "id": "x",
        "image": "a.jpg",
        "conversations": [{"from": "human", "value": "q?"}, {"from": "gpt", "value": "1"}],
    }
    lv = src / "llava.json"
    lv.write_text("[" + json.dumps(rec) + ", " + deep + "]" * 100_000 + ", " + json.dumps({**rec, "id": "y"}) + "]")
    ok, bad = _split(read_source(str(lv)))
    assert [r.id for r in ok] == ["x", "y"] and len(bad) == 1 and "nested too deeply" in bad[0].reason


def test_a_broken_element_of_a_json_list_fails_alone(src):
    rec = {
        "id": "x",
        "image": "a.jpg",
        "conversations": [{"from": "human", "value": "q?"}, {"from": "gpt", "value": "1"}],
    }
    lv = src / "llava.json"
    lv.write_text("[" + json.dumps(rec) + ', {"id": "broken", "image": tru}, ' + json.dumps({**rec, "id": "y"}) + "]")
    ok, bad = _split(read_source(str(lv)))
    assert [r.id for r in ok] == ["x", "y"] and len(bad) == 1 and bad[0].source == "llava.json[1]"


def test_a_csv_field_over_131072_chars_is_data_not_a_crash(src):
    p = src / "rows.csv"
    long_q = "why " * 40_000 + "?"
    p.write_text(f'id,image,question,answer\nbig,a.jpg,"{long_q}",1\nok,a.jpg,What?,1\n')
    ok, bad = _split(read_source(str(p)))
    assert [r.id for r in ok] == ["big", "ok"] and not bad
    assert len(ok[0].question) > 131_072


def test_a_csv_with_a_bom_keeps_its_id_column(src):
    p = src / "rows.csv"
    p.write_bytes("\ufeffid,image,question,answer\nfirst,a.jpg,What?,1\n".encode())
    ok, _ = _split(read_source(str(p)))
    assert [r.id for r in ok] == ["first"]


def test_latin1_bytes_fail_their_row_and_the_rest_is_read(src):
    p = src / "rows.csv"
    p.write_bytes(b"id,image,question,answer\nlatin,a.jpg,caf\xe9?,1\nok,a.jpg,What?,1\n")
    ok, bad = _split(read_source(str(p)))
    assert [r.id for r in ok] == ["ok"] and [f.id for f in bad] == ["latin"] and "UTF-8" in bad[0].reason


def test_vlmeval_rows_may_name_another_rows_image(src, image_dir):
    b64 = base64.b64encode((image_dir / "coffee.jpg").read_bytes()).decode()
    p = src / "bench.tsv"
    p.write_text(
        "index\tquestion\tA\tB\tanswer\timage\n"
        f"1\tWhat?\tx\ty\tA\t{b64}\n"
        "2\tAnd now?\tx\ty\tB\t1\n"  # VLMEvalKit: the image of row 1
        "3\tMissing?\tx\ty\tB\t99\n"
    )
    ok, bad = _split(read_source(str(p)))
    assert [r.id for r in ok] == ["bench-1", "bench-2"] and ok[0].image_bytes == ok[1].image_bytes
    assert [f.id for f in bad] == ["bench-3"] and "99" in bad[0].reason


def test_a_damaged_parquet_is_a_usage_error(src):
    p = src / "rows.parquet"
    p.write_bytes(b"PAR1" + b"\x00" * 64 + b"PAR1")
    with pytest.raises(SourceError, match="parquet"):
        list(read_source(str(p)))


def test_parquet_rows_with_hostile_values_fail_alone(src):
    p = src / "rows.parquet"
    table = pa.table(
        {
            "id": ["ok", "deep", "noq"],
            "image": ["a.jpg", "../../etc/passwd", "a.jpg"],
            "question": ["What?", "What?", None],
            "answer": ["1", "1", "1"],
        }
    )
    pq.write_table(table, p)
    ok, bad = _split(read_source(str(p)))
    assert [r.id for r in ok] == ["ok"] and {f.id for f in bad} == {"deep", "noq"}


# ---- fuzzing: whatever the bytes, every reader yields rows or failures, and never raises ----------------

_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)) | st.sampled_from("\ud800\x00\"',\t\n\\[{"),
    max_size=30,
)
_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)
_record = st.fixed_dictionaries(
    {},
    optional={
        "id": _value,
        "question_id": _value,
        "image": st.sampled_from(["a.jpg", "../a.jpg", "/etc/passwd", "skimage:data_dir", "skimage:coffee", ""])
        | _value,
        "image_id": _value,
        "question": _value,
        "answer": _value,
        "choices": _value,
        "correct_choice_idx": _value,
        "rationales": _value,
        "conversations": _value,
    },
)
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _expect_accounted(path: Path, n_records: int) -> None:
    ok, bad = _split(read_source(str(path)))
    assert len(ok) + len(bad) == n_records, "a row was lost or invented"
    _through_the_scan(path, ok, bad)


def _through_the_scan(path: Path, ok: list[SourceRow], bad: list[Failure]) -> None:
    """What a run does with the rows: the scan stores each in an input chunk, a worker reads the chunk back. Every
    row comes back as itself (or, were it not storable, as that row's read failure): none stops the run."""
    import tempfile

    from robustgen.pipelines.job import SynthConfig, job_spec
    from robustgen.pipelines.output import WORK_DIR, Output
    from robustgen.pipelines.scan import ChunkQueue, stream_inputs
    from robustgen.pipelines.stages import _rows

    if not ok and not bad:
        return
    with tempfile.TemporaryDirectory() as tmp:
        cfg = SynthConfig(out=tmp, source=str(path))
        out, queue = Output(tmp), ChunkQueue()
        out.mkdirs(WORK_DIR)
        total = stream_inputs(cfg, out, set(), set(), queue)
        back = [r for rel in queue.chunks for r in _rows(job_spec(cfg), rel)]
        read_failures = out.read_lines(f"{WORK_DIR}/failures/read.jsonl")
    assert total == len(ok) + len(bad)
    assert all(isinstance(r, SourceRow) for r in back), "a stored row did not read back"
    by_id: dict[str, SourceRow] = {}
    for r in ok:
        by_id.setdefault(r.id, r)  # a later row with the same id is a duplicate: the scan fails it
    for r in back:
        assert r == by_id[r.id]
    assert len(back) + len(read_failures) >= len(ok) + len(bad) - sum(1 for f in bad if "duplicate" in f.reason)


@FUZZ
@given(records=st.lists(_record, max_size=5))
def test_fuzzed_jsonl_lines_never_raise(src, records):
    p = src / "fuzz.jsonl"
    lines = [json.dumps(r, allow_nan=True) for r in records]
    p.write_bytes("\n".join(lines).encode("utf-8", "surrogatepass") + b"\n")
    _expect_accounted(p, len(lines))


@FUZZ
@given(records=st.lists(_record, max_size=5))
def test_fuzzed_llava_and_aokvqa_lists_never_raise(src, records):
    for name in ("fuzz_llava.json", "aokvqa_fuzz_train.json"):
        p = src / name
        p.write_bytes(json.dumps(records, allow_nan=True).encode("utf-8", "surrogatepass"))
        _expect_accounted(p, len(records))


@FUZZ
@given(data=st.binary(max_size=300))
def test_fuzzed_bytes_in_a_jsonl_never_raise(src, data):
    p = src / "bytes.jsonl"
    p.write_bytes(data)
    list(read_source(str(p)))  # any mix of rows and failures, never an exception


@FUZZ
@given(
    cells=st.lists(
        st.lists(st.text(alphabet=string.printable + "\u00e9\ufeff\x00", max_size=20), min_size=0, max_size=7),
        max_size=5,
    ),
    raw=st.binary(max_size=80),
)
def test_fuzzed_csv_and_tsv_never_raise(src, cells, raw):
    header = "id,image,question,answer,choices\n"
    p = src / "fuzz.csv"
    p.write_bytes(header.encode() + "\n".join(",".join(c) for c in cells).encode("utf-8", "surrogatepass") + raw)
    _through_the_scan(p, *_split(read_source(str(p))))
    t = src / "fuzz.tsv"
    t.write_bytes(b"index\tquestion\tA\tB\tanswer\timage\n" + "\n".join("\t".join(c) for c in cells).encode() + raw)
    _through_the_scan(t, *_split(read_source(str(t))))


@FUZZ
@given(text=st.text(alphabet=st.sampled_from("ab \u2028\u2029\x85\x1c\x1d\x1e\x0b\x0c\r\u00e9"), max_size=12))
def test_line_separators_inside_a_value_stay_inside_its_row(src, text):
    """JSON leaves U+2028, U+0085, \\x1c and the like unescaped inside strings: a chunk line holding one must not be
    cut in two (it stopped the whole run with a ValidationError)."""
    p = src / "seps.jsonl"
    rows = [{"id": f"r{i}", "image": "a.jpg", "question": f"q{i} {text}?", "answer": f"{text}x"} for i in range(3)]
    p.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    ok, bad = _split(read_source(str(p)))
    _through_the_scan(p, ok, bad)
