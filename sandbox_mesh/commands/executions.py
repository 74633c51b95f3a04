"""`sandboxctl executions|groups|outputs|quota`: what ran, what it printed
and left behind, and what the tenant may still use."""

from __future__ import annotations

import dataclasses
import pathlib
import sys
from typing import Any

import click

from sandbox_mesh.commands.common import Settings, guarded, json_option, print_json, save_files
from sandbox_mesh.display import Justify, human_bytes, output_path, print_table, summary_line
from sandbox_mesh.events import Execution
from sandbox_mesh.request import UsageError

EXECUTION_COLUMNS: list[tuple[str, Justify]] = [
    ("EXECUTION", "left"),
    ("STATUS", "left"),
    ("ERROR", "left"),
    ("EXIT", "right"),
    ("WALL", "right"),
    ("LANGUAGE", "left"),
]


def execution_json(execution: Execution) -> dict[str, Any]:
    return dataclasses.asdict(execution)


@click.group()
def executions() -> None:
    """List, show, cancel executions and print their logs."""


@executions.command("ls")
@click.option("--status", "statuses", multiple=True, help="only these statuses (RUNNING, FAILED, ...)")
@click.option("--group", default="", help="only executions labelled with this group")
@click.option("--session", default="", help="only the calls of this live session")
@click.option("--limit", type=int, default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="one JSON object per execution")
@click.pass_obj
def executions_ls(
    settings: Settings, statuses: tuple[str, ...], group: str, session: str, limit: int, as_json: bool
) -> None:
    """Executions, newest first."""

    def action() -> None:
        try:
            with settings.client() as client:
                found = list(client.executions(statuses=statuses, group_id=group, session_id=session, limit=limit))
        except ValueError as exc:  # an unknown status name
            raise UsageError("--status", str(exc)) from None
        if as_json:
            for execution in found:
                print_json(execution_json(execution))
            return
        print_table(
            EXECUTION_COLUMNS,
            (
                [
                    e.execution_id,
                    e.status,
                    e.error_code or "-",
                    str(e.exit_code),
                    f"{e.usage.wall_ms / 1000:.2f}s",
                    e.language,
                ]
                for e in found
            ),
        )

    guarded(action)


@executions.command("show")
@click.argument("execution_id")
@json_option
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
            ("group", execution.group_id or "-"),
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


@executions.command("logs")
@click.argument("execution_id")
@json_option
@click.pass_obj
def executions_logs(settings: Settings, execution_id: str, as_json: bool) -> None:
    """What control kept of an execution's stdout and stderr.

    Control keeps the first bytes of each (CONTROL_PREVIEW_BYTES, 64 KiB by
    default), not the whole output: when the program wrote more, a line on
    stderr says the rest was not kept. stdout goes to stdout, stderr to
    stderr; --json prints one object with both (as UTF-8 text) and the
    truncated flags. A running execution shows what was written so far."""

    def action() -> None:
        with settings.client() as client:
            logs = client.logs(execution_id)
        if as_json:
            record = dataclasses.asdict(logs)
            record["stdout"] = logs.stdout.decode("utf-8", errors="replace")
            record["stderr"] = logs.stderr.decode("utf-8", errors="replace")
            print_json(record)
            return
        sys.stdout.buffer.write(logs.stdout)
        sys.stdout.buffer.flush()
        sys.stderr.buffer.write(logs.stderr)
        sys.stderr.buffer.flush()
        for name, truncated in (("stdout", logs.stdout_truncated), ("stderr", logs.stderr_truncated)):
            if truncated:
                click.echo(f"sandboxctl: {name} was longer; control keeps only its first bytes", err=True)

    guarded(action)


@click.group()
def groups() -> None:
    """Act on every execution labelled with a group (run --group NAME)."""


@groups.command("cancel")
@click.argument("group_id")
@json_option
@click.pass_obj
def groups_cancel(settings: Settings, group_id: str, as_json: bool) -> None:
    """Cancel every execution of GROUP_ID that has not finished."""

    def action() -> None:
        with settings.client() as client:
            cancelled = client.cancel_group(group_id)
        if as_json:
            print_json({"group_id": group_id, "cancelled_execution_ids": cancelled})
            return
        click.echo(f"cancelled {len(cancelled)} execution(s) of group {group_id}")
        for execution_id in cancelled:
            click.echo(f"  {execution_id}")

    guarded(action)


@click.group()
def outputs() -> None:
    """Fetch the output files an execution left."""


@outputs.command("get")
@click.argument("execution_id")
@click.argument("path", required=False)
@click.option("--out", type=click.Path(file_okay=False), help="the folder to write into [./outputs/<execution id>/]")
@json_option
@click.pass_obj
def outputs_get(settings: Settings, execution_id: str, path: str | None, out: str | None, as_json: bool) -> None:
    """Write EXECUTION_ID's output files (or only PATH) under --out.

    Nothing is written outside --out: a path with `..`, an absolute one or
    one through a symlink is refused (exit 2 for PATH, 125 when the mesh
    names such a file)."""

    def action() -> None:
        folder = pathlib.Path(out) if out else pathlib.Path("outputs") / execution_id
        if path is not None:
            try:
                output_path(folder, path)
            except ValueError as exc:
                raise UsageError("PATH", str(exc)) from None
        with settings.client() as client:
            paths = [path] if path is not None else [f.path for f in client.get(execution_id).output_files]
            save_files(lambda p: client.output_chunks(execution_id, p), paths, folder)
        if as_json:
            print_json({"execution_id": execution_id, "folder": str(folder), "files": paths})
            return
        for written in paths:
            click.echo(str(folder / written))
        if not paths:
            click.echo(f"{execution_id} left no output files", err=True)

    guarded(action)


@click.command()
@json_option
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
