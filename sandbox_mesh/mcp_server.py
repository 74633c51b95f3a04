"""`sandboxctl mcp`: the mesh as tools for an agent, over the Model Context
Protocol (the official `mcp` SDK's FastMCP; stdio or streamable HTTP).

The server acts as one tenant, with the connection every sandboxctl command
uses (sandbox_mesh.config). Whoever reaches it calls the mesh as that
tenant: stdio is the agent's own child process; HTTP listens on loopback
unless told otherwise (sandbox_mesh.commands.mcp).

SandboxTools does the work with the blocking client; the server runs each
call in a worker thread so one long run does not hold up the others.
Conversions and argument checks are sandbox_mesh.mcp_content's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Annotated, Any, Literal

import anyio
from mcp.server.fastmcp import FastMCP
from mcp.types import CallToolResult, TextContent
from pydantic import Field

from sandbox_mesh import mcp_content as content
from sandbox_mesh.client import Client
from sandbox_mesh.errors import MeshError
from sandbox_mesh.mcp_content import ArgumentError
from sandbox_mesh.request import UsageError
from sandbox_mesh.session_records import SessionInfo
from sandbox_mesh.sessions import Session

ENTRIES = {"python": "main.py", "node": "main.js"}
# build_request's option names, as the tools call them.
ARGUMENT_OF_OPTION = {"--pip": "packages", "--npm": "packages", "--timeout": "timeout_ms", "entry": "files"}

INSTRUCTIONS = """\
Runs code in isolated, network-less sandboxes of the Sandbox mesh. Use run_code for one-off programs. For work
in steps (load data, look at it, plot, fix, plot again) open a session: a live interpreter whose variables,
imports, files and installed packages persist between run_in_session calls until it is closed
or stays idle past its idle timeout (15 minutes by default). Close sessions you no longer need."""

RUN_CODE = """\
Run a program once in a fresh sandbox and return its stdout, stderr, exit status, and any images it saved
under /workspace/output/ (other files there are listed). Nothing persists after the call; use a session to
keep state. The sandbox has no network; packages are installed before the program runs. The program runs in
/workspace/code as main.py (python) or main.js (node). A non-zero exit, a timeout or a crash is a result with
isError set and the reason in the text. Matplotlib figures must be saved to a file here (e.g.
plt.savefig('/workspace/output/plot.png')); variant "datascience" has numpy, pandas, scipy and matplotlib."""

OPEN_SESSION = """\
Open a session: a sandbox that lives across calls, like a notebook kernel. Returns its session_id, which the
other session tools take. Python keeps variables and imports between calls and returns the last expression's
value; Node runs each call as a new program (files and packages persist, variables do not). Calls run in
/workspace/code; files under /workspace persist for the session's life. It ends when closed, after
idle_timeout_seconds without a call (default 900), or at its maximum lifetime; everything in it is then gone.
Use variant "datascience" for numpy, pandas, scipy and matplotlib (figures come back as images)."""

RUN_IN_SESSION = """\
Run code in an open session and return stdout, stderr, the last expression's value (python), displayed values
(a matplotlib figure comes back as a PNG image, a pandas table as text) and the error with its traceback.
One call at a time per session. A call past its timeout is interrupted (KeyboardInterrupt) and the session
keeps its state. An error in the code is a result with isError set; the session stays usable. If the
interpreter died (e.g. out of memory) the next call starts a fresh one with the files kept."""

CLOSE_SESSION = "Close a session; its sandbox and files are destroyed. Closing an ended session is a no-op."
LIST_SESSIONS = "List this tenant's open sessions (all of them with include_ended): id, language, status, calls."
PUT_FILE = """\
Write a file into an open session (parent folders are made; an existing file is replaced). A relative path is
relative to the calls' working directory /workspace/code (so code opens it by the same name); an absolute one
must be under /workspace.
content is UTF-8 text, or base64 with encoding="base64" for binary files. At most 8 MiB."""
GET_FILE = """\
Read a file from an open session (a path relative to /workspace/code, or absolute under /workspace): text
as text, an image (png, jpeg, gif, webp) as an image, other binary files as a base64 blob. At most 8 MiB;
for bigger files read the part you need with code."""
LIST_FILES = """\
List the files of an open session with their sizes: the calls' working directory /workspace/code by default,
a folder in it, or "/workspace" for everything."""
RESTART_SESSION = """\
Start a fresh interpreter in a session: variables and imports are lost, files and installed
packages stay. Use it when the interpreter is stuck or its state is broken."""

Language = Annotated[Literal["python", "node"], Field(description='"python" or "node"')]
Packages = Annotated[
    list[str] | None,
    Field(description="pip (python) or npm (node) packages to install first, e.g. ['pandas==2.2', 'lodash@4']"),
]
Files = Annotated[
    dict[str, str] | None,
    Field(description="extra UTF-8 text files to place in the working directory first: relative path -> content"),
]
TimeoutMs = Annotated[
    int | None, Field(description="time limit of this call in milliseconds (default: the mesh's, usually 20 s)")
]
Variant = Annotated[str | None, Field(description='image variant, e.g. "datascience" (default: the plain runtime)')]
SessionId = Annotated[str, Field(description="the id open_session returned")]
WorkspacePath = Annotated[
    str,
    Field(
        description="relative to the working directory /workspace/code (data/input.csv), or absolute under /workspace"
    ),
]


def mesh_failure(exc: MeshError) -> CallToolResult:
    """The mesh refused or failed the call: a tool result with isError, the
    gRPC status and the field, so the agent can correct its request."""
    return content.error_result(f"the mesh refused the call: {exc}")


class SandboxTools:
    """The tools' work for one tenant's client. Blocking; thread-safe.

    Sessions opened here are remembered so that close_opened() can end
    those still open when the server stops (an agent that quits should not
    leave sandboxes holding slots until their idle timeout)."""

    def __init__(self, client: Client):
        self.client = client
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}
        self._opened: set[str] = set()

    # ---- one-shot -----------------------------------------------------------

    def run_code(
        self,
        language: str,
        code: str,
        packages: list[str] | None = None,
        files: dict[str, str] | None = None,
        timeout_ms: int | None = None,
        variant: str | None = None,
    ) -> CallToolResult:
        language = content.check_language(language)
        code = content.check_code(code)
        extra = content.check_files(files)
        names = content.check_packages(packages, language)
        timeout_ms = content.check_timeout_ms(timeout_ms)
        entry = ENTRIES[language]
        if entry in extra:
            raise ArgumentError("files", f"{entry!r} is the program itself (the code argument)")
        options: dict[str, Any] = {
            "entry": entry,
            "language": language,
            "pip" if language == "python" else "npm": names,
            "timeout": timeout_ms / 1000 if timeout_ms else None,
            "variant": variant or "",
        }
        try:
            result = self.client.run({entry: code.encode(), **extra}, **options)
        except UsageError as exc:
            raise ArgumentError(ARGUMENT_OF_OPTION.get(exc.option, exc.option), exc.description) from None
        return content.execution_result(result)

    # ---- sessions -------------------------------------------------------------

    def open_session(
        self,
        language: str,
        packages: list[str] | None = None,
        variant: str | None = None,
        idle_timeout_seconds: int | None = None,
        files: dict[str, str] | None = None,
    ) -> CallToolResult:
        language = content.check_language(language)
        names = content.check_packages(packages, language)
        idle = content.check_positive("idle_timeout_seconds", idle_timeout_seconds)
        extra = content.check_files(files)
        try:
            session = self.client.session(
                language, packages=names, files=extra, variant=variant or "", idle_timeout_seconds=idle
            )
        except UsageError as exc:
            raise ArgumentError(ARGUMENT_OF_OPTION.get(exc.option, exc.option), exc.description) from None
        with self._lock:
            self._sessions[session.session_id] = session
            self._opened.add(session.session_id)
        return self.session_text(session.last_info)

    def session(self, session_id: str) -> Session:
        """The Session for an id: one opened or seen here, else attached
        (control answers NOT_FOUND for an id this tenant does not own)."""
        session_id = content.check_session_id(session_id)
        with self._lock:
            known = self._sessions.get(session_id)
        if known is not None:
            return known
        session = self.client.attach_session(session_id)
        with self._lock:
            return self._sessions.setdefault(session_id, session)

    def run_in_session(self, session_id: str, code: str, timeout_ms: int | None = None) -> CallToolResult:
        code = content.check_code(code)
        timeout_ms = content.check_timeout_ms(timeout_ms)
        outcome = self.session(session_id).run(code, timeout_ms=timeout_ms)
        return content.cell_result(outcome)

    def close_session(self, session_id: str) -> CallToolResult:
        # Straight to control: closing an ended session is a no-op there.
        info = self.client.close_session(content.check_session_id(session_id))
        with self._lock:
            self._sessions.pop(info.session_id, None)
            self._opened.discard(info.session_id)
        return text_result(f"session {info.session_id} {info.status}: its sandbox and files are gone")

    def restart_session(self, session_id: str) -> CallToolResult:
        session = self.session(session_id)
        session.restart()
        return text_result(f"session {session.session_id}: fresh interpreter started; files and packages kept")

    def list_sessions(self, include_ended: bool = False) -> CallToolResult:
        records = list(self.client.sessions(open_only=not include_ended))
        if not records:
            return text_result("no open sessions" if not include_ended else "no sessions")
        return text_result("\n".join(self.session_line(record) for record in records))

    # ---- files ---------------------------------------------------------------

    def put_file(self, session_id: str, path: str, content_text: str, encoding: str = "text") -> CallToolResult:
        relative = content.check_path(path)
        data = content.decode_content(content_text, encoding)
        session = self.session(session_id)
        session.put_file(relative, data)
        return text_result(f"wrote {relative} ({len(data)} bytes)")

    def get_file(self, session_id: str, path: str) -> CallToolResult:
        relative = content.check_path(path)
        session = self.session(session_id)
        return content.file_result(session.session_id, relative, session.get_file(relative))

    def list_files(self, session_id: str, directory: str = "") -> CallToolResult:
        folder = content.check_path(directory, "directory") if directory.strip() else ""
        listing = self.session(session_id).files(folder)
        lines = [f"{path} ({size} bytes)" for path, size in listing]
        return text_result("\n".join(lines) if lines else "no files")

    # ---- records as text -------------------------------------------------------

    @staticmethod
    def session_line(record: SessionInfo) -> str:
        line = f"{record.session_id}: {record.language} {record.status}"
        if record.variant:
            line += f" (variant {record.variant})"
        line += f" · {record.calls} calls"
        if record.open:
            line += f" · idle timeout {record.idle_timeout_seconds} s"
        elif record.end_reason:
            line += f" · {record.end_reason}"
        return line

    def session_text(self, record: SessionInfo) -> CallToolResult:
        lines = [f"session_id: {record.session_id}", self.session_line(record)]
        if record.packages:
            lines.append("packages: " + ", ".join(p.spec(record.language) for p in record.packages))
        lines.append("Run code in it with run_in_session; close it with close_session when done.")
        return CallToolResult(
            content=[TextContent(type="text", text="\n".join(lines))],
            structuredContent={"session_id": record.session_id},
        )

    # ---- the end ------------------------------------------------------------------

    def close_opened(self) -> list[str]:
        """Closes the sessions opened here that are still open; the failures
        (one line each: they are reported, not swallowed)."""
        with self._lock:
            opened = [self._sessions[i] for i in sorted(self._opened) if i in self._sessions]
            self._opened.clear()
        failures = []
        for session in opened:
            try:
                session.close()
            except MeshError as exc:
                failures.append(f"closing session {session.session_id}: {exc}")
        return failures


def text_result(text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)])


async def in_thread(work: Callable[[], CallToolResult]) -> CallToolResult:
    """Runs a blocking tool in a worker thread; the mesh's refusals become a
    tool result with isError (an ArgumentError stays the SDK's to report)."""

    def guarded() -> CallToolResult:
        try:
            return work()
        except MeshError as exc:
            return mesh_failure(exc)

    return await anyio.to_thread.run_sync(guarded)


def build_server(tools: SandboxTools, *, host: str = "127.0.0.1", port: int = 8000) -> FastMCP:
    """The MCP server with the tools; `host` and `port` matter for HTTP only."""
    server = FastMCP("sandbox-mesh", instructions=INSTRUCTIONS, host=host, port=port, log_level="WARNING")

    @server.tool(description=RUN_CODE)
    async def run_code(
        language: Language,
        code: Annotated[str, Field(description="the program's source")],
        packages: Packages = None,
        files: Files = None,
        timeout_ms: TimeoutMs = None,
        variant: Variant = None,
    ) -> CallToolResult:
        return await in_thread(lambda: tools.run_code(language, code, packages, files, timeout_ms, variant))

    @server.tool(description=OPEN_SESSION)
    async def open_session(
        language: Language,
        packages: Packages = None,
        variant: Variant = None,
        idle_timeout_seconds: Annotated[
            int | None, Field(description="seconds without a call before it ends (default 900)")
        ] = None,
        files: Files = None,
    ) -> CallToolResult:
        return await in_thread(lambda: tools.open_session(language, packages, variant, idle_timeout_seconds, files))

    @server.tool(description=RUN_IN_SESSION)
    async def run_in_session(
        session_id: SessionId,
        code: Annotated[str, Field(description="the code of this call (a cell)")],
        timeout_ms: TimeoutMs = None,
    ) -> CallToolResult:
        return await in_thread(lambda: tools.run_in_session(session_id, code, timeout_ms))

    @server.tool(description=CLOSE_SESSION)
    async def close_session(session_id: SessionId) -> CallToolResult:
        return await in_thread(lambda: tools.close_session(session_id))

    @server.tool(description=LIST_SESSIONS)
    async def list_sessions(
        include_ended: Annotated[bool, Field(description="also list closed and expired sessions")] = False,
    ) -> CallToolResult:
        return await in_thread(lambda: tools.list_sessions(include_ended))

    @server.tool(description=RESTART_SESSION)
    async def restart_session(session_id: SessionId) -> CallToolResult:
        return await in_thread(lambda: tools.restart_session(session_id))

    @server.tool(description=PUT_FILE)
    async def put_file(
        session_id: SessionId,
        path: WorkspacePath,
        content: Annotated[str, Field(description="the file's content: text, or base64 (see encoding)")],
        encoding: Annotated[
            Literal["text", "base64"], Field(description='"text" (UTF-8, the default) or "base64" for binary')
        ] = "text",
    ) -> CallToolResult:
        return await in_thread(lambda: tools.put_file(session_id, path, content, encoding))

    @server.tool(description=GET_FILE)
    async def get_file(session_id: SessionId, path: WorkspacePath) -> CallToolResult:
        return await in_thread(lambda: tools.get_file(session_id, path))

    @server.tool(description=LIST_FILES)
    async def list_files(
        session_id: SessionId,
        directory: Annotated[
            str, Field(description='a folder; "" for the working directory, "/workspace" for all')
        ] = "",
    ) -> CallToolResult:
        return await in_thread(lambda: tools.list_files(session_id, directory))

    return server
