"""``robustgen view``: a local, read-only web viewer of a dataset folder or an eval run folder (Starlette and
Jinja2 templates, no front-end build). Every page is a GET; every value from a record or a report goes through
the templates' escaping; every image comes from a file a record names (read through the one path rule) or is
rendered from a record; nothing is fetched from the network (the pages' Content-Security-Policy says so too)."""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from robustgen.errors import RobustgenError
from robustgen.images import SAMPLE_IMAGES, load_image
from robustgen.view.index import PAGE, Filters, RecordIndex, number
from robustgen.view.pictures import Bounded, file_bytes, png, thumbnail

CSP = (
    "default-src 'none'; img-src 'self'; style-src 'self'; script-src 'self'; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
EXPLORE_SIDE = 512  # the explorer degrades the sample photo at this longer side (a slider re-renders quickly)

_env = Environment(loader=PackageLoader("robustgen.view", "templates"), autoescape=select_autoescape(default=True))
_env.filters["pct"] = lambda x: "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"


def page(template: str, status: int = 200, **values: Any) -> HTMLResponse:
    # a lone surrogate in a file (JSON allows "\ud800") shows as a replacement character, never a failed page
    html = _env.get_template(template).render(**values).encode("utf-8", "replace")
    return HTMLResponse(html, status_code=status, headers=_headers())


def text(message: str, status: int) -> Response:
    return Response(message.encode("utf-8", "replace"), status_code=status, media_type="text/plain",
                    headers=_headers())  # fmt: skip


def _headers() -> dict[str, str]:
    return {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def image(data: bytes, media: str) -> Response:
    return Response(data, media_type=media, headers={**_headers(), "Cache-Control": "private, max-age=3600"})


def not_found(what: str) -> HTMLResponse:
    return page("error.html", status=404, message=what)


class _Renders:
    """Images rendered from records, kept in memory within bounds: encoded ones (64 MB) and the arrays they are made
    from (clean images and each step's image, 256 MB), so step k of a record starts from step k - 1."""

    def __init__(self) -> None:
        self.bytes = Bounded(64 << 20)
        self.arrays = Bounded(256 << 20)

    def clean(self, key: str, make) -> np.ndarray:
        return self.arrays.get(f"clean:{key}", make)

    def step(self, key: str, records: list, k: int, clean) -> np.ndarray:
        """The image after ``records[0..k]``, from the nearest earlier step kept (else from ``clean()``)."""
        from robustgen.degrade.apply import render

        start, img = 0, None
        for j in range(k, -1, -1):
            img = self.arrays.peek(f"step:{key}:{j}")
            if img is not None:
                start = j + 1
                break
        img = clean() if img is None else img
        for j in range(start, k + 1):
            img = render(img, records[j])
            self.arrays.put(f"step:{key}:{j}", img)
        return img


def _float(value: str | None, name: str) -> float | None:
    if value in (None, ""):
        return None
    try:
        x = float(value)
    except ValueError:
        raise ValueError(f"{name}: not a number ({value!r})") from None
    if not math.isfinite(x):
        raise ValueError(f"{name}: not a finite number")
    return x


def _page_number(request: Request) -> int:
    try:
        return max(1, int(request.query_params.get("page", "1")))
    except ValueError:
        return 1


# ---- the recipe explorer (every folder kind has it) -----------------------------------------------------------


def _explore_args(request: Request) -> tuple[str, float, str, int]:
    from robustgen.degrade import registry

    q = request.query_params
    name = q.get("degrader") or "motion_blur"
    registry.get(name)  # an unknown name: RobustgenError with close matches
    severity = _float(q.get("severity"), "severity")
    severity = 0.5 if severity is None else min(1.0, max(0.01, severity))
    ref = q.get("image") or "skimage:astronaut"
    if not ref.startswith("skimage:") or ref.removeprefix("skimage:") not in SAMPLE_IMAGES:
        raise ValueError(f"image: one of {', '.join('skimage:' + n for n in SAMPLE_IMAGES)}")
    try:
        seed = max(0, int(q.get("seed") or 0))
    except ValueError:
        seed = 0
    return registry.get(name).name, severity, ref, seed


def _explored_image(renders: _Renders, name: str, severity: float, ref: str, seed: int) -> np.ndarray:
    """``degrade_image`` of the sample photo at ``EXPLORE_SIDE``: its record applied to it."""
    import cv2

    from robustgen.degrade.apply import render, single_record

    def small() -> np.ndarray:
        img = load_image(ref)
        h, w = img.shape[:2]
        k = EXPLORE_SIDE / max(h, w)
        return cv2.resize(img, (round(w * k), round(h * k)), interpolation=cv2.INTER_AREA) if k < 1 else img

    return render(renders.clean(f"explore:{ref}", small), single_record(name, severity, seed))


def _explored_record(name: str, severity: float, seed: int) -> str:
    """The applied record as JSON text (the page shows it as written: a noise seed is a 64-bit integer, which
    JavaScript's numbers would round); it depends on no pixel, so nothing is rendered for it."""
    from robustgen.degrade.apply import single_record

    return json.dumps(single_record(name, severity, seed).model_dump(mode="json"), indent=2)


async def explore(request: Request) -> Response:
    from robustgen.degrade import registry

    try:
        name, severity, ref, seed = _explore_args(request)
    except (RobustgenError, ValueError) as exc:
        return page("error.html", status=400, message=str(exc))
    return page(
        "explore.html",
        kind=request.app.state.kind,
        degraders=[d.name for d in registry.degraders()],
        images=[f"skimage:{n}" for n in SAMPLE_IMAGES],
        name=name,
        severity=severity,
        ref=ref,
        seed=seed,
        record=_explored_record(name, severity, seed),
    )


async def explore_image(request: Request) -> Response:
    try:
        args = _explore_args(request)
    except (RobustgenError, ValueError) as exc:
        return text(str(exc), 400)
    renders: _Renders = request.app.state.renders
    key = "explore-img:" + json.dumps(args)
    return image(renders.bytes.get(key, lambda: png(_explored_image(renders, *args))), "image/png")


async def explore_record(request: Request) -> Response:
    try:
        args = _explore_args(request)
    except (RobustgenError, ValueError) as exc:
        return JSONResponse({"error": str(exc)}, status_code=400, headers=_headers())
    name, severity, _, seed = args
    return Response(_explored_record(name, severity, seed), media_type="application/json", headers=_headers())


# ---- a dataset folder -------------------------------------------------------------------------------------------


def _filters(request: Request) -> Filters:
    q = request.query_params
    return Filters(
        degrader=q.get("degrader", ""),
        stage=q.get("stage", ""),
        min_severity=_float(q.get("min_severity"), "min_severity"),
        max_severity=_float(q.get("max_severity"), "max_severity"),
        gate=q.get("gate", ""),
        q=q.get("q", "")[:200],
    )


async def grid(request: Request) -> Response:
    index: RecordIndex = request.app.state.index
    try:
        f = _filters(request)
    except ValueError as exc:
        return page("error.html", status=400, message=str(exc))
    number = _page_number(request)
    records, total, more = index.page(f, number)
    query = f.query()
    return page(
        "grid.html",
        kind="dataset",
        root=str(request.app.state.root),
        index=index,
        filters=f,
        records=records,
        total=total,
        more=more,
        number=number,
        per_page=PAGE,
        query=query,
        failures=request.app.state.failures,
    )


def _record_or_404(request: Request) -> tuple[dict[str, Any] | None, Response | None]:
    index: RecordIndex = request.app.state.index
    rid = request.path_params.get("rid") or request.query_params.get("id", "")
    rec = index.record(rid)
    if rec is None:
        return None, not_found(f"no record {rid!r} in this dataset")
    return rec, None


async def record_page(request: Request) -> Response:
    """A record, its images, steps, chain and verdicts; a line that does not read as a record shows as its JSON
    with the reason (nothing of it is rendered as a field)."""
    from pydantic import ValidationError

    from robustgen.pipelines.dataset import first_error
    from robustgen.schemas import DatasetRecord

    raw, missing = _record_or_404(request)
    if missing is not None:
        return missing
    try:
        rec = DatasetRecord.model_validate(raw)
    except (ValidationError, ValueError, OverflowError) as exc:
        reason = str(exc).splitlines()[0] if not isinstance(exc, ValidationError) else first_error(exc)
        return page("record.html", kind="dataset", rid=raw["id"], rec=None, problem=reason,
                    record=json.dumps(raw, indent=2, ensure_ascii=False))  # fmt: skip
    chain = rec.chain
    return page(
        "record.html",
        kind="dataset",
        rid=rec.id,
        rec=rec,
        problem="",
        steps=[
            {**d.model_dump(mode="json"), "severity_text": number(d.severity, 4), "shown_text": number(d.shown, 2)}
            for d in rec.degradations
        ],
        parts={
            "type": ", ".join(f"{label}({number(sev)})" for label, sev in chain.types),
            "influence": chain.influence,
            "reasoning": chain.reasoning,
            "conclusion": chain.conclusion,
            "answer": chain.answer,
        },
        record=json.dumps([d.model_dump(mode="json") for d in rec.degradations], indent=2, ensure_ascii=False),
        checks=dict(rec.chain_quality.checks) if rec.chain_quality else {},
    )


def _clean_of(request: Request, rec) -> np.ndarray:
    from robustgen.pipelines.dataset import Dataset

    ds: Dataset = request.app.state.index.dataset
    renders: _Renders = request.app.state.renders
    return renders.clean(f"record:{rec.id}", lambda: load_image(ds.clean_source(rec)))


async def record_image(request: Request) -> Response:
    """``/image?id=ID&role=ROLE``: the degraded image (``degraded``, ``extra-N``), ``thumb`` or ``clean``."""
    from robustgen.schemas import DatasetRecord

    raw, missing = _record_or_404(request)
    if missing is not None:
        return missing
    role = request.query_params.get("role", "degraded")
    root: Path = request.app.state.root
    renders: _Renders = request.app.state.renders
    try:
        rec = DatasetRecord.model_validate(raw)
        if role == "thumb":  # the file is read only when its thumbnail is not kept
            thumb = request.app.state.thumbs.get(rec.id, lambda: thumbnail(file_bytes(root, rec.image)[0], rec.image))
            return image(thumb, "image/jpeg")
        if role == "degraded":
            return image(*file_bytes(root, rec.image))
        if role.startswith("extra-") and role[6:].isdigit() and int(role[6:]) < len(rec.extra_images):
            return image(*file_bytes(root, rec.extra_images[int(role[6:])].image))
        if role == "clean":
            if rec.clean_image is not None:
                return image(*file_bytes(root, rec.clean_image))
            return image(renders.bytes.get(f"clean:{rec.id}", lambda: png(_clean_of(request, rec))), "image/png")
    except (RobustgenError, ValueError, OSError) as exc:
        return text(f"{raw['id']}: {str(exc).splitlines()[0]}", 404)
    return not_found(f"no image {role!r}")


async def step_image(request: Request) -> Response:
    """``/step?id=ID&k=K``: the clean image after degradation steps 0..k, replayed from the record."""
    from robustgen.schemas import DatasetRecord

    raw, missing = _record_or_404(request)
    if missing is not None:
        return missing
    try:
        k = int(request.query_params.get("k", ""))
        rec = DatasetRecord.model_validate(raw)
        if not 0 <= k < len(rec.degradations):
            return not_found(f"no step {k}")
        renders: _Renders = request.app.state.renders
        data = renders.bytes.get(
            f"step:{rec.id}:{k}",
            lambda: png(renders.step(rec.id, rec.degradations, k, lambda: _clean_of(request, rec))),
        )
    except (RobustgenError, ValueError, OSError) as exc:
        return text(f"{raw['id']}: {str(exc).splitlines()[0]}", 404)
    return image(data, "image/png")


async def failures_page(request: Request) -> Response:
    return page("failures.html", kind="dataset", failures=request.app.state.failures)


# ---- an eval run folder ------------------------------------------------------------------------------------------


async def eval_page(request: Request) -> Response:
    from robustgen.eval.report import build_report

    run: Path = request.app.state.root
    try:
        report = build_report(run)
    except RobustgenError as exc:  # a predictions file that is not one: said, in one line
        return page("error.html", status=422, message=str(exc))
    levels = list(report["levels"])
    return page(
        "eval.html",
        kind="eval",
        root=str(run),
        report=report,
        levels=levels,
        types=sorted(report["by_type"].items()),
        stages=sorted(report["by_stage"].items()),
    )


def _flips(run: Path, level: str) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """The items correct on the clean image and wrong at ``level`` (id order), and the clean predictions."""
    from robustgen.eval.report import CLEAN, load_predictions

    preds = load_predictions(run)
    clean = preds.get(CLEAN, {})
    at = preds.get(level, {})
    flips = [at[i] for i in sorted(at) if i in clean and clean[i]["correct"] and not at[i]["correct"]]
    return flips, clean


async def flips_page(request: Request) -> Response:
    from robustgen.eval.report import CLEAN, _order, load_predictions

    run: Path = request.app.state.root
    level = request.query_params.get("level", "")
    try:
        levels = [n for n in _order(list(load_predictions(run))) if n != CLEAN]
        if level not in levels:
            return page("error.html", status=404, message=f"level: one of {', '.join(levels) or '(none)'}")
        flips, clean = _flips(run, level)
    except RobustgenError as exc:
        return page("error.html", status=422, message=str(exc))
    state = request.app.state
    return page(
        "flips.html",
        kind="eval",
        level=level,
        levels=[CLEAN, *levels],
        flips=flips,
        clean=clean,
        images=state.eval_input is not None,
        read=state.eval_read,
    )


async def eval_image(request: Request) -> Response:
    """``/eval-image?level=LEVEL&id=ID``: an item's image at a level, replayed from its clean image (read from the run's
    input through the same rules as eval) and the degradations its prediction records."""
    from robustgen.degrade.apply import replay
    from robustgen.eval.report import CLEAN, load_predictions

    level, rid = request.query_params.get("level", ""), request.query_params.get("id", "")
    state = request.app.state
    try:
        preds = load_predictions(state.root)
    except RobustgenError as exc:
        return text(str(exc), 422)
    if level not in preds or rid not in preds[level] or state.eval_input is None:
        return not_found(f"no image of {rid!r} at {level!r}")
    renders: _Renders = state.renders

    def make() -> bytes:
        clean = renders.clean(f"eval:{rid}", lambda: state.eval_input.clean(rid))
        steps = [] if level == CLEAN else preds[level][rid].get("degradations") or []
        if not isinstance(steps, list):
            raise ValueError("its degradations are not a list")
        return png(replay(clean, steps))

    try:
        data = renders.bytes.get(f"eval:{level}:{rid}", make)
    except (RobustgenError, ValueError, TypeError, OSError) as exc:
        return text(f"{rid}: {str(exc).splitlines()[0]}", 404)
    return image(data, "image/png")


class EvalInput:
    """Where an eval run's items came from (``.work/input.json``, written by ``robustgen eval``): each item's clean
    image is read the way eval read it (the same source readers and trust rules), by id, the rows found once."""

    def __init__(self, run: Path, spec: dict[str, Any]) -> None:
        self.run = run
        self.spec = spec
        self._rows: dict[str, Any] | None = None
        self._lock = threading.Lock()

    @classmethod
    def of(cls, run: Path, named: str | None = None) -> tuple[EvalInput | None, str]:
        """The run's input as the user names it (``view --input``: checked against the run's own digest of it) or,
        when it names none, the built-in samples if the run was asked on them (the folder is data: a path it names
        is never read on its say). Also the path the run read (for the page that asks for ``--input``)."""
        from robustgen.eval.run import _digest

        try:
            spec = json.loads((run / ".work" / "input.json").read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            spec = None
        spec = spec if isinstance(spec, dict) and isinstance(spec.get("input"), str) else None
        read = spec["input"] if spec else ""
        fmt = spec.get("format") if spec and isinstance(spec.get("format"), str) else "auto"
        if named is not None:
            try:
                recorded = json.loads((run / ".work" / "run.json").read_text(encoding="utf-8")).get("input")
            except (OSError, ValueError, RecursionError, AttributeError):
                recorded = None
            if recorded is not None and _digest(named) != recorded and _digest(str(Path(named).resolve())) != recorded:
                raise RobustgenError(f"--input {named}: not the input this run was asked on (run.json says otherwise)")
            return cls(run, {"input": named, "format": fmt, "source_roots": []}), read
        if spec is None:
            return None, read
        return (cls(run, {"input": read, "format": fmt, "source_roots": []}) if read == "samples" else None), read

    def clean(self, rid: str) -> np.ndarray:
        from robustgen.eval.run import _row_id, eval_rows
        from robustgen.pipelines.process import load_row_image
        from robustgen.schemas import Failure

        with self._lock:
            if self._rows is None:
                rows = {}
                for row in eval_rows(self.spec["input"], self.spec["format"], self.spec["source_roots"]):
                    if not isinstance(row, Failure):
                        rows[_row_id(row, self.spec["input"])] = row
                self._rows = rows
        row = self._rows.get(rid)
        if row is None:
            raise ValueError("not among the run's input rows")
        return load_row_image(row)


# ---- the app -----------------------------------------------------------------------------------------------------


def kind_of(path: Path) -> str:
    """``dataset`` or ``eval`` for a folder the viewer can show; ``RobustgenError`` in one line otherwise."""
    if not path.is_dir():
        raise RobustgenError(f"{path}: no such folder")
    if (path / "manifest.json").is_file() and (path / "data").is_dir():
        return "dataset"
    if (path / "predictions").is_dir():
        return "eval"
    raise RobustgenError(
        f"{path}: neither a dataset (manifest.json and data/, from `robustgen synth`) nor an eval run (predictions/, "
        "from `robustgen eval`)"
    )


def make_app(path: str | Path, hosts: list[str] | None = None, eval_input: str | None = None) -> Starlette:
    """The viewer of the folder ``path`` (its index built here, before the first request); ``eval_input``: where an
    eval run's items are (its images are shown from there)."""
    from robustgen.pipelines.dataset import Dataset

    root = Path(path).resolve()
    kind = kind_of(root)
    if eval_input is not None and kind != "eval":
        raise RobustgenError(f"--input: only for an eval run; {path} is a dataset")
    common = [
        Route("/explore", explore),
        Route("/explore/image", explore_image),
        Route("/explore/record", explore_record),
        Mount("/static", StaticFiles(packages=[("robustgen.view", "static")]), name="static"),
    ]
    if kind == "dataset":
        routes = [
            Route("/", grid),
            Route("/record", record_page),  # ?id=ID (what the grid links to: any id survives a URL this way)
            Route("/record/{rid:path}", record_page),
            Route("/image", record_image),  # ?id=ID&role=degraded|thumb|clean|extra-N
            Route("/step", step_image),  # ?id=ID&k=K
            Route("/failures", failures_page),
        ]
    else:
        routes = [
            Route("/", eval_page),
            Route("/flips", flips_page),
            Route("/eval-image", eval_image),  # ?level=LEVEL&id=ID
        ]
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=hosts or ["127.0.0.1", "localhost"])]
    app = Starlette(routes=routes + common, middleware=middleware)
    app.state.root = root
    app.state.kind = kind
    app.state.renders = _Renders()
    app.state.thumbs = Bounded(32 << 20)
    if kind == "dataset":
        ds = Dataset.open(root)
        app.state.index = RecordIndex.build(ds)
        app.state.failures = [f for f in ds.failures() if isinstance(f, dict)]
    else:
        app.state.eval_input, app.state.eval_read = EvalInput.of(root, eval_input)
    return app
