"""Errors a user can cause and fix; the CLI prints them as one line."""

import difflib
from collections.abc import Iterable


class RobustgenError(Exception):
    """Base class for user-facing errors (bad input, bad recipe, unknown names)."""


class UnknownDegraderError(RobustgenError, KeyError):
    """A degrader name that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class RecipeError(RobustgenError, ValueError):
    """A recipe file or object that does not validate."""


class ImageError(RobustgenError, ValueError):
    """An image that cannot be read or converted to uint8 RGB."""


class IncompleteRun(RuntimeError):
    """A run that ended with rows neither written nor failed (a worker stopped holding them): not the user's
    doing; a re-run resumes them."""


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message (its type name when it has none), cut to ``limit`` characters:
    how every error becomes one line for a user."""
    lines = str(exc).strip().splitlines()
    return (lines[0].strip() if lines else type(exc).__name__)[:limit]


def stops_the_run(exc: BaseException) -> bool:
    """Whether an exception raised while one row was processed must end the run rather than fail that row: a real
    interrupt (Ctrl-C), Ray stopping its worker (its SIGTERM handler raises ``SystemExit`` carrying
    ``ray_terminate_msg``), a coroutine being closed (``GeneratorExit``), or anything raised while the task running
    the row is being cancelled (the run is shutting it down). A plugin's own ``sys.exit``, a ``CancelledError`` it
    raises itself: that row's failure."""
    if isinstance(exc, KeyboardInterrupt | GeneratorExit) or getattr(exc, "ray_terminate_msg", None) is not None:
        return True
    import asyncio

    try:
        task = asyncio.current_task()
    except RuntimeError:  # no running loop: nobody is cancelling us
        return False
    return task is not None and task.cancelling() > 0


def row_reason(exc: BaseException) -> str:
    """One line for a row's failure, whatever was raised (the type name first, for an unexpected exception)."""
    if isinstance(exc, RobustgenError):
        return first_line(exc)
    return f"{type(exc).__name__}: {first_line(exc)}" if str(exc).strip() else type(exc).__name__


def did_you_mean(value: str, known: Iterable[str], aliases: dict[str, str] | None = None) -> str:
    """'; did you mean 'x'?' for the closest of ``known`` (or of ``aliases``, other words for them: a degrader's
    label, a preset's name written with underscores), or '' when none is close."""
    known = list(known)
    norm = value.strip().lower().replace("_", "-").replace(" ", "-")
    table = {k.lower().replace("_", "-"): k for k in known} | {
        a.lower().replace("_", "-").replace(" ", "-"): k for a, k in (aliases or {}).items()
    }
    if norm in table and table[norm] != value:
        return f"; did you mean {table[norm]!r}?"
    close = difflib.get_close_matches(norm, list(table), n=3, cutoff=0.6)
    picks = list(dict.fromkeys(table[c] for c in close))
    return f"; did you mean {' or '.join(repr(c) for c in picks)}?" if picks else ""


def choice_error(
    option: str, value: str, known: Iterable[str], aliases: dict[str, str] | None = None
) -> RobustgenError:
    """``option 'value': expected one of a, b, c; did you mean 'b'?`` as an error."""
    known = list(known)
    return RobustgenError(
        f"{option} {value!r}: expected one of {', '.join(known)}{did_you_mean(value, known, aliases)}"
    )
