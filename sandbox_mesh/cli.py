"""sandboxctl: run code on the mesh and look at what ran.

    sandboxctl run hello.py
    sandboxctl run ./project --entry app.py --pip requests -- --verbose
    sandboxctl executions ls | show ID | cancel ID
    sandboxctl quota
    sandboxctl doctor

Exit codes: the program's own, else 124 (time limit), 125 (the mesh refused
or failed the request), 130 (cancelled, Ctrl-C), 2 (a usage mistake).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import sys
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import click

from sandbox.control.v1 import control_pb2 as pb
from sandbox_mesh import config, doctor
from sandbox_mesh.client import Client, ExecutionStream
from sandbox_mesh.display import (
    EXIT_INTERRUPTED,
    EXIT_MESH,
    EXIT_USAGE,
    PhaseSpinner,
    exit_code_for,
    human_bytes,
    output_path,
    summary_line,
)
from sandbox_mesh.errors import MeshError
from sandbox_mesh.events import Accepted, Event, Execution, Finished, Output, StatusChanged, event_json
from sandbox_mesh.request import UsageError, build_request, parse_env, stage


def fail(message: str, code: int) -> NoReturn:
    click.echo(f"sandboxctl: {message}", err=True)
    sys.exit(code)


@dataclasses.dataclass
class Settings:
    url: str | None
    tenant: str | None
    key: str | None

    def client(self) -> Client:
        try:
            connection = config.resolve(self.url, self.tenant, self.key)
        except config.ConfigError as exc:
            fail(str(exc), EXIT_USAGE)
        return Client(connection.url, connection.tenant, connection.key)


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, sort_keys=True))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--url", help="control's address [SANDBOX_URL, default 127.0.0.1:50061]")
@click.option("--tenant", help="the tenant to call as [SANDBOX_TENANT, default demo]")
@click.option("--key", help="the tenant's key [SANDBOX_KEY, default from CONTROL_TENANT_KEYS in .env]")
@click.pass_context
def main(ctx: click.Context, url: str | None, tenant: str | None, key: str | None) -> None:
    """Run code in the Sandbox mesh and look at what ran."""
    ctx.obj = Settings(url, tenant, key)


def guarded(action: Callable[[], int | None]) -> None:
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


# ---- run -----------------------------------------------------------------------


def read_stdin(source: str | None) -> bytes:
    if source is None:
        return b""
    if source == "-":
        return sys.stdin.buffer.read()
    return pathlib.Path(source).read_bytes()


def write_outputs(client: Client, execution: Execution, out: str | None) -> pathlib.Path | None:
    if not execution.output_files:
        return None
    folder = pathlib.Path(out) if out else pathlib.Path("outputs") / execution.execution_id
    for stored in execution.output_files:
        try:
            target = output_path(folder, stored.path)
        except ValueError as exc:
            raise MeshError("DATA_LOSS", str(exc), "path") from None
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as sink:
            for chunk in client.output_chunks(execution.execution_id, stored.path):
                sink.write(chunk)
    return folder


def follow(stream: ExecutionStream, spinner: PhaseSpinner, as_json: bool) -> Iterator[Event]:
    """Shows each event as it comes, yielding it on."""
    stdout, stderr = sys.stdout.buffer, sys.stderr.buffer
    for event in stream:
        if as_json:
            print_json(event_json(event))
        elif isinstance(event, Output):
            spinner.write(stdout if event.stream == "stdout" else stderr, event.data)
        elif isinstance(event, (Accepted, StatusChanged)):
            spinner.phase(event.status)
        yield event


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("target", metavar="FILE|DIR", type=click.Path(exists=True, path_type=pathlib.Path))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option("--entry", help="the file to run, inside DIR (default main.py or index.js)")
@click.option("--pip", "pip", multiple=True, metavar="PKG", help="a pip package to install, e.g. requests==2.32.3")
@click.option("--npm", "npm", multiple=True, metavar="PKG", help="an npm package to install, e.g. lodash@4")
@click.option("--timeout", type=float, help="time limit in seconds (default: the mesh's)")
@click.option("--memory", help="memory limit, e.g. 256m, 1g (default: the mesh's)")
@click.option("--stdin", "stdin_source", metavar="FILE|-", help="give the program this file (or our stdin)")
@click.option("--env", "env", multiple=True, metavar="K=V", help="an environment variable for the program")
@click.option("--runtime", type=click.Choice(["runc", "gvisor"]), help="the sandbox runtime (default: the mesh's)")
@click.option("--out", type=click.Path(file_okay=False), help="where output files go [./outputs/<execution id>/]")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per event on stdout")
@click.pass_obj
def run(settings: Settings, target: pathlib.Path, args: tuple[str, ...], **options: Any) -> None:
    """Run FILE (its extension gives the language) or DIR, streaming its output.

    Arguments after `--` go to the program."""
    guarded(lambda: run_program(settings, target, args, **options))


def run_program(
    settings: Settings,
    target: pathlib.Path,
    args: tuple[str, ...],
    *,
    entry: str | None,
    pip: tuple[str, ...],
    npm: tuple[str, ...],
    timeout: float | None,
    memory: str | None,
    stdin_source: str | None,
    env: tuple[str, ...],
    runtime: str | None,
    out: str | None,
    as_json: bool,
) -> int:
    request = build_request_for(target, args, entry, pip, npm, timeout, memory, stdin_source, env, runtime)
    with settings.client() as client:
        stream = client.execute_request(request)
        spinner = PhaseSpinner(sys.stderr, enabled=sys.stderr.isatty() and not as_json)
        spinner.start()
        finished: Execution | None = None
        try:
            for event in follow(stream, spinner, as_json):
                if isinstance(event, Finished):
                    finished = event.execution
        except KeyboardInterrupt:
            spinner.stop()
            return interrupted(stream)
        finally:
            spinner.stop()
        if finished is None:
            raise MeshError("UNKNOWN", "the stream ended without a finished record")
        folder = write_outputs(client, finished, out)
        if not as_json:
            if folder is not None:
                click.echo(f"output files: {folder}/ ({len(finished.output_files)})", err=True)
            click.echo(summary_line(finished), err=True)
        return exit_code_for(finished)


def build_request_for(
    target: pathlib.Path,
    args: tuple[str, ...],
    entry: str | None,
    pip: tuple[str, ...],
    npm: tuple[str, ...],
    timeout: float | None,
    memory: str | None,
    stdin_source: str | None,
    env: tuple[str, ...],
    runtime: str | None,
) -> pb.ExecuteRequest:
    """`sandboxctl run`'s options as a request; UsageError names the option."""
    files, entry_path = stage(target, entry)
    return build_request(
        files,
        entry=entry_path,
        args=args,
        pip=pip,
        npm=npm,
        timeout=timeout,
        memory=memory,
        env=parse_env(env),
        stdin=read_stdin(stdin_source),
        runtime=runtime or "",
    )


