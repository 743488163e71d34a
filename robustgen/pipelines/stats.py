"""``robustgen stats``: what a dataset holds, as a table, PNG plots and one self-contained HTML page."""

from __future__ import annotations

import base64
import html
import io
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from robustgen.annotate.gate import CODES, gate_chain
from robustgen.annotate.validate import word_count
from robustgen.errors import ImageError
from robustgen.images import data_url, read_image
from robustgen.pipelines.dataset import Dataset, gate_of
from robustgen.schemas import DatasetRecord, Stage
from robustgen.schemas.paths import regular_file_under
from robustgen.schemas.teacher import JudgeVerdict


def compute(ds: Dataset, gallery: int = 12) -> dict[str, Any]:
    """Counts, distributions and re-checked gate findings over every record, streamed in id order (memory holds
    the tallies and the first ``gallery`` records, not the dataset)."""
    by_name: Counter[str] = Counter()
    by_stage: Counter[str] = Counter()
    stage_names: dict[str, Counter[str]] = {s.value: Counter() for s in Stage}
    seen: dict[str, list[tuple[float, float | None]]] = {}  # per degrader: each step's measured effect
    dropped: Counter[str] = Counter()
    severities, totals, lengths = [], [], []
    gate = gate_of(ds)
    gate_fails: Counter[str] = Counter()
    first: list[DatasetRecord] = []
    verdicts: list[JudgeVerdict] = []
    n = images = multi = 0
    for r in ds.iter_records():
        n += 1
        images += len(r.images)
        multi += len(r.images) > 1
        if len(first) < gallery:
            first.append(r)
        dropped.update(r.dropped)
        if r.judge is not None:
            verdicts.append(r.judge)
        for degs in (r.degradations, *(x.degradations for x in r.extra_images)):  # every image written
            for d in degs:
                by_name[d.name] += 1
                by_stage[d.stage.value] += 1
                stage_names[d.stage.value][d.name] += 1
                if d.visibility is not None:
                    seen.setdefault(d.name, []).append((d.visibility.ssim_drop, d.visibility.delta_e))
                severities.append(d.shown)
        totals.append(sum(d.shown for d in r.degradations))  # beside the chain's length: the first image
        lengths.append(word_count(r.chain.reasoning))
        gate_fails.update({f.code for f in gate_chain(r.chain, r.degradations, r.question, r.choices, gate)})
    reasons: Counter[str] = Counter()
    damaged: list[str] = []
    for where, f, err in ds.failure_lines():
        if f is None:
            damaged.append(f"{where}: {err}")  # named, never counted as nothing
            continue
        reasons[f"{str(f.get('stage', '?'))[:20]}: {str(f.get('reason', ''))[:70]}"] += 1
    return {
        "n": n,
        "gallery": first,
        "images": images,
        "multi_image": multi,
        "by_name": by_name,
        "by_stage": by_stage,
        "stage_names": stage_names,
        "visibility": _visibility(seen, _floor(ds)),
        "dropped": dropped,
        "damaged": damaged,
        "severities": severities,
        "totals": totals,
        "lengths": lengths,
        "reasons": reasons,
        "gate_fails": gate_fails,
        "judge": _judge_summary(verdicts),
        "failed": sum(reasons.values()),
    }


def _floor(ds: Dataset):
    from robustgen.pipelines.dataset import _recipe_part
    from robustgen.schemas.recipe import VisibilityFloor

    return _recipe_part(ds, "visibility", VisibilityFloor)


def _visibility(seen: dict[str, list[tuple[float, float | None]]], floor) -> dict[str, Any] | None:
    """Per degrader: steps measured, median and least 1 - SSIM, and the share of steps near the floor (under 1.5x
    it, by SSIM drop or colour difference); None when no record carries measurements (a floor turned off)."""
    if not seen:
        return None

    def near(drop: float, de: float | None) -> bool:
        if drop >= floor.min_ssim_drop:
            return drop < 1.5 * floor.min_ssim_drop
        return de is not None and de < 1.5 * floor.min_delta_e

    rows = {
        name: {
            "steps": len(v),
            "median_ssim_drop": round(float(np.median([d for d, _ in v])), 4),
            "min_ssim_drop": round(min(d for d, _ in v), 4),
            "near_floor": round(sum(near(d, e) for d, e in v) / len(v), 3),
        }
        for name, v in sorted(seen.items())
    }
    steps = sum(len(v) for v in seen.values())
    close = sum(near(d, e) for v in seen.values() for d, e in v)
    return {"floor": floor.model_dump(), "steps": steps, "near_floor": round(close / steps, 3), "degraders": rows}


