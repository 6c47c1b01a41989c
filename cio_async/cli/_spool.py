"""``cio-async spool inspect DIR`` and ``cio-async spool drain DIR`` for operators."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import asdict
from typing import Any, TextIO

from ..spool._inspect import inspect_dir


def add_parser(sub: Any) -> None:
    """Register the ``spool`` subcommand on the top-level subparsers."""
    spool = sub.add_parser(
        "spool",
        help="inspect or drain a durable spool directory",
        description="Operate on a spool directory (AsyncCustomerIO(spool=DIR)).",
    )
    cmds = spool.add_subparsers(dest="spool_command", required=True)
    ins = cmds.add_parser(
        "inspect",
        help="what is in DIR, per file: operations, bytes, age, live or orphaned",
    )
    ins.add_argument("directory")
    ins.add_argument("--json", action="store_true", help="one JSON object per file")
    drain = cmds.add_parser(
        "drain",
        help="deliver what dead processes left in DIR, then exit",
        description="Adopt every spool file no live process holds, deliver its "
        "operations (credentials from CUSTOMERIO_SITE_ID / CUSTOMERIO_TRACK_API_KEY / "
        "CUSTOMERIO_REGION / CUSTOMERIO_TRACK_URL) and exit: 0 when all were "
        "delivered, 1 when some failed or remain.",
    )
    drain.add_argument("directory")
    drain.add_argument(
        "--timeout", type=float, default=600.0, help="give up after this many seconds"
    )
    spool.set_defaults(run=run)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def inspect_command(directory: str, as_json: bool, out: TextIO) -> int:
    reports = inspect_dir(directory)
    if as_json:
        for r in reports:
            out.write(json.dumps(asdict(r)) + "\n")
        return 0
    if not reports:
        out.write(f"{directory}: no spool files\n")
        return 0
    out.write(
        f"{'state':<10} {'ops':>9} {'payload':>11} {'on disk':>11} {'oldest':>7} "
        f"{'newest':>7} {'pid':>7}  file\n"
    )
    for r in reports:
        out.write(
            f"{r.state:<10} {r.operations:>9,} {r.payload_bytes:>11,} {r.disk_bytes:>11,} "
            f"{_age(r.oldest_age):>7} {_age(r.newest_age):>7} {r.pid or '-':>7}  {r.path}"
            + (f"  ({r.error})" if r.error else "")
            + "\n"
        )
    total = sum(r.operations for r in reports)
    orphaned = sum(r.operations for r in reports if r.state == "orphan")
    out.write(f"{total:,} operations in {len(reports)} file(s); {orphaned:,} orphaned\n")
    return 0


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run ``cio-async spool ...``."""
    out = out or sys.stdout
    if args.spool_command == "inspect":
        return inspect_command(args.directory, args.json, out)
    if args.spool_command == "drain":
        from ..spool._drain import drain

        status: int = asyncio.run(drain(args.directory, args.timeout, out))
        return status
    return 2
