"""How the operator CLI prints API answers for people: aligned tables and indented fields."""

from __future__ import annotations

from typing import Any

MAX_CELL = 60


def render(result: Any, columns: tuple[str, ...]) -> str:
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
