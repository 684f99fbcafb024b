"""`awfdrs report`: the summary report as a table, and `--plot FILE.png` of MTTR and volume.

matplotlib is needed only for `--plot` (the `reports` extra, part of `.[dev]`); the API and the
table never import it.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from devstack.cli_render import render
from devstack.operator_cli import CliError, _call, _common, credentials

COLUMNS = (
    "group",
    "opened",
    "auto_resolved",
    "escalated",
    "killed",
    "mtta_p50",
    "mtta_p90",
    "mttr_p50",
    "mttr_p90",
    "events/incident",
    "callback_calls",
    "pages_sent",
)


def add_report_command(commands: Any) -> None:
    """Register `report` on the parser."""
    report = commands.add_parser(
        "report", help="MTTA, MTTR and volumes of incidents over a window", parents=_common()
    )
    report.add_argument("--since", help="ISO 8601 start (default: 7 days before --until)")
    report.add_argument("--until", help="ISO 8601 end, exclusive (default: now)")
    report.add_argument("--group-by", choices=("workflow", "vendor", "error_code"))
    report.add_argument("--bucket", choices=("hour", "day"), default="day")
    report.add_argument("--plot", type=Path, metavar="FILE.png", help="also draw MTTR and volume")


def run_report_command(args: argparse.Namespace) -> None:
    """Fetch the summary, print it, and draw it when asked."""
    url, key = credentials(args)
    params = {"bucket": args.bucket}
    params |= {k: v for k in ("since", "until", "group_by") if (v := getattr(args, k))}
    with httpx.Client(
        base_url=f"{url}/api/v1", timeout=30, headers={"Authorization": f"Bearer {key}"}
    ) as http:
        summary = _call(http, "GET", "/reports/summary", params=params)
    if args.json:
        sys.stdout.write(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(f"incidents first seen {summary['since']} – {summary['until']}\n")
        sys.stdout.write(render(table_rows(summary), COLUMNS) + "\n")
    if args.plot:
        plot(summary, args.plot)
        sys.stderr.write(f"wrote {args.plot}\n")


def table_rows(summary: dict[str, Any]) -> list[dict[str, str]]:
    """The total first, then each group, as printable cells."""
    rows = [_cells("(all)", summary["total"])]
    return rows + [_cells(row["key"] or "(none)", row) for row in summary["groups"]]


def _cells(name: str, row: dict[str, Any]) -> dict[str, str]:
    events = row["events_per_incident"]
    automatic = _counted(row["resolved_automatically"], row["resolved_automatically_share"])
    return {
        "group": name,
        "opened": str(row["opened"]),
        "auto_resolved": automatic,
        "escalated": _counted(row["escalated"], row["escalated_share"]),
        "killed": str(row["killed"]),
        "mtta_p50": duration(row["mtta_p50_s"]),
        "mtta_p90": duration(row["mtta_p90_s"]),
        "mttr_p50": duration(row["mttr_p50_s"]),
        "mttr_p90": duration(row["mttr_p90_s"]),
        "events/incident": "-" if events is None else f"{events:.1f}",
        "callback_calls": str(row["callback_calls"]),
        "pages_sent": str(row["pages_sent"]),
    }


def _counted(count: int, share: float | None) -> str:
    return f"{count}" if share is None else f"{count} ({share:.0%})"


def duration(seconds: float | None) -> str:
    """Seconds as a person reads them: `45s`, `12m30s`, `3h05m`; `-` for none."""
    if seconds is None:
        return "-"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def plot(summary: dict[str, Any], path: Path) -> None:
    """Draw incidents opened per bucket (bars) and their MTTR p50 (line) into a PNG."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        from matplotlib import pyplot
    except ImportError:
        raise CliError(
            "awfdrs report --plot needs matplotlib: pip install 'awfdrs[reports]'"
        ) from None
    series = summary["series"]
    starts = [datetime.fromisoformat(point["bucket_start"]) for point in series]
    figure, (volume, mttr) = pyplot.subplots(2, 1, sharex=True, figsize=(9, 6))
    try:
        width = 0.8 / 24 if summary.get("bucket") == "hour" else 0.8
        volume.bar(starts, [point["opened"] for point in series], width=width, align="edge")
        volume.set_ylabel("incidents opened")
        volume.set_title(f"AWFDRS incidents {summary['since'][:16]} – {summary['until'][:16]}")
        minutes = [_minutes(point["mttr_p50_s"]) for point in series]
        mttr.plot(starts, minutes, marker="o", color="#dd8452")
        mttr.set_ylabel("MTTR p50 (minutes)")
        mttr.set_xlabel("first seen (UTC)")
        figure.autofmt_xdate()
        figure.tight_layout()
        figure.savefig(path, format="png", dpi=100)
    finally:
        pyplot.close(figure)


def _minutes(seconds: float | None) -> float:
    """Minutes, NaN where no incident of the bucket was resolved (a gap in the line)."""
    return float("nan") if seconds is None else seconds / 60
