"""Errors a user can cause and fix; the CLI prints them as one line."""


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
