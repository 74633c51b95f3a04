"""`sandboxctl session`: a live interpreter at a prompt, one call from a
file, and the sessions' records (create, ls, show, close).

    sandboxctl session                      a new Python session at a prompt
    sandboxctl session ID                   the prompt in an open session
    sandboxctl session run ID FILE|-        one call; exit code by its status
    sandboxctl session create|ls|show|close
"""

from __future__ import annotations

import dataclasses
import datetime
import pathlib
import sys
from typing import Any

import click

from sandbox_mesh.commands.common import Settings, guarded, json_option, print_json
from sandbox_mesh.commands.session_output import CellPrinter, exit_code_of
from sandbox_mesh.commands.session_prompt import info_lines, interactive, piped, say
from sandbox_mesh.display import EXIT_INTERRUPTED, Justify, print_table
from sandbox_mesh.session_records import SessionInfo
from sandbox_mesh.sessions import Session

SESSION_COLUMNS: list[tuple[str, Justify]] = [
    ("SESSION", "left"),
    ("STATUS", "left"),
    ("LANGUAGE", "left"),
    ("CALLS", "right"),
    ("CREATED", "left"),
    ("ENDS", "left"),
]
ATTACH = "attach"


def when(ms: int) -> str:
    if not ms:
        return "-"
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


def session_json(info: SessionInfo) -> dict[str, Any]:
    return dataclasses.asdict(info)


