"""sandboxctl's tables (sandbox_mesh/display.py print_table), piped."""

from __future__ import annotations

from sandbox_mesh.display import print_table


def test_a_piped_table_keeps_long_cells_whole_and_shows_markup_and_escapes_as_text(capsys):
    long_title = "t" * 300
    print_table(
        [("ID", "left"), ("N", "right"), ("TITLE", "left")],
        [["a", "5", "[bold]x[/bold] \x1b[31mred"], ["bb", "123", long_title]],
    )
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["ID", "a", "bb"]
    assert "[bold]x[/bold] ?[31mred" in lines[1]  # no markup applied, no escape sent
    assert long_title in lines[2]  # not cut to a terminal's width
    assert lines[1].index("5") == lines[2].index("123") + 2  # right-justified numbers