def _judge_summary(verdicts: list[JudgeVerdict]) -> dict[str, Any] | None:
    """Judged records, their mean score and what judging cost (None when the dataset was not judged)."""
    if not verdicts:
        return None
    return {
        "judged": len(verdicts),
        "mean_score": round(float(np.mean([v.score for v in verdicts])), 3),
        "reasked": sum(v.attempts > 1 for v in verdicts),
        "cost_usd": round(sum(v.usage.cost_usd for v in verdicts), 6),
        "tokens": sum(v.usage.total_tokens for v in verdicts),
    }


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def plots(st: dict[str, Any]) -> dict[str, bytes]:
    import matplotlib

    matplotlib.use("Agg")
    with matplotlib.rc_context({"text.parse_math": False}):  # names from records are text, never TeX
        return _plots(st)


def _plots(st: dict[str, Any]) -> dict[str, bytes]:
    import matplotlib.pyplot as plt

    out = {}
    fig, ax = plt.subplots(figsize=(6, 3))
    stages = [s.value for s in Stage]
    ax.bar(stages, [st["by_stage"][s] for s in stages], color="#4c78a8")
    ax.set_title("degradations per stage")
    ax.set_ylabel("count")
    out["stages.png"] = _png(fig)
    plt.close(fig)

    names = [n for n, _ in st["by_name"].most_common()]
    fig, ax = plt.subplots(figsize=(7, max(3, 0.22 * len(names))))
    ax.barh(names[::-1], [st["by_name"][n] for n in names[::-1]], color="#72b7b2")
    ax.set_title("degradations per degrader")
    ax.set_xlabel("count")
    out["degraders.png"] = _png(fig)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 3))
    ax.hist(st["severities"], bins=20, range=(0, 1), color="#f58518")
    ax.set_title("severity histogram")
    ax.set_xlabel("severity")
    ax.set_ylabel("count")
    out["severity.png"] = _png(fig)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.scatter(st["totals"], st["lengths"], s=14, alpha=0.7, color="#54a24b")
    if len(set(st["totals"])) > 1:
        k, b = np.polyfit(st["totals"], st["lengths"], 1)
        xs = np.linspace(min(st["totals"]), max(st["totals"]), 20)
        ax.plot(xs, k * xs + b, color="#333333", lw=1, label=f"fit: {k:.1f} words per unit severity")
        ax.legend()
    ax.set_title("reasoning length vs total severity")
    ax.set_xlabel("total severity of the sample")
    ax.set_ylabel("reasoning words")
    out["length_vs_severity.png"] = _png(fig)
    plt.close(fig)
    return out


def _thumb(ds: Dataset, rel: str, side: int = 256) -> str:
    """A data URL of a small JPEG of a record's image; empty when it cannot be read (``validate`` says why)."""
    try:
        return data_url(read_image(regular_file_under(ds.root, rel)), side, quality=85)[0]
    except (ValueError, ImageError):
        return ""


def _clean_thumb(ds: Dataset, rec: DatasetRecord, side: int = 256) -> str:
    """The clean image of a record as a thumbnail, when the dataset can show it (kept in ``clean/``, a sample, or
    inside its source folders); empty otherwise."""
    from robustgen.images import load_image

    try:
        return data_url(load_image(ds.clean_source(rec)), side, quality=85)[0]
    except (ValueError, ImageError):
        return ""


