"""sandboxctl mcp's pure parts: a call's outcome, an execution's result and a
file as MCP content, and the checks of the tools' arguments."""

from __future__ import annotations

import base64

import anyio
import pytest
from click.testing import CliRunner
from mcp.types import EmbeddedResource, ImageContent, TextContent

from sandbox.common.v1 import execution_pb2 as common
from sandbox.control.v1 import control_pb2 as pb
from sandbox_mesh import events as records
from sandbox_mesh import mcp_content as content
from sandbox_mesh.cli import main
from sandbox_mesh.client import Client
from sandbox_mesh.commands.mcp_command import is_loopback
from sandbox_mesh.mcp_content import ArgumentError
from sandbox_mesh.mcp_server import SandboxTools, build_server
from sandbox_mesh.session_records import CellError, CellOutcome, ValuePart

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


def part_of(mime_type: str, data: bytes, last_value: bool = False) -> ValuePart:
    return ValuePart(mime_type, data, last_value)


def outcome_of(
    status: str = "ok",
    stdout: bytes = b"",
    stderr: bytes = b"",
    values: list[ValuePart] | None = None,
    error: CellError | None = None,
    execution_count: int = 1,
) -> CellOutcome:
    return CellOutcome("ex-1", status, stdout, stderr, values or [], error, execution_count, 0, 12)


def execution_of(
    status: str = "COMPLETED", exit_code: int = 0, error_code: str = "", error_message: str = ""
) -> records.Execution:
    code = common.ErrorCode.Value(f"ERROR_CODE_{error_code}") if error_code else 0
    return records.Execution.of(
        pb.Execution(
            status=common.ExecutionStatus.Value(f"EXECUTION_STATUS_{status}"),
            exit_code=exit_code,
            error_code=code,
            error_message=error_message,
            usage=common.Usage(wall_ms=40),
        )
    )


def result_of(execution, stdout=b"", stderr=b"", files=None) -> records.Result:
    return records.Result(execution, stdout, stderr, files or {})


def texts(result) -> list[str]:
    return [block.text for block in result.content if isinstance(block, TextContent)]


def test_a_cell_with_output_and_a_last_value_is_labelled_text():
    result = content.cell_result(
        outcome_of(stdout=b"hello\n", stderr=b"careful\n", values=[part_of("text/plain", b"42", last_value=True)])
    )
    assert not result.isError
    assert texts(result) == [
        "status: ok · cell 1 · 12 ms",
        "[stdout]\nhello\n",
        "[stderr]\ncareful\n",
        "[last value]\n42",
    ]


def test_a_figure_is_an_image_part_and_a_table_its_plain_text():
    values = [
        part_of("image/png", PNG),
        part_of("text/plain", b"<Figure size 640x480 with 1 Axes>"),
        part_of("text/html", b"<table></table>", last_value=True),
        part_of("text/plain", b"   a\n0  1", last_value=True),
    ]
    result = content.cell_result(outcome_of(values=values))
    [picture] = [block for block in result.content if isinstance(block, ImageContent)]
    assert picture.mimeType == "image/png" and base64.b64decode(picture.data) == PNG
    assert "[last value]\n   a\n0  1" in texts(result)
    assert not any("<table>" in text for text in texts(result))


def test_html_alone_is_kept_and_unknown_types_are_named():
    values = [part_of("text/html", b"<b>hi</b>"), part_of("application/x-thing", b"\x00\x01")]
    result = content.cell_result(outcome_of(values=values))
    assert "[displayed (text/html)]\n<b>hi</b>" in texts(result)
    assert "[displayed (application/x-thing)]\na application/x-thing part of 2 bytes, not shown" in texts(result)


def test_an_error_is_a_tool_error_with_its_traceback():
    error = CellError("ZeroDivisionError", "division by zero", ["Cell In[2], line 1", "----> 1 1/0"])
    result = content.cell_result(outcome_of(status="error", error=error, execution_count=2))
    assert result.isError
    assert texts(result)[-1] == (
        "[error]\nZeroDivisionError: division by zero\n\nTraceback:\nCell In[2], line 1\n----> 1 1/0"
    )


def test_a_timeout_says_the_session_stays():
    result = content.cell_result(outcome_of(status="timeout", execution_count=0))
    assert result.isError
    assert texts(result)[0].startswith("status: timeout · 12 ms\nthe call was interrupted")


def test_long_output_is_cut_with_a_note():
    result = content.cell_result(outcome_of(stdout=b"x" * (content.MAX_TEXT_CHARS + 10)))
    [stdout] = [text for text in texts(result) if text.startswith("[stdout]")]
    assert stdout.endswith("[... 10 more characters cut; write long output to a file and read the part you need]")


def test_undecodable_output_is_replaced_not_refused():
    result = content.cell_result(outcome_of(stdout=b"caf\xe9"))
    assert "[stdout]\ncaf\ufffd" in texts(result)


def test_an_execution_shows_its_verdict_output_and_images():
    result = content.execution_result(
        result_of(execution_of(), stdout=b"done\n", files={"plot.png": PNG, "data.csv": b"a,b\n"})
    )
    assert not result.isError
    assert texts(result) == [
        "status: COMPLETED · exit 0 · 40 ms",
        "[stdout]\ndone\n",
        "[output files]\ndata.csv (4 bytes)\nplot.png (24 bytes)",
    ]
    assert [block.mimeType for block in result.content if isinstance(block, ImageContent)] == ["image/png"]


