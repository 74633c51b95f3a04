"""What every sandboxctl command shares: the connection settings, one-line
failures with their exit code, JSON output, and following a stream of
events (`run` and `artifacts run`) to its end."""

from __future__ import annotations

import dataclasses
import json
import pathlib
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NoReturn, Protocol

import click

from sandbox_mesh import config
from sandbox_mesh.client import Client
from sandbox_mesh.display import EXIT_INTERRUPTED, EXIT_MESH, EXIT_USAGE, PhaseSpinner, summary_line, write_under
from sandbox_mesh.errors import MeshError
from sandbox_mesh.events import Accepted, Event, Execution, Finished, Output, StatusChanged, event_json
from sandbox_mesh.request import UsageError


def fail(message: str, code: int) -> NoReturn:
    click.echo(f"sandboxctl: {message}", err=True)
    sys.exit(code)


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, sort_keys=True))


json_option = click.option("--json", "as_json", is_flag=True, help="JSON on stdout, for scripts")


@dataclasses.dataclass
class Settings:
    """--url, --tenant and --key as given (None: not given)."""

    url: str | None
    tenant: str | None
    key: str | None

    def connection(self) -> config.Connection:
        try:
            return config.resolve(self.url, self.tenant, self.key)
        except config.ConfigError as exc:
            fail(str(exc), EXIT_USAGE)

    def client(self) -> Client:
        connection = self.connection()
        return Client(connection.url, connection.tenant, connection.key)


def guarded(action: Callable[[], int | None]) -> NoReturn:
    """Runs a command: our failures become one line and an exit code."""
    try:
        code = action()
    except MeshError as exc:
        fail(str(exc), EXIT_MESH)
    except UsageError as exc:
        fail(str(exc), EXIT_USAGE)
    except OSError as exc:
        fail(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "), EXIT_MESH)
    except KeyboardInterrupt:
        fail("interrupted", EXIT_INTERRUPTED)
    sys.exit(code or 0)


def read_stdin(source: str | None) -> bytes:
    if source is None:
        return b""
    if source == "-":
        return sys.stdin.buffer.read()
    return pathlib.Path(source).read_bytes()


def save_files(fetch: Callable[[str], Iterable[bytes]], paths: Iterable[str], folder: pathlib.Path) -> int:
    """Writes each stored file into `folder`; a path that would leave it is
    refused (DATA_LOSS, field path): a client trusts no server with its disk."""
    count = 0
    for path in paths:
        try:
            write_under(folder, path, fetch(path))
        except ValueError as exc:
            raise MeshError("DATA_LOSS", str(exc), "path") from None
        count += 1
    return count


class EventStream(Protocol):
    """An ExecutionStream or a RunStream."""

    execution_id: str | None

    def __iter__(self) -> Iterator[Event]: ...

    def cancel(self) -> bool: ...


def follow(stream: EventStream, as_json: bool) -> Execution | None:
    """Shows each event as it comes (output as written, the phase on a
    terminal's spinner, or one JSON object per event); the finished record.
    Ctrl-C cancels the execution, says so and exits 130."""
    stdout, stderr = sys.stdout.buffer, sys.stderr.buffer
    spinner = PhaseSpinner(sys.stderr, enabled=sys.stderr.isatty() and not as_json)
    spinner.start()
    finished: Execution | None = None
    try:
        for event in stream:
            if as_json:
                print_json(event_json(event))
            elif isinstance(event, Output):
                spinner.write(stdout if event.stream == "stdout" else stderr, event.data)
            elif isinstance(event, (Accepted, StatusChanged)):
                spinner.phase(event.status)
            if isinstance(event, Finished):
                finished = event.execution
    except KeyboardInterrupt:
        spinner.stop()
        cancel_interrupted(stream)
        sys.exit(EXIT_INTERRUPTED)
    finally:
        spinner.stop()
    return finished


def cancel_interrupted(stream: EventStream) -> None:
    """Ctrl-C: cancel the execution and say so."""
    try:
        stream.cancel()
    except MeshError as exc:
        click.echo(f"sandboxctl: cancelling {stream.execution_id}: {exc}", err=True)
        return
    name = stream.execution_id or "the request (not accepted yet)"
    click.echo(f"sandboxctl: cancelled {name}", err=True)


def finish(finished: Execution | None, folder: pathlib.Path | None, saved: int, as_json: bool) -> None:
    """The closing lines on stderr: where output files went, the summary."""
    if finished is None:
        raise MeshError("UNKNOWN", "the stream ended without a finished record")
    if as_json:
        return
    if folder is not None and saved:
        click.echo(f"output files: {folder}/ ({saved})", err=True)
    click.echo(summary_line(finished), err=True)