def html_page(ds: Dataset, st: dict[str, Any], images: dict[str, bytes]) -> str:
    e = html.escape
    m = {k: e(str(v)) for k, v in ds.counts().items()}
    teacher = ds.manifest.get("teacher")
    kind = teacher.get("kind") if isinstance(teacher, dict) else None
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>robustgen dataset</title><style>"
        "body{font-family:system-ui,sans-serif;margin:24px;max-width:1100px;color:#222}"
        "img.plot{max-width:100%;margin:8px 0}.card{display:flex;gap:16px;border-top:1px solid #ddd;padding:12px 0}"
        ".card img{width:256px;height:auto;flex:none}.tag{font-family:monospace;font-size:13px;white-space:pre-wrap}"
        "td,th{padding:2px 10px;text-align:left}</style></head><body>",
        f"<h1>robustgen dataset: {e(str(ds.root.name))}</h1>",
        f"<p>{m.get('written', 0)} written ({st['images']} images, {st['multi_image']} records with several), "
        f"{m.get('failed', 0)} failed of {m.get('total', 0)}; seed "
        f"{e(str(ds.manifest.get('seed')))}; teacher {e(str(kind))}</p>",
    ]
    for name, data in images.items():
        parts.append(
            f"<img class='plot' alt='{e(name)}' src='data:image/png;base64,{base64.b64encode(data).decode()}'>"
        )
    if st["n"]:
        n = st["n"]
        parts.append("<h2>chain quality (re-checked)</h2><table><tr><th>check</th><th>failing</th></tr>")
        parts += [f"<tr><td>{e(c)}</td><td>{st['gate_fails'][c]} of {n}</td></tr>" for c in CODES]
        parts.append("</table>")
    if st["judge"]:
        j = st["judge"]
        parts.append(
            f"<h2>judge</h2><p>{j['judged']} judged, mean score {j['mean_score']}, {j['reasked']} re-asked after a "
            f"low score; {j['tokens']} tokens, ${j['cost_usd']}</p>"
        )
    if st["reasons"]:
        parts.append("<h2>failure reasons</h2><table><tr><th>count</th><th>reason</th></tr>")
        parts += [f"<tr><td>{n}</td><td>{e(r)}</td></tr>" for r, n in st["reasons"].most_common()]
        parts.append("</table>")
    if st["visibility"]:
        v = st["visibility"]
        parts.append(
            f"<h2>visibility</h2><p>each step's effect on the image it was applied to: {v['steps']} steps, "
            f"{100 * v['near_floor']:.1f}% within 1.5x of the floor (1 - SSIM {v['floor']['min_ssim_drop']}, "
            f"or CIEDE2000 {v['floor']['min_delta_e']})</p><table><tr><th>degrader</th><th>steps</th>"
            "<th>median 1 - SSIM</th><th>least</th><th>near the floor</th></tr>"
        )
        parts += [
            f"<tr><td>{e(n)}</td><td>{r['steps']}</td><td>{r['median_ssim_drop']}</td><td>{r['min_ssim_drop']}</td>"
            f"<td>{100 * r['near_floor']:.0f}%</td></tr>"
            for n, r in v["degraders"].items()
        ]
        parts.append("</table>")
    if st["damaged"]:
        parts.append("<h2>damaged failure lines</h2><ul>")
        parts += [f"<li>{e(d)}</li>" for d in st["damaged"]]
        parts.append("</ul>")
    parts.append("<h2>samples</h2><p>clean image (where the dataset can show it), then each degraded one</p>")
    for r in st["gallery"]:  # compute() kept the first records for it
        clean = _clean_thumb(ds, r)
        shown = [(f"{e(r.id)} clean", clean, "clean")] if clean else []
        shown += [(f"{e(r.id)} image {k}", _thumb(ds, rel), "degraded") for k, rel in enumerate(r.images, 1)]
        parts.append(
            "<div class='card'>"
            + "".join(f"<img alt='{alt}' data-role='{role}' src='{src}'>" for alt, src, role in shown)
            + f"<div><b>{e(r.id)}</b>: {e(r.question)}<div class='tag'>{e(r.response)}</div></div></div>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)


def write_stats(root: str | Path, out: str | Path | None = None, gallery: int = 12) -> tuple[dict[str, Any], Path]:
    ds = Dataset.open(root)
    out = Path(out) if out else ds.root / "stats"
    out.mkdir(parents=True, exist_ok=True)
    st = compute(ds, gallery)
    images = plots(st)
    for name, data in images.items():
        (out / name).write_bytes(data)
    page = out / "index.html"
    page.write_text(html_page(ds, st, images), encoding="utf-8")
    return st, page