@pytest.mark.parametrize(
    "execution",
    [
        execution_of(status="FAILED", exit_code=1, error_code="RUNTIME_ERROR"),
        execution_of(status="COMPLETED", exit_code=3),
        execution_of(status="FAILED", error_code="TIMEOUT", error_message="past 20000 ms"),
    ],
)
def test_a_failed_execution_is_a_tool_error(execution):
    result = content.execution_result(result_of(execution))
    assert result.isError
    if execution.error_code:
        assert f"error: {execution.error_code}" in texts(result)[0]


def test_a_file_is_text_an_image_or_a_blob():
    assert texts(content.file_result("s1", "notes.txt", b"hello")) == ["hello"]
    [picture] = content.file_result("s1", "out/plot.png", PNG).content
    assert isinstance(picture, ImageContent) and picture.mimeType == "image/png"
    note, blob = content.file_result("s1", "data.bin", b"\xff\x00").content
    assert isinstance(note, TextContent) and "2 bytes" in note.text
    assert isinstance(blob, EmbeddedResource)
    assert base64.b64decode(blob.resource.blob) == b"\xff\x00"  # type: ignore[union-attr]
    assert str(blob.resource.uri) == "sandbox-session://s1/data.bin"


def test_a_file_too_big_is_a_tool_error():
    result = content.file_result("s1", "big.txt", b"x" * (content.MAX_FILE_BYTES + 1))
    assert result.isError and "more than" in texts(result)[0]


@pytest.mark.parametrize(
    ("check", "argument"),
    [
        (lambda: content.check_language("ruby"), "language"),
        (lambda: content.check_code("  \n"), "code"),
        (lambda: content.check_packages(["pandas", "two words"], "python"), "packages"),
        (lambda: content.check_packages(["x"] * 51, "python"), "packages"),
        (lambda: content.check_timeout_ms(0), "timeout_ms"),
        (lambda: content.check_positive("idle_timeout_seconds", -1), "idle_timeout_seconds"),
        (lambda: content.check_session_id(" "), "session_id"),
        (lambda: content.check_path("../etc/passwd"), "path"),
        (lambda: content.check_path("/etc/passwd"), "path"),
        (lambda: content.check_path(""), "path"),
        (lambda: content.decode_content("not base64!", "base64"), "content"),
        (lambda: content.decode_content("x", "hex"), "encoding"),
        (lambda: content.check_files({"a/../../b": "x"}), "files"),
    ],
)
def test_bad_arguments_name_the_argument(check, argument):
    with pytest.raises(ArgumentError) as caught:
        check()
    assert caught.value.argument == argument
    assert str(caught.value).startswith(f"argument {argument!r}: ")


def test_good_arguments_pass():
    assert content.check_path("/workspace/output/in.csv") == "/workspace/output/in.csv"
    assert content.check_path("/workspace") == "/workspace"
    assert content.check_path("data/in.csv") == "data/in.csv"
    assert content.decode_content(base64.b64encode(PNG).decode(), "base64") == PNG
    assert content.decode_content("héllo", "text") == "héllo".encode()
    assert content.check_files({"lib/util.py": "x = 1"}) == {"lib/util.py": b"x = 1"}
    assert content.check_packages([" pandas==2.2 "], "python") == ["pandas==2.2"]


def test_the_tools_and_their_arguments_are_described():
    # No call reaches the address: listing tools is the server's own.
    with Client("127.0.0.1:9", "demo", "") as client:
        server = build_server(SandboxTools(client))
        tools = {tool.name: tool for tool in anyio.run(server.list_tools)}
    assert set(tools) == {
        "run_code",
        "open_session",
        "run_in_session",
        "close_session",
        "list_sessions",
        "restart_session",
        "put_file",
        "get_file",
        "list_files",
    }
    run_code = tools["run_code"].inputSchema
    assert run_code["required"] == ["language", "code"]
    assert run_code["properties"]["language"]["enum"] == ["python", "node"]
    for tool in tools.values():
        assert tool.description and len(tool.description) > 60
        for name, schema in tool.inputSchema["properties"].items():
            assert schema.get("description"), f"{tool.name}.{name} has no description"


CONNECTION = ["--url", "127.0.0.1:9", "--tenant", "demo", "--key", "k"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--http", "--host", "0.0.0.0"], "--host 0.0.0.0 is not a loopback address"),
        (["--http", "--host", "mesh.invalid"], "add --allow-remote"),
        (["--port", "9000"], "--port is for --http only"),
        (["--allow-remote"], "--allow-remote is for --http only"),
    ],
)
def test_mcp_refuses_a_remote_host_without_allow_remote(arguments, message):
    result = CliRunner().invoke(main, [*CONNECTION, "mcp", *arguments])
    assert result.exit_code == 2
    assert message in result.stderr


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("[::1]", True), ("localhost", True), ("0.0.0.0", False)],
)
def test_loopback_hosts(host, loopback):
    assert is_loopback(host) is loopback