def interrupted(stream: ExecutionStream) -> int:
    """Ctrl-C: cancel the execution, say so, exit 130."""
    try:
        stream.cancel()
    except MeshError as exc:
        click.echo(f"sandboxctl: cancelling {stream.execution_id}: {exc}", err=True)
        return EXIT_INTERRUPTED
    name = stream.execution_id or "the request (not accepted yet)"
    click.echo(f"sandboxctl: cancelled {name}", err=True)
    return EXIT_INTERRUPTED


# ---- executions and quota ------------------------------------------------------


def execution_json(execution: Execution) -> dict[str, Any]:
    return dataclasses.asdict(execution)


@main.group()
def executions() -> None:
    """List, show and cancel executions."""


@executions.command("ls")
@click.option("--status", "statuses", multiple=True, help="only these statuses (RUNNING, FAILED, ...)")
@click.option("--session", default="", help="only this session")
@click.option("--limit", type=int, default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="one JSON object per execution")
@click.pass_obj
def executions_ls(settings: Settings, statuses: tuple[str, ...], session: str, limit: int, as_json: bool) -> None:
    """Executions, newest first."""

    def action() -> None:
        try:
            with settings.client() as client:
                found = list(client.executions(statuses=statuses, session_id=session, limit=limit))
        except ValueError as exc:  # an unknown status name
            raise UsageError("--status", str(exc)) from None
        if as_json:
            for execution in found:
                print_json(execution_json(execution))
            return
        click.echo(f"{'EXECUTION':<30} {'STATUS':<10} {'ERROR':<20} {'EXIT':>4} {'WALL':>8}  LANGUAGE")
        for e in found:
            wall = f"{e.usage.wall_ms / 1000:.2f}s"
            error = e.error_code or "-"
            click.echo(f"{e.execution_id:<30} {e.status:<10} {error:<20} {e.exit_code:>4} {wall:>8}  {e.language}")

    guarded(action)