class SessionGroup(click.Group):
    """`session ID` is `session attach ID`: a word that names no command is a session id."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            return ATTACH, self.commands[ATTACH], args
        return super().resolve_command(ctx, args)


def images_dir_for(images_dir: pathlib.Path | None, session_id: str) -> pathlib.Path:
    return images_dir if images_dir is not None else pathlib.Path("session-images") / session_id


@click.group(cls=SessionGroup, invoke_without_command=True)
@click.option("--language", type=click.Choice(["python", "node"]), default="python", show_default=True)
@click.option("--variant", default="", help='the image variant, e.g. "datascience" (numpy, pandas, matplotlib)')
@click.option("--package", "packages", multiple=True, metavar="PKG", help="install this package first (repeat)")
@click.option("--timeout", type=float, help="each call's time limit in seconds (default: the mesh's)")
@click.option("--memory", help="the session's memory, e.g. 512m, 1g (default: the mesh's)")
@click.option(
    "--images-dir", type=click.Path(file_okay=False, path_type=pathlib.Path), help="[./session-images/<session id>/]"
)
@click.option("--keep", is_flag=True, help="leave the session open at the end (its id is printed)")
@click.pass_context
def session(ctx: click.Context, **options: Any) -> None:
    """A live session: its interpreter keeps variables, imports and files
    between calls (docs/sessions.md).

    Without a command: a new session at a prompt (`session ID`: an open
    one). Enter runs a complete line; after a block (a line ending in `:`,
    an open bracket) an empty line runs the cell; Esc+Enter runs it as it
    is. Output streams as it comes, the last value is printed, images are
    saved to --images-dir and their paths printed. Ctrl-C interrupts a
    call, Ctrl-D leaves and closes the session (unless --keep).

    With stdin not a terminal, cells are read from it, separated by lines
    starting `# %%`; the first that fails stops the rest (exit codes as
    `session run`). Meta-commands, at the prompt or as a cell of their own:

    \b
    %files [DIR]  %get PATH [DEST]  %put LOCAL [PATH]  %restart  %info  %exit"""
    settings: Settings = ctx.obj
    ctx.obj = (settings, options)
    if ctx.invoked_subcommand is None:
        guarded(lambda: prompt_in(settings, None, **options))


@session.command(ATTACH)
@click.argument("session_id", metavar="ID")
@click.pass_obj
def attach(obj: tuple[Settings, dict[str, Any]], session_id: str) -> None:
    """The prompt in the open session ID (as `session ID`)."""
    settings, options = obj
    guarded(lambda: prompt_in(settings, session_id, **options))


def prompt_in(
    settings: Settings,
    session_id: str | None,
    *,
    language: str,
    variant: str,
    packages: tuple[str, ...],
    timeout: float | None,
    memory: str | None,
    images_dir: pathlib.Path | None,
    keep: bool,
) -> int:
    with settings.client() as client:
        if session_id is None:
            opened = client.session(language, variant=variant, packages=packages, timeout=timeout, memory=memory)
        else:
            opened = client.attach_session(session_id)
        printer = CellPrinter(images_dir_for(images_dir, opened.session_id))
        try:
            # A terminal gets the prompt; anything else is read as cells.
            return interactive(opened, printer) if sys.stdin.isatty() else piped(opened, printer, sys.stdin)
        finally:
            leave(opened, keep)


def leave(opened: Session, keep: bool) -> None:
    if keep:
        say(f"session {opened.session_id} left open: sandboxctl session {opened.session_id}")
        return
    info = opened.close()
    say(f"session {opened.session_id} {info.status}")


@session.command("run")
@click.argument("session_id", metavar="ID")
@click.argument("source", metavar="FILE|-")
@click.option("--timeout", type=float, help="this call's time limit in seconds (default: the session's)")
@click.option(
    "--images-dir", type=click.Path(file_okay=False, path_type=pathlib.Path), help="[./session-images/<session id>/]"
)
@json_option
@click.pass_obj
def session_run(
    obj: tuple[Settings, dict[str, Any]],
    session_id: str,
    source: str,
    timeout: float | None,
    images_dir: pathlib.Path | None,
    as_json: bool,
) -> None:
    """Run FILE (or stdin: -) as one call in the open session ID.

    Exit codes: 0 ok, 1 the code raised (or node exited non-zero), 124 the
    call's time limit, 137 the interpreter died (out of memory?), 125 the
    session has ended or the mesh refused the call, 130 interrupted."""
    settings, _ = obj

    def action() -> int:
        code = sys.stdin.read() if source == "-" else pathlib.Path(source).read_text()
        with settings.client() as client:
            opened = client.attach_session(session_id)
            stream = opened.stream(code, round(timeout * 1000) if timeout else None)
            if as_json:
                outcome = stream.collect()
                print_json(outcome.as_json())
                return exit_code_of(outcome)
            result = CellPrinter(images_dir_for(images_dir, session_id)).follow(stream)
            return EXIT_INTERRUPTED if result is None else exit_code_of(result)

    guarded(action)


@session.command("create")
@click.option("--language", type=click.Choice(["python", "node"]), default="python", show_default=True)
@click.option("--id", "session_id", help="its id ([A-Za-z0-9_-]{1,64}; generated by default)")
@click.option("--variant", default="", help='the image variant, e.g. "datascience"')
@click.option("--package", "packages", multiple=True, metavar="PKG", help="install this package first (repeat)")
@click.option(
    "--file",
    "files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path),
    help="stage this local file in /workspace by its name (repeat)",
)
@click.option("--timeout", type=float, help="each call's time limit in seconds")
@click.option("--memory", help="the session's memory, e.g. 512m")
@click.option("--cpus", type=float, help="the session's CPUs")
@click.option("--idle-timeout", type=int, default=0, help="seconds unused before it ends [the mesh's: 15 min]")
@click.option("--max-lifetime", type=int, default=0, help="seconds before it ends regardless [the mesh's]")
@json_option
@click.pass_obj
def session_create(obj: tuple[Settings, dict[str, Any]], **options: Any) -> None:
    """Open a session and print its id (--file: staged in /workspace by its name)."""
    settings, _ = obj

    def action() -> None:
        files = {path.name: path.read_bytes() for path in options["files"]}
        with settings.client() as client:
            opened = client.session(
                options["language"],
                session_id=options["session_id"],
                variant=options["variant"],
                packages=options["packages"],
                files=files,
                idle_timeout_seconds=options["idle_timeout"],
                max_lifetime_seconds=options["max_lifetime"],
                timeout=options["timeout"],
                memory=options["memory"],
                cpus=options["cpus"],
            )
        if options["as_json"]:
            print_json(session_json(opened.last_info))
        else:
            click.echo(opened.session_id)

    guarded(action)


@session.command("ls")
@click.option("--open", "open_only", is_flag=True, help="only open sessions")
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="one JSON object per session")
@click.pass_obj
def session_ls(obj: tuple[Settings, dict[str, Any]], open_only: bool, limit: int, as_json: bool) -> None:
    """Sessions, newest first."""
    settings, _ = obj

    def action() -> None:
        with settings.client() as client:
            found = client.sessions(open_only, limit=limit)
        if as_json:
            for info in found:
                print_json(session_json(info))
            return
        rows = (
            [
                s.session_id,
                s.status + (" (busy)" if s.busy else ""),
                s.language + (f"/{s.variant}" if s.variant else ""),
                str(s.calls),
                when(s.created_at_ms),
                when(s.expires_at_ms if s.open else s.ended_at_ms),
            ]
            for s in found
        )
        print_table(SESSION_COLUMNS, rows)

    guarded(action)


@session.command("show")
@click.argument("session_id", metavar="ID")
@json_option
@click.pass_obj
def session_show(obj: tuple[Settings, dict[str, Any]], session_id: str, as_json: bool) -> None:
    """One session's record."""
    settings, _ = obj

    def action() -> None:
        with settings.client() as client:
            info = client.get_session(session_id)
        if as_json:
            print_json(session_json(info))
            return
        for line in info_lines(info):
            click.echo(line)
        click.echo(f"created: {when(info.created_at_ms)}, last used: {when(info.last_used_at_ms)}")
        click.echo(f"ends: {when(info.expires_at_ms)}" if info.open else f"ended: {when(info.ended_at_ms)}")

    guarded(action)


@session.command("close")
@click.argument("session_id", metavar="ID")
@json_option
@click.pass_obj
def session_close(obj: tuple[Settings, dict[str, Any]], session_id: str, as_json: bool) -> None:
    """End a session and destroy its sandbox (a no-op once ended)."""
    settings, _ = obj

    def action() -> None:
        with settings.client() as client:
            info = client.close_session(session_id)
        if as_json:
            print_json(session_json(info))
        else:
            click.echo(f"{session_id} {info.status}")

    guarded(action)
