"""The interactive prompt of `sandboxctl session` (prompt_toolkit: history,
multi-line cells) and its piped form, with a few meta-commands.

On a terminal, Enter runs a complete line (`x = 1`); a line that opens a
block (`for i in range(3):`) or leaves a bracket open goes on to the next
line, and an empty line ends such a cell; Esc then Enter (Meta+Enter) runs
the cell as it is. Ctrl-C interrupts a running call (twice: stop waiting),
or clears the line at the prompt; Ctrl-D leaves.

Piped, stdin is read as cells separated by lines starting `# %%` (the
"percent" cell format of VS Code, Jupytext and Spyder), each run as it is
complete; the first call that does not end ok stops the rest.
"""

from __future__ import annotations

import codeop
import os
import pathlib
import re
import shlex
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

import click
from prompt_toolkit import PromptSession
from prompt_toolkit.history import FileHistory
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent

from sandbox_mesh.commands.session_output import CellPrinter, exit_code_of
from sandbox_mesh.display import EXIT_INTERRUPTED, Justify, human_bytes, print_table
from sandbox_mesh.errors import MeshError
from sandbox_mesh.session_records import SessionInfo
from sandbox_mesh.sessions import Session

CELL_SEPARATOR_RE = re.compile(r"#\s*%%")
META_COMMANDS = ("%files", "%get", "%put", "%restart", "%info", "%exit", "%help")
META_HELP = """\
%files [DIR]         the session's files (the working directory, DIR, or /workspace for all)
%get PATH [DEST]     copy a file of the session here (DEST: a file or a folder; default its name)
%put LOCAL [PATH]    copy a local file into the session (PATH: default its name)
%restart             a fresh interpreter: variables go, files and packages stay
%info                the session's record
%exit                leave (as Ctrl-D)"""
KEYS_HELP = (
    "Enter runs a complete line; after a block, an empty line runs the cell; Esc+Enter runs it as it is. "
    "Ctrl-C interrupts a call, Ctrl-D leaves. %help lists the commands."
)
OPENERS, CLOSERS = "([{", ")]}"


def history_path() -> pathlib.Path:
    """$XDG_STATE_HOME/sandbox-mesh/session-history (~/.local/state by default)."""
    state = os.environ.get("XDG_STATE_HOME") or str(pathlib.Path.home() / ".local" / "state")
    return pathlib.Path(state) / "sandbox-mesh" / "session-history"


def brackets_open(text: str) -> bool:
    """A rough count (strings are not parsed): enough to keep a line going."""
    depth = 0
    for char in text:
        depth += char in OPENERS
        depth -= char in CLOSERS
    return depth > 0


def cell_complete(text: str, language: str) -> bool:
    """Whether Enter at the end of `text` runs it."""
    lines = text.split("\n")
    if len(lines) > 1:
        return lines[-1].strip() == ""
    line = text.strip()
    if not line or line.startswith(("%", "!")):
        return True
    if language == "python":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # compile's SyntaxWarnings are the kernel's to show
            try:
                return codeop.compile_command(text, symbol="single") is not None
            except (SyntaxError, ValueError, OverflowError):
                return True  # the kernel reports it
    return not brackets_open(text) and not line.endswith(("{", "(", "[", ",", "=>"))


def indentation(line: str, language: str) -> str:
    """The next line's indentation: the same, one step more after an opener."""
    indent = line[: len(line) - len(line.lstrip())]
    opens = line.rstrip().endswith(":" if language == "python" else ("{", "(", "["))
    return indent + "    " if opens else indent


def key_bindings(language: str) -> KeyBindings:
    bindings = KeyBindings()

    @bindings.add("enter")
    def enter(event: KeyPressEvent) -> None:
        buffer = event.current_buffer
        if cell_complete(buffer.text, language):
            buffer.validate_and_handle()
        else:
            buffer.insert_text("\n" + indentation(buffer.document.current_line, language))

    @bindings.add("escape", "enter")
    def run_as_is(event: KeyPressEvent) -> None:
        event.current_buffer.validate_and_handle()

    return bindings


def cells_of(lines: Iterable[str]) -> Iterator[str]:
    """Piped input's cells: separated by lines starting `# %%`, each given
    as soon as the next separator (or the end) is read; blank ones skipped."""
    cell: list[str] = []
    for line in lines:
        if CELL_SEPARATOR_RE.match(line):
            if "".join(cell).strip():
                yield "".join(cell)
            cell = []
        else:
            cell.append(line)
    if "".join(cell).strip():
        yield "".join(cell)


def say(text: str) -> None:
    click.echo(text, err=True)


