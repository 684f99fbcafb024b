"""The metric names a PromQL expression reads, and the expressions the deploy files hold."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent.parent
RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
# Label lists of aggregations and vector matching: `by (job)`, `on (instance)`, ...
_LABEL_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w$.])([A-Za-z_:][\w:]*)\b(?!\s*\()")
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan", "by", "without"})


def metric_names(expr: str) -> set[str]:
    """Return the metric names `expr` selects (functions, labels and keywords excluded)."""
    text = _STRING.sub(" ", expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _LABEL_LIST.sub(" ", text)
    names = {m.group(1) for m in _IDENTIFIER.finditer(text)}
    # Numbers with exponents (1e3) and Grafana variables ($job) are not names.
    return {n for n in names if n.lower() not in _KEYWORDS and not re.fullmatch(r"e\d+", n)}


def rule_expressions() -> Iterator[tuple[str, str]]:
    """Yield (alert name, expression) of every rule in rules.yml."""
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            yield rule.get("alert") or rule["record"], rule["expr"]


def _targets(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("expr"), str):
            yield node["expr"]
        for value in node.values():
            yield from _targets(value)
    elif isinstance(node, list):
        for value in node:
            yield from _targets(value)


def dashboard_expressions() -> Iterator[tuple[str, str]]:
    """Yield (dashboard file, expression) of every panel query of every dashboard."""
    for path in sorted(DASHBOARDS.glob("*.json")):
        for expr in _targets(json.loads(path.read_text())):
            yield path.name, expr
