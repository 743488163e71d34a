"""What every command shares: the app, the two consoles, one-line errors and the error boundary."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Literal

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

import robustgen._lean  # noqa: F401  (first: no torch adapter, no update check in our processes)
from robustgen.errors import RobustgenError, first_line
from robustgen.schemas.redaction import redact
from robustgen.schemas.sample import printable

app = typer.Typer(
    help="Degradation-aware reasoning datasets for vision-language models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
out = Console(markup=False, highlight=False)  # plain output: paths and ids are never read as markup
err = Console(stderr=True, emoji=False)  # 'skimage:camera' stays text


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("robustgen")
        except PackageNotFoundError:  # run from a checkout, not installed
            import robustgen

            found = robustgen.__version__
        out.print(f"robustgen {found}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version and exit")
    ] = False,
) -> None:
    """Degradation-aware reasoning datasets for vision-language models."""


def complain(tag: str, color: str, text: object) -> None:
    """One line on stderr: a coloured tag, then the (escaped) message."""
    err.print(f"[{color}]{tag}:[/{color}] {escape(redact(str(text)))}", highlight=False, soft_wrap=True)


# ---- option types shared by the commands (one definition: the same words and checks everywhere) -----------------
DatasetArg = Annotated[Path, typer.Argument(help="a folder written by `robustgen synth`")]
OutDir = Annotated[Path, typer.Option("--out", help="output folder")]
RecipeOpt = Annotated[
    Path | None, typer.Option(help="recipe YAML/JSON, or a preset's name (robustgen recipes); default: built in")
]
SeedOpt = Annotated[int, typer.Option(min=0, help="run seed")]
LimitOpt = Annotated[int | None, typer.Option(min=1, help="only the first N rows")]
FormatOpt = Annotated[
    str,
    typer.Option(
        "--format",
        help="the source's format: auto (from the name), samples, folder, jsonl, csv, llava, aokvqa, vlmeval-tsv, "
        "parquet, or a plugin's (robustgen.sources)",
    ),
]
ProtocolOpt = Annotated[
    Literal["recipe", "robust-r1"], typer.Option(help="recipe (default) or robust-r1 (the paper's generator, seeded)")
]
LevelsOpt = Annotated[str, typer.Option(help="severities, e.g. 0.23,0.45,0.9 (named 25, 50, 100)")]

#: optional modules and the extra that installs them: a command missing one exits 2 saying what to install
EXTRA_OF = {
    "torch": "train",
    "transformers": "train",
    "trl": "train",
    "accelerate": "train",
    "datasets": "train",
    "huggingface_hub": "hub",
    "openpyxl": "xlsx",
}

EXIT_USAGE = 2
EXIT_SOME_FAILED = 3


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn user mistakes into one line on stderr and exit code 2."""
    try:
        yield
    except RobustgenError as exc:
        complain("error", "red", exc)
        raise typer.Exit(EXIT_USAGE) from None


def settings_error(exc: ValidationError, name: Callable[[tuple], str]) -> RobustgenError:
    """A config that does not validate, as one line: the setting (``name`` of its location), its value, why."""
    err = exc.errors()[0]
    return RobustgenError(f"{name(err['loc'])} {err.get('input')!r}: {err['msg']}")


def describe_os_error(exc: OSError) -> str:
    """'PATH: cause' for a filesystem error (read-only folder, a file where a folder should be, disk full)."""
    where = exc.filename if exc.filename is not None else ""
    cause = exc.strerror or str(exc)
    return f"{printable(str(where))}: {cause}" if where != "" else cause


def main() -> None:
    """The error boundary: no traceback reaches a user. Environment problems (a read-only or missing folder, a
    file where a folder should be) exit 2 naming the path; anything else exits 1 in one line, with the traceback
    only under ROBUSTGEN_DEBUG=1."""
    try:
        app()  # typer answers usage errors (exit 2) and --help itself
    except RobustgenError as exc:
        complain("error", "red", exc)
        sys.exit(EXIT_USAGE)
    except ModuleNotFoundError as exc:
        top = (exc.name or "").split(".")[0]
        if top not in EXTRA_OF:
            raise
        complain("error", "red", f"this command needs {top}: pip install 'robustgen[{EXTRA_OF[top]}]'")
        sys.exit(EXIT_USAGE)
    except OSError as exc:
        complain("error", "red", describe_os_error(exc))
        sys.exit(EXIT_USAGE)
    except Exception as exc:  # noqa: BLE001  (a bug of ours: one line, the traceback on request)
        if os.environ.get("ROBUSTGEN_DEBUG"):
            raise
        first = first_line(exc)
        complain(
            "error", "red", f"internal error: {type(exc).__name__}: {first} (ROBUSTGEN_DEBUG=1 shows the traceback)"
        )
        sys.exit(1)
