"""What `sandboxctl mcp` gives an agent back, and what it accepts: a session
call's outcome, a one-shot execution's result and a file as MCP content
(labelled text parts, images as image parts), and the checks of the tools'
arguments. Pure functions, no calls to the mesh.

A failed run is a tool result with isError set (the agent reads why and
carries on); an argument the tools cannot use is an ArgumentError naming
the argument, raised before anything is sent to the mesh.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
import pathlib
from collections.abc import Mapping, Sequence

from mcp.server.fastmcp.exceptions import ToolError
from mcp.types import BlobResourceContents, CallToolResult, ContentBlock, EmbeddedResource, ImageContent, TextContent

from sandbox_mesh.events import Result
from sandbox_mesh.session_records import CellOutcome, ValuePart

LANGUAGES = ("python", "node")
ENCODINGS = ("text", "base64")
# Image types MCP clients show to a model; other parts go as text or a note.
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
# One text part is cut here: a model's context is the scarce thing, and the
# whole output is a file away (write it to /workspace, read what matters).
MAX_TEXT_CHARS = 50_000
# The most a tool hands back of one file, whole (get_file).
MAX_FILE_BYTES = 8 * 1024 * 1024
# The most put_file and run_code's files take in one argument.
MAX_PUT_BYTES = 8 * 1024 * 1024
MAX_PACKAGES = 50


class ArgumentError(ToolError):
    """A tool argument the server cannot use; the message names it."""

    def __init__(self, argument: str, description: str):
        super().__init__(f"argument {argument!r}: {description}")
        self.argument = argument


# ---- text -----------------------------------------------------------------


def text_of(data: bytes | str) -> str:
    return data if isinstance(data, str) else data.decode("utf-8", errors="replace")


def cut(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    if len(text) <= limit:
        return text
    left = len(text) - limit
    return f"{text[:limit]}\n[... {left} more characters cut; write long output to a file and read the part you need]"


def labelled(label: str, text: str) -> TextContent:
    """One text part whose first line says what it is: `[stdout]`, `[error]`."""
    return TextContent(type="text", text=f"[{label}]\n{cut(text)}")


def image(mime_type: str, data: bytes) -> ImageContent:
    return ImageContent(type="image", data=base64.b64encode(data).decode("ascii"), mimeType=mime_type)


# ---- a session call --------------------------------------------------------


def value_parts(values: Sequence[ValuePart]) -> list[ContentBlock]:
    """Displayed values and the last value: images as image parts, text/plain
    as text; text/html only when the same display has no plain-text form
    (a pandas table comes as both, and the plain form reads better)."""
    plain_kinds = {part.last_value for part in values if part.mime_type == "text/plain"}
    blocks: list[ContentBlock] = []
    for part in values:
        label = "last value" if part.last_value else "displayed"
        if part.mime_type in IMAGE_TYPES:
            blocks.append(image(part.mime_type, part.data))
        elif part.mime_type == "text/plain":
            blocks.append(labelled(label, text_of(part.data)))
        elif part.mime_type == "text/html":
            if part.last_value not in plain_kinds:
                blocks.append(labelled(f"{label} (text/html)", text_of(part.data)))
        elif part.mime_type.startswith("text/") or part.mime_type in ("application/json", "image/svg+xml"):
            blocks.append(labelled(f"{label} ({part.mime_type})", text_of(part.data)))
        else:
            note = f"a {part.mime_type} part of {len(part.data)} bytes, not shown"
            blocks.append(labelled(f"{label} ({part.mime_type})", note))
    return blocks


STATUS_NOTES = {
    "timeout": "the call was interrupted at its timeout; the session and its variables remain",
    "kernel_died": "the interpreter died (out of memory or exited); the next call starts a fresh one, files kept",
    "session_ended": "the session has ended; open a new one",
}


def cell_result(outcome: CellOutcome) -> CallToolResult:
    """A session call's outcome: a status line, then stdout, stderr, the
    values, the error; isError unless it ran to its end without an error."""
    status = f"status: {outcome.status}"
    if outcome.execution_count:
        status += f" · cell {outcome.execution_count}"
    status += f" · {outcome.duration_ms} ms"
    if outcome.status in STATUS_NOTES:
        status += f"\n{STATUS_NOTES[outcome.status]}"
    blocks: list[ContentBlock] = [TextContent(type="text", text=status)]
    if outcome.stdout:
        blocks.append(labelled("stdout", text_of(outcome.stdout)))
    if outcome.stderr:
        blocks.append(labelled("stderr", text_of(outcome.stderr)))
    blocks.extend(value_parts(outcome.values))
    error = outcome.error
    if error is not None:
        lines = [f"{error.name}: {error.value}" if error.value else error.name]
        if error.traceback:
            lines += ["", "Traceback:", *error.traceback]
        blocks.append(labelled("error", "\n".join(lines)))
    return CallToolResult(content=blocks, isError=not outcome.ok)


# ---- a one-shot execution ---------------------------------------------------


def execution_result(result: Result) -> CallToolResult:
    """run_code's answer: the verdict, stdout, stderr, and the files the
    program left in /workspace/output (images shown, the rest listed)."""
    execution = result.execution
    failed = execution.status != "COMPLETED" or execution.exit_code != 0
    status = f"status: {execution.status} · exit {execution.exit_code} · {execution.usage.wall_ms} ms"
    if execution.error_code:
        status += f"\nerror: {execution.error_code}"
        if execution.error_message:
            status += f": {execution.error_message}"
    blocks: list[ContentBlock] = [TextContent(type="text", text=status)]
    if result.stdout:
        blocks.append(labelled("stdout", text_of(result.stdout)))
    if result.stderr:
        blocks.append(labelled("stderr", text_of(result.stderr)))
    listed = []
    for path, data in sorted(result.files.items()):
        mime_type = guess_type(path)
        if mime_type in IMAGE_TYPES:
            blocks.append(image(mime_type, data))
        listed.append(f"{path} ({len(data)} bytes)")
    if listed:
        blocks.append(labelled("output files", "\n".join(listed)))
    return CallToolResult(content=blocks, isError=failed)


# ---- files -----------------------------------------------------------------


def guess_type(path: str) -> str:
    return mimetypes.guess_type(pathlib.PurePosixPath(path).name)[0] or "application/octet-stream"


def file_result(session_id: str, path: str, data: bytes) -> CallToolResult:
    """One file of a session: an image part for an image, its text when it
    is UTF-8, else the bytes as an embedded blob (base64)."""
    if len(data) > MAX_FILE_BYTES:
        return error_result(
            f"{path} is {len(data)} bytes, more than the {MAX_FILE_BYTES} get_file returns; "
            "read the part you need with code in the session"
        )
    mime_type = guess_type(path)
    if mime_type in IMAGE_TYPES:
        return CallToolResult(content=[image(mime_type, data)])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        blob = BlobResourceContents(
            uri=f"sandbox-session://{session_id}/{path.lstrip('/')}",  # type: ignore[arg-type]
            mimeType=mime_type,
            blob=base64.b64encode(data).decode("ascii"),
        )
        note = TextContent(type="text", text=f"{path}: {len(data)} bytes of {mime_type} (base64 below)")
        return CallToolResult(content=[note, EmbeddedResource(type="resource", resource=blob)])
    return CallToolResult(content=[TextContent(type="text", text=cut(text))])


def error_result(message: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=message)], isError=True)


# ---- arguments -------------------------------------------------------------


def check_language(language: str) -> str:
    if language not in LANGUAGES:
        raise ArgumentError("language", f"{language!r} is not one of {', '.join(LANGUAGES)}")
    return language


def check_code(code: str) -> str:
    if not code.strip():
        raise ArgumentError("code", "is empty")
    return code


def check_packages(packages: Sequence[str] | None, language: str) -> list[str]:
    """Package names as pip (python) or npm (node) spell them."""
    names = list(packages or ())
    if len(names) > MAX_PACKAGES:
        raise ArgumentError("packages", f"at most {MAX_PACKAGES}")
    for name in names:
        if not name.strip() or any(c.isspace() for c in name.strip()):
            raise ArgumentError("packages", f"{name!r} is not a package name (e.g. pandas==2.2 or lodash@4)")
    return [name.strip() for name in names]


def check_timeout_ms(timeout_ms: int | None) -> int | None:
    if timeout_ms is not None and timeout_ms <= 0:
        raise ArgumentError("timeout_ms", "must be a positive number of milliseconds")
    return timeout_ms


def check_positive(argument: str, value: int | None) -> int:
    if value is not None and value <= 0:
        raise ArgumentError(argument, "must be positive")
    return value or 0


def check_session_id(session_id: str) -> str:
    if not session_id.strip():
        raise ArgumentError("session_id", "is empty; open_session returns one")
    return session_id.strip()


def check_path(path: str, argument: str = "path") -> str:
    """A path as the session's code names it: relative to its working
    directory (/workspace/code), or absolute under /workspace."""
    name = path.strip()
    parts = pathlib.PurePosixPath(name).parts
    outside = name.startswith("/") and name != "/workspace" and not name.startswith("/workspace/")
    if not name or outside or ".." in parts:
        raise ArgumentError(
            argument, f"{path!r} is not a path in the session (e.g. data/input.csv or /workspace/output/plot.png)"
        )
    return name


def decode_content(content: str, encoding: str, argument: str = "content") -> bytes:
    """put_file's content: UTF-8 text as given, or base64 for binary."""
    if encoding not in ENCODINGS:
        raise ArgumentError("encoding", f"{encoding!r} is not one of {', '.join(ENCODINGS)}")
    if encoding == "text":
        data = content.encode("utf-8")
    else:
        try:
            data = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            raise ArgumentError(argument, "is not valid base64") from None
    if len(data) > MAX_PUT_BYTES:
        raise ArgumentError(argument, f"is {len(data)} bytes, more than {MAX_PUT_BYTES}")
    return data


def check_files(files: Mapping[str, str] | None) -> dict[str, bytes]:
    """run_code's and open_session's extra files: path -> UTF-8 text."""
    checked: dict[str, bytes] = {}
    total = 0
    for path, content in (files or {}).items():
        data = content.encode("utf-8")
        total += len(data)
        if total > MAX_PUT_BYTES:
            raise ArgumentError("files", f"more than {MAX_PUT_BYTES} bytes in all")
        checked[check_path(path, "files")] = data
    return checked