def info_lines(info: SessionInfo) -> list[str]:
    """A session's record, one `label: value` a line (`%info`, `session show`)."""
    packages = ", ".join(p.spec(info.language) for p in info.packages) or "-"
    ended = f"{info.status}: {info.end_reason}" if info.end_reason else info.status
    return [
        f"session: {info.session_id}",
        f"status: {ended}",
        f"language: {info.language}" + (f" ({info.variant})" if info.variant else ""),
        f"calls: {info.calls}" + (" (one running)" if info.busy else ""),
        f"restarts: {info.restarts}",
        f"packages: {packages}",
        f"call timeout: {info.timeout_ms / 1000:g}s" if info.timeout_ms else "call timeout: the mesh's default",
        f"memory: {human_bytes(info.memory_bytes)}" if info.memory_bytes else "memory: the mesh's default",
        f"idle timeout: {info.idle_timeout_seconds}s, maximum lifetime: {info.max_lifetime_seconds}s",
    ]


def meta_command(session: Session, line: str) -> bool:
    """Runs one meta-command; True to leave. Failures are printed, never raised."""
    try:
        words = shlex.split(line)
    except ValueError as exc:
        say(f"sandboxctl: {exc}")
        return False
    name, args = words[0], words[1:]
    try:
        return run_meta(session, name, args)
    except MeshError as exc:
        say(f"sandboxctl: {exc}")
    except OSError as exc:
        say(f"sandboxctl: {exc.filename or ''}: {exc.strerror or exc}".replace(": : ", ": "))
    return False


def run_meta(session: Session, name: str, args: list[str]) -> bool:
    if name == "%exit":
        return True
    if name == "%files" and len(args) <= 1:
        columns: list[tuple[str, Justify]] = [("PATH", "left"), ("SIZE", "right")]
        print_table(columns, ([path, str(size)] for path, size in session.files(args[0] if args else "")))
    elif name == "%get" and len(args) in (1, 2):
        remote_name = pathlib.PurePosixPath(args[0]).name
        dest = pathlib.Path(args[1]) if len(args) == 2 else pathlib.Path(remote_name)
        if dest.is_dir():
            dest = dest / remote_name
        if dest.name in ("", ".", ".."):
            say("sandboxctl: %get: name a DEST for this path")
            return False
        data = session.get_file(args[0])
        dest.write_bytes(data)
        say(f"saved {args[0]} to {dest} ({human_bytes(len(data))})")
    elif name == "%put" and len(args) in (1, 2):
        local = pathlib.Path(args[0])
        target = args[1] if len(args) == 2 else local.name
        size = session.put_file(target, local.read_bytes())
        say(f"put {target} ({human_bytes(size)})")
    elif name == "%restart" and not args:
        info = session.restart()
        say(f"a fresh interpreter (restarts: {info.restarts}); files and packages kept")
    elif name == "%info" and not args:
        for text in info_lines(session.info()):
            say(text)
    else:
        say(META_HELP)
    return False


def is_meta(cell: str) -> bool:
    line = cell.strip()
    return "\n" not in line and line.split(" ", 1)[0] in META_COMMANDS


def interactive(session: Session, printer: CellPrinter, **prompt_options: Any) -> int:
    """The prompt until Ctrl-D or %exit; `prompt_options` go to
    prompt_toolkit's PromptSession (tests give `input` and `output`)."""
    path = history_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    prompt: PromptSession[str] = PromptSession(
        history=FileHistory(str(path)),
        multiline=True,
        key_bindings=key_bindings(session.language),
        prompt_continuation=lambda width, line, wrap: "." * (width - 2) + ": ",
        **prompt_options,
    )
    say(f"session {session.session_id} ({session.language}). {KEYS_HELP}")
    count = 0
    while True:
        try:
            text = prompt.prompt(f"[{count + 1}]: ")
        except KeyboardInterrupt:
            continue
        except EOFError:
            return 0
        cell = text.rstrip()
        if not cell.strip():
            continue
        if is_meta(cell):
            if meta_command(session, cell):
                return 0
            continue
        count += 1
        try:
            printer.follow(session.stream(cell))
        except MeshError as exc:
            say(f"sandboxctl: {exc}")


def piped(session: Session, printer: CellPrinter, lines: Iterable[str]) -> int:
    """Cells from `lines` (see cells_of) in order; the exit code of the
    first that does not end ok (session run's codes), else 0."""
    for cell in cells_of(lines):
        if is_meta(cell):
            if meta_command(session, cell):
                return 0
            continue
        outcome = printer.follow(session.stream(cell.rstrip()))
        if outcome is None:
            return EXIT_INTERRUPTED
        if not outcome.ok:
            return exit_code_of(outcome)
    return 0
