"""`sandboxctl session`'s pure parts: when Enter runs a cell, how piped
input splits into cells, how a call's parts are shown (images saved, HTML by
its text/plain sibling, the last value, the error), and exit codes."""

from __future__ import annotations

import io
import pathlib

import pytest

from sandbox_mesh.commands.session_output import CellPrinter, exit_code_of
from sandbox_mesh.commands.session_prompt import cell_complete, cells_of, indentation, is_meta
from sandbox_mesh.session_records import (
    CellAccepted,
    CellError,
    CellFinished,
    CellOutcome,
    CellOutput,
    CellValue,
    ValuePart,
)

PNG = b"\x89PNG\r\n\x1a\nfake"


@pytest.mark.parametrize(
    ("text", "language", "complete"),
    [
        ("x = 1", "python", True),
        ("", "python", True),
        ("for i in range(3):", "python", False),
        ("print(1,", "python", False),
        ("for i in range(3):\n    print(i)", "python", False),
        ("for i in range(3):\n    print(i)\n", "python", True),
        ("x = = 1", "python", True),  # a syntax error: the kernel says so
        ("%files", "python", True),
        ("!ls", "python", True),
        ("console.log(1)", "node", True),
        ("function f() {", "node", False),
        ("[1,", "node", False),
        ("function f() {\n  return 1\n}\n", "node", True),
    ],
)
def test_when_enter_runs_the_cell(text, language, complete):
    assert cell_complete(text, language) is complete


def test_the_next_line_is_indented_after_an_opener():
    assert indentation("    for i in x:", "python") == "        "
    assert indentation("    x = 1", "python") == "    "
    assert indentation("if (a) {", "node") == "    "


def test_piped_cells_are_separated_by_percent_lines():
    lines = ["x = 1\n", "\n", "y = 2\n", "# %%\n", "# %% [markdown]\n", "#%%\n", "x + y\n", "# %%"]
    assert list(cells_of(lines)) == ["x = 1\n\ny = 2\n", "x + y\n"]
    assert list(cells_of(["only\n"])) == ["only\n"]
    assert list(cells_of([])) == []


def test_meta_commands_are_one_line_and_known():
    assert is_meta("%files") and is_meta("  %get a.txt out/\n")
    assert not is_meta("%timeit 1+1") and not is_meta("%files\nx = 1")


def outcome(status="ok", values=(), error=None) -> CellOutcome:
    return CellOutcome("ex-1", status, b"", b"", list(values), error, 1, 0, 5)


def test_the_printer_saves_images_and_prints_text_siblings(tmp_path):
    out, err = io.BytesIO(), io.BytesIO()
    printer = CellPrinter(tmp_path / "images", out, err)
    figure = [ValuePart("text/plain", b"<Figure>", False), ValuePart("image/png", PNG, False)]
    table = [ValuePart("text/html", b"<table/>", True), ValuePart("text/plain", b"   a\n0  1", True)]
    events = [
        CellAccepted("ex-7"),
        CellOutput("stdout", b"partial"),
        *(CellValue(p) for p in figure),
        *(CellValue(p) for p in figure),
        *(CellValue(p) for p in table),
        CellFinished(outcome(values=[*figure, *figure, *table])),
    ]
    for event in events:
        printer.event(event)
    saved = [tmp_path / "images" / "ex-7-1.png", tmp_path / "images" / "ex-7-2.png"]
    assert out.getvalue().decode() == (
        f"partial\n[image saved: {saved[0]}]\n[image saved: {saved[1]}]\nOut:    a\n0  1\n"
    )
    assert all(path.read_bytes() == PNG for path in saved)
    assert err.getvalue() == b""


def test_the_printer_shows_the_error_and_the_status():
    out, err = io.BytesIO(), io.BytesIO()
    printer = CellPrinter(pathlib.Path("no-images"), out, err)  # nothing is saved
    error = CellError("ZeroDivisionError", "division by zero", ["Cell In[1], line 1\n----> 1 1/0"])
    printer.event(CellFinished(outcome("error", error=error)))
    assert err.getvalue().decode() == "Cell In[1], line 1\n----> 1 1/0\nZeroDivisionError: division by zero\n"
    err.truncate(0), err.seek(0)
    printer.event(CellFinished(outcome("timeout")))
    assert "time limit" in err.getvalue().decode()


def test_exit_codes_by_status():
    assert [exit_code_of(outcome(s)) for s in ("ok", "error", "timeout", "kernel_died", "session_ended")] == [
        0,
        1,
        124,
        137,
        125,
    ]
