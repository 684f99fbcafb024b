"""How the operator CLI prints API answers for people: tables and fields, rich on a terminal.

On a terminal a list is a `rich` table and an object a key/value panel; piped, redirected, with
`--plain`, `NO_COLOR` or `TERM=dumb`, the same data comes as aligned plain text that scripts and
tests read. `--json` never comes through here.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any, TextIO

from rich import box
from rich.console import Console, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

MAX_CELL = 60


def wants_rich(stream: TextIO | None = None, *, plain: bool = False) -> bool:
    """Whether `stream` (default stdout) is a terminal that asked for no plain text."""
    stream = sys.stdout if stream is None else stream
    if plain or "NO_COLOR" in os.environ or os.environ.get("TERM") == "dumb":
        return False
    return stream.isatty()


def render(result: Any, columns: tuple[str, ...], *, plain: bool = False) -> str:
    """Render a list as a table, an object as fields: rich on a terminal, plain text otherwise."""
    if wants_rich(plain=plain):
        return render_rich(result, columns, width=shutil.get_terminal_size().columns)
    return render_plain(result, columns)


def render_plain(result: Any, columns: tuple[str, ...]) -> str:
    """Render a list as an aligned table, or an object as indented `key: value` lines."""
    if isinstance(result, dict):
        return "\n".join(render_fields(result)) or "(empty)"
    rows = [[_cell(item.get(c)) for c in columns] for item in result]
    if not rows:
        return "(none)"
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def render_rich(result: Any, columns: tuple[str, ...], *, width: int = 120) -> str:
    """Render as `rich` draws it on a terminal (colours and box lines), returned as text."""
    console = Console(force_terminal=True, width=width, highlight=False, soft_wrap=False)
    if isinstance(result, dict):
        title = str(result.get("id") or result.get("name") or "")
        body: RenderableType = Panel(
            _field_grid(result) if result else Text("(empty)"),
            title=title or None,
            title_align="left",
            box=box.ROUNDED,
            expand=False,
        )
    elif not result:
        body = Text("(none)", style="dim")
    else:
        body = _table(result, columns)
    with console.capture() as captured:
        console.print(body)
    return captured.get().rstrip("\n")


def _table(items: list[Any], columns: tuple[str, ...]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, header_style="bold cyan", pad_edge=False)
    for column in columns:
        # Ids stay whole, so they can be copied from the table; other long cells wrap.
        table.add_column(column.upper(), no_wrap=column == "id", overflow="fold")
    for item in items:
        table.add_row(*(Text(_cell(item.get(c)), style=_style(item.get(c))) for c in columns))
    return table


def _field_grid(obj: dict[str, Any]) -> Table:
    """Keys in a bold column, values beside them; nested objects as nested grids."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold cyan", no_wrap=True)
    grid.add_column(overflow="fold")
    for key, value in obj.items():
        grid.add_row(key, _field_value(value))
    return grid


def _field_value(value: Any) -> RenderableType:
    if isinstance(value, dict) and value:
        return _field_grid(value)
    if isinstance(value, list) and any(isinstance(item, dict) for item in value):
        rows = Table.grid(padding=(0, 1))
        for item in value:
            entry = _field_grid(item) if isinstance(item, dict) else Text(scalar(item))
            rows.add_row(Text("•", style="dim"), entry)
        return rows
    return Text(scalar(value), style=_style(value))


def _style(value: Any) -> str:
    """Nothing reads dim, so the values that are there stand out."""
    return "dim" if value is None or value == {} or value == [] else ""


def render_fields(obj: dict[str, Any], indent: int = 0) -> list[str]:
    """Return one line per field; nested objects and lists of objects are indented below."""
    pad = "  " * indent
    lines: list[str] = []
    for key, value in obj.items():
        if isinstance(value, dict) and value:
            lines.append(f"{pad}{key}:")
            lines += render_fields(value, indent + 1)
        elif isinstance(value, list) and any(isinstance(item, dict) for item in value):
            lines.append(f"{pad}{key}:")
            lines += _render_items(value, indent + 1)
        else:
            lines.append(f"{pad}{key}: {scalar(value)}")
    return lines


def _render_items(items: list[Any], indent: int) -> list[str]:
    """Render list items as `- ` entries, an object's further fields aligned under its first."""
    pad = "  " * indent
    lines: list[str] = []
    for item in items:
        if not isinstance(item, dict) or not item:
            lines.append(f"{pad}- {scalar(item)}")
            continue
        fields = render_fields(item, indent + 1)
        lines.append(f"{pad}- {fields[0].lstrip()}")
        lines += fields[1:]
    return lines


def scalar(value: Any) -> str:
    """Return a value as a person reads it: text unescaped, `-` for nothing, lists joined."""
    if value is None or value == {} or value == []:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(scalar(item) for item in value)
    return str(value)


def _cell(value: Any) -> str:
    text = scalar(value) if not isinstance(value, dict) else ", ".join(render_fields(value))
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 3] + "..."