@executions.command("show")
@click.argument("execution_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def executions_show(settings: Settings, execution_id: str, as_json: bool) -> None:
    """One execution's record."""

    def action() -> None:
        with settings.client() as client:
            execution = client.get(execution_id)
        if as_json:
            print_json(execution_json(execution))
            return
        click.echo(summary_line(execution))
        for label, value in (
            ("language", execution.language),
            ("runtime", execution.runtime or "-"),
            ("session", execution.session_id or "-"),
            ("spawner", execution.spawner or "-"),
        ):
            click.echo(f"  {label}: {value}")
        for stored in execution.output_files:
            click.echo(f"  output: {stored.path} ({human_bytes(stored.size)})")
        for dropped in execution.dropped_output_files:
            click.echo(f"  dropped: {dropped}")

    guarded(action)


@executions.command("cancel")
@click.argument("execution_id")
@click.pass_obj
def executions_cancel(settings: Settings, execution_id: str) -> None:
    """Cancel an execution that has not finished."""

    def action() -> None:
        with settings.client() as client:
            cancelled, execution = client.cancel(execution_id)
        click.echo(f"cancelled {execution_id}" if cancelled else f"{execution_id} had finished: {execution.status}")

    guarded(action)


@main.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def quota(settings: Settings, as_json: bool) -> None:
    """The tenant's limits and what it uses of them today."""

    def action() -> None:
        with settings.client() as client:
            q = client.quota()
        if as_json:
            print_json(dataclasses.asdict(q))
            return
        click.echo(f"tenant {q.tenant} ({q.day} UTC)")
        click.echo(f"  in flight     {q.in_flight}/{q.max_in_flight}")
        click.echo(f"  slots held    {q.slots_held}/{q.max_slots}")
        click.echo(f"  CPU seconds   {q.cpu_seconds_used:.1f}/{q.daily_cpu_seconds:.0f}")
        click.echo(f"  slot seconds  {q.slot_seconds_used:.1f}/{q.daily_slot_seconds:.0f}")

    guarded(action)


@main.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="one JSON object with every check")
@click.option("--env-file", type=click.Path(dir_okay=False, path_type=pathlib.Path), help="[the nearest .env]")
@click.option(
    "--workspace-root",
    type=click.Path(path_type=pathlib.Path),
    envvar="SPAWNER_WORKSPACE_ROOT",
    default=doctor.DEFAULT_WORKSPACE_ROOT,
    show_default=True,
    help="where sandbox workspaces live [SPAWNER_WORKSPACE_ROOT]",
)
@click.option("--spawner", default=doctor.DEFAULT_SPAWNER, show_default=True, help="the spawner's address")
@click.pass_obj
def doctor_command(
    settings: Settings, as_json: bool, env_file: pathlib.Path | None, workspace_root: pathlib.Path, spawner: str
) -> None:
    """Check the engine, images, runtimes, secrets, disk, clock and the mesh.

    Exits 1 when a check fails (warnings do not)."""
    inputs = doctor.Inputs(
        url=settings.url,
        tenant=settings.tenant,
        key=settings.key,
        env_file=env_file if env_file is not None else config.find_env_file(),
        workspace_root=workspace_root,
        spawner=spawner,
    )
    checks = doctor.run_checks(inputs)
    if as_json:
        print_json(doctor.as_json(checks))
    else:
        for check in checks:
            click.echo(doctor.format_check(check))
    sys.exit(doctor.exit_code(checks))


if __name__ == "__main__":
    main()
