"""The tables commands print (cli/tables.py): whole, at any width."""

from owncdn.cli import tables


def test_a_table_wider_than_the_terminal_is_printed_whole(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")
    table = tables.new("nodes")
    for col in ("node", "address", "status"):
        table.add_column(col)
    table.add_row("edge-frankfurt-1", "[2001:db8::1]:8080", "applied: version 12 of production")
    tables.show(table)
    lines = capsys.readouterr().out.splitlines()
    row = next(line for line in lines if line.startswith("edge-"))
    assert row.split(None, 2) == ["edge-frankfurt-1", "[2001:db8::1]:8080", "applied: version 12 of production"]
    assert len(row) > 40 and "…" not in "".join(lines)
    assert lines[1].split() == ["node", "address", "status"] and set(lines[2]) == {"─"}  # Rule 1: a rule, no boxes


def test_a_column_with_a_max_width_folds_within_it(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    table = tables.new()
    table.add_column("release")
    table.add_column("comment", max_width=12, overflow="fold")
    table.add_row("1", "rolled back: the CSS was broken")
    tables.show(table)
    lines = [line.rstrip() for line in capsys.readouterr().out.splitlines()]
    assert lines[2].startswith("1") and all(len(line) <= len("release") + 2 + 12 for line in lines)
    assert " ".join(line[len("release") + 2:].strip() for line in lines[2:]) == "rolled back: the CSS was broken"


def test_tables_in_a_row_are_each_as_wide_as_they_need(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "20")
    narrow, wide = tables.new(), tables.new()
    narrow.add_column("a")
    narrow.add_row("x")
    wide.add_column("origin")
    wide.add_row("http://origin.example.com:8080/some/path")
    tables.show(narrow, wide)
    out = capsys.readouterr().out
    assert "http://origin.example.com:8080/some/path" in out.splitlines()
