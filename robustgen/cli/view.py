"""``robustgen view``: the local, read-only viewer of a dataset or an eval run."""

from __future__ import annotations

import contextlib
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from robustgen.cli.common import app, err, out, user_errors
from robustgen.errors import RobustgenError

LOCAL = ("127.0.0.1", "localhost", "::1")


@app.command("view", rich_help_panel="Use a dataset")
def view_cmd(
    path: Annotated[Path, typer.Argument(help="a dataset folder (robustgen synth) or an eval run (robustgen eval)")],
    port: Annotated[int, typer.Option(min=0, max=65535, help="the port to serve on (0: any free one)")] = 8765,
    eval_input: Annotated[
        str | None,
        typer.Option("--input", help="an eval run's input (what `robustgen eval` was given): its images are shown"),
    ] = None,
    host: Annotated[
        str,
        typer.Option(help="the address to serve on; other than 127.0.0.1 it is reachable by others on your network"),
    ] = "127.0.0.1",  # fmt: skip
) -> None:
    """Look at a dataset (records, each degradation step, chains, gate verdicts, failures), an eval run (accuracy
    per level, the items that flip) and any degrader (the recipe explorer) in your browser. Read-only; the first
    line printed is the URL; Ctrl-C ends it."""
    import uvicorn

    from robustgen.view.app import make_app

    _QuietServer = _server_class()  # noqa: N806

    with user_errors():
        if host not in LOCAL:
            err.print(f"[yellow]warning:[/yellow] serving on {host}: anyone who can reach it can see this data")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            raise RobustgenError(f"--host {host} --port {port}: {exc.strerror or exc}") from None
        sock.listen(128)  # from here a browser's connection waits in the backlog, never refused
        bound = sock.getsockname()[1]
        previous = signal.signal(signal.SIGTERM, _interrupt)
        hosts = ["127.0.0.1", "localhost", "[::1]", host, f"[{host}]"] if host not in ("0.0.0.0", "::") else ["*"]
        try:
            application = make_app(path, hosts=hosts, eval_input=eval_input)
        except RobustgenError:
            sock.close()
            raise
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM while the index is built: stopped as asked
            sock.close()
            out.print("view: stopped")
            return
        finally:
            signal.signal(signal.SIGTERM, previous)
        shown = f"[{host}]" if ":" in host else ("127.0.0.1" if host in ("0.0.0.0", "::") else host)
        print(f"http://{shown}:{bound}/", flush=True)  # the first line: scripts and tests read the URL here
        kind = application.state.kind
        what = f"{len(application.state.index)} records" if kind == "dataset" else "an eval run"
        err.print(f"view: {path} ({what}); Ctrl-C to stop")
    config = uvicorn.Config(application, log_level="warning", lifespan="off", access_log=False)
    _QuietServer(config).run(sockets=[sock])
    out.print("view: stopped")


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _server_class():
    import uvicorn

    class QuietServer(uvicorn.Server):
        """uvicorn raises the signal it stopped on again once shut down (exit 130 or -15); a viewer asked to stop
        has done what was asked: it exits 0 and says so."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            with super().capture_signals():
                try:
                    yield
                finally:
                    getattr(self, "_captured_signals", []).clear()

    return QuietServer
