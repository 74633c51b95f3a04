"""sandboxctl's exit codes, summary line, events as JSON and safe output paths."""

from __future__ import annotations

import dataclasses
import io
import json
import time

import pytest

from sandbox.common.v1 import execution_pb2 as common
from sandbox.control.v1 import control_pb2 as pb
from sandbox_mesh.display import PhaseSpinner, exit_code_for, human_bytes, output_path, summary_line, write_under
from sandbox_mesh.events import Execution, Output, event_json, event_of


def record(status: int, error: int = 0, exit_code: int = 0, message: str = "") -> Execution:
    return Execution.of(
        pb.Execution(
            execution_id="ex-1",
            language=common.LANGUAGE_PYTHON,
            status=status,
            error_code=error,
            exit_code=exit_code,
            error_message=message,
            usage=common.Usage(wall_ms=1200, cpu_seconds=0.4, peak_memory_bytes=12 * 1024 * 1024),
        )
    )


@pytest.mark.parametrize(
    ("status", "error", "exit_code", "expected"),
    [
        (common.EXECUTION_STATUS_COMPLETED, 0, 0, 0),
        (common.EXECUTION_STATUS_FAILED, common.ERROR_CODE_RUNTIME_ERROR, 3, 3),
        (common.EXECUTION_STATUS_FAILED, common.ERROR_CODE_RUNTIME_ERROR, -1, 1),
        (common.EXECUTION_STATUS_FAILED, common.ERROR_CODE_TIMEOUT, -1, 124),
        (common.EXECUTION_STATUS_FAILED, common.ERROR_CODE_MEMORY_LIMIT, 137, 125),
        (common.EXECUTION_STATUS_FAILED, common.ERROR_CODE_PACKAGE_NOT_FOUND, -1, 125),
        (common.EXECUTION_STATUS_CANCELLED, common.ERROR_CODE_CANCELLED, -1, 130),
    ],
)
def test_exit_codes(status, error, exit_code, expected):
    assert exit_code_for(record(status, error, exit_code)) == expected


def test_the_summary_uses_names_never_numbers():
    line = summary_line(record(common.EXECUTION_STATUS_FAILED, common.ERROR_CODE_TIMEOUT, -1, "time limit"))
    assert line == "FAILED TIMEOUT exit -1 · wall 1.20s · cpu 0.40s · peak 12.0 MiB · ex-1: time limit"
    assert summary_line(record(common.EXECUTION_STATUS_COMPLETED)).startswith("COMPLETED exit 0 ·")
    assert human_bytes(512) == "512 B" and human_bytes(3 * 1024**3) == "3.0 GiB"


def test_events_as_json_lines():
    status = event_of(pb.ExecuteEvent(status=pb.StatusChange(status=common.EXECUTION_STATUS_RUNNING, elapsed_ms=5)))
    assert event_json(status) == {"kind": "status", "status": "RUNNING", "elapsed_ms": 5}
    text = event_json(event_of(pb.ExecuteEvent(stdout=pb.OutputChunk(data=b"hi\n"))))
    assert text == {"kind": "output", "stream": "stdout", "data": "hi\n", "step_index": 0}
    binary = event_json(Output("stderr", b"\xff", 0))
    assert binary["data_hex"] == "ff"
    finished = event_json(event_of(pb.ExecuteEvent(finished=pb.Execution(execution_id="e", status=4))))
    assert finished["execution"]["status"] == "COMPLETED" and finished["execution"]["error_code"] is None
    json.dumps(finished)


@pytest.mark.parametrize("bad", ["../x", "/etc/passwd", "a/../../b", "", "a\\..\\b"])
def test_output_paths_stay_inside(tmp_path, bad):
    with pytest.raises(ValueError, match="refusing"):
        output_path(tmp_path, bad)


def test_output_paths_nest(tmp_path):
    assert output_path(tmp_path, "charts/a.png") == tmp_path / "charts" / "a.png"


def test_the_spinner_draws_nothing_when_piped():
    err, out = io.StringIO(), io.BytesIO()
    spinner = PhaseSpinner(err, enabled=False)
    spinner.start()
    spinner.phase("RUNNING")
    spinner.write(out, b"hello\n")
    spinner.stop()
    assert err.getvalue() == "" and out.getvalue() == b"hello\n"


def test_the_spinner_clears_its_line_before_output():
    err, out = io.StringIO(), io.BytesIO()
    spinner = PhaseSpinner(err, enabled=True, interval=0.01)
    spinner.start()
    spinner.phase("RUNNING")
    deadline = time.monotonic() + 5
    while "RUNNING" not in err.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)
    spinner.write(out, b"partial")
    spinner.stop()
    assert err.getvalue().endswith("\r\x1b[K") and out.getvalue() == b"partial"


def test_records_are_plain_data():
    assert dataclasses.asdict(record(common.EXECUTION_STATUS_COMPLETED))["language"] == "python"


@pytest.mark.parametrize("hostile", ["../x", "/etc/x", "a/../../x", "link/x", "link/deeper/x", "file/x", "ln"])
def test_write_under_never_leaves_the_folder(tmp_path, hostile):
    folder = tmp_path / "out"
    outside = tmp_path / "outside"
    outside.mkdir()
    folder.mkdir()
    (folder / "link").symlink_to(outside)
    (folder / "ln").symlink_to(outside / "target")
    (folder / "file").write_text("a file, not a folder")
    with pytest.raises(ValueError, match="refusing to write"):
        write_under(folder, hostile, [b"data"])
    assert list(outside.iterdir()) == [] and not (tmp_path / "x").exists()


def test_write_under_writes_nested_files(tmp_path):
    target = write_under(tmp_path / "out", "charts/2024/a.txt", [b"a", b"b"])
    assert target == tmp_path / "out" / "charts" / "2024" / "a.txt" and target.read_bytes() == b"ab"
    assert write_under(tmp_path / "out", "charts/2024/a.txt", [b"new"]).read_bytes() == b"new"
