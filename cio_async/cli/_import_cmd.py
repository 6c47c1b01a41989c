"""``cio-async import``: its arguments; the importer itself is ``_import``."""

from __future__ import annotations

import argparse
from typing import Any

from ._import import FORMATS, ImportOptions, run_import
from ._import_lines import KINDS, LineOptions

_IMPORT_EPILOG = """\
line formats
  NDJSON (.ndjson, .jsonl): one JSON object per line. "type" is identify, track
  (or event), page, screen or delete; the person is one of "id", "email",
  "cio_id", "phone" (or "identifiers": {"email": ...}).
    {"type": "identify", "id": "42", "attributes": {"plan": "pro"}}
    {"type": "track", "email": "ada@example.com", "name": "purchase",
     "data": {"amount": 30}, "timestamp": 1700000000}
    {"type": "page", "id": "42", "url": "/pricing"}
    {"type": "screen", "id": "42", "name": "Settings"}
    {"type": "delete", "id": "43"}
  "timestamp" is Unix seconds or ISO 8601 (UTC unless it has an offset). Events
  may carry their own "event_id" (a ULID); otherwise one is derived from the
  input and the line, so a line sent twice is ignored by Customer.io as a repeat.

  CSV (.csv) or TSV (.tsv): a header line, then one --kind operation per row
  (default identify). The person is the --id-column, else the first of id,
  cio_id, email, phone. A timestamp column is the operation's time; track and
  screen rows take their name from a name column (or --event NAME), page rows
  their url from a url column. Every other column is an attribute (identify) or
  event data; values stay strings and empty cells are left out.

resuming
  A checkpoint (FILE.checkpoint.json) records the first line not yet settled
  (delivered, or written to the errors file) and a hash of the input before it.
  Run the same command again to carry on from there; --restart starts over.

exit status
  0 every line delivered    1 some lines rejected (see the errors file)
  2 usage, configuration or input error    3 delivery failed (resume later)
  130 interrupted (Ctrl-C or SIGTERM; resume later)

environment
  CUSTOMERIO_SITE_ID, CUSTOMERIO_TRACK_API_KEY (Track API credentials),
  CUSTOMERIO_REGION (us or eu), CUSTOMERIO_TRACK_URL (another host).
"""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def add_parser(sub: Any) -> None:
    """Register ``import`` with the ``cio-async`` subcommands."""
    imp = sub.add_parser(
        "import",
        help="bulk-load people and events from NDJSON or CSV",
        description="Send every line of FILE (NDJSON, CSV or TSV; - for stdin) to Customer.io\n"
        "through the batching pipeline, at full speed, with a progress bar. Rejected\n"
        "lines go to an errors file with their line number and reason; an interrupted\n"
        "import resumes where it stopped without sending anything twice.",
        epilog=_IMPORT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    imp.add_argument("file", metavar="FILE", help="the input file, or - for stdin")
    imp.add_argument(
        "--format",
        choices=FORMATS,
        help="the input format (default: from the extension; stdin: NDJSON if the "
        "first line is an object, else CSV)",
    )
    imp.add_argument(
        "--kind",
        choices=KINDS,
        help="the operation of lines that name none (CSV: of every row; default identify)",
    )
    imp.add_argument(
        "--event",
        metavar="NAME",
        help="the event name of track/screen lines that name none (CSV: of every row)",
    )
    imp.add_argument("--id-column", metavar="NAME", help="CSV: the column with the person")
    imp.add_argument(
        "--dry-run",
        action="store_true",
        help="check every line and report the bad ones; send nothing, need no credentials",
    )
    imp.add_argument(
        "--errors",
        metavar="FILE",
        help="where rejected lines go, as NDJSON (default: FILE.errors.ndjson)",
    )
    imp.add_argument(
        "--checkpoint",
        metavar="FILE",
        help="where progress is kept for resuming (default: FILE.checkpoint.json; "
        "stdin: none unless given)",
    )
    imp.add_argument(
        "--restart", action="store_true", help="ignore the checkpoint and start from line 1"
    )
    imp.add_argument(
        "--sandbox",
        action="store_true",
        help="send to an embedded local stand-in instead of Customer.io (no credentials)",
    )
    imp.add_argument(
        "--region", choices=("us", "eu"), help="the account's region (default: CUSTOMERIO_REGION)"
    )
    imp.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    imp.add_argument(
        "--batch-size",
        type=_positive_int,
        default=1000,
        metavar="N",
        help="operations per batch request (default 1000; a batch also stays under 475 KB)",
    )
    imp.add_argument(
        "--concurrency",
        type=_positive_int,
        default=8,
        metavar="N",
        help="batch requests in flight at once (default 8)",
    )
    imp.add_argument(
        "--drain-timeout",
        type=_seconds,
        default=5.0,
        metavar="SECONDS",
        help="on Ctrl-C, how long to wait for what is in flight (default 5)",
    )
    imp.add_argument(
        "--checkpoint-interval",
        type=_seconds,
        default=1.0,
        metavar="SECONDS",
        help="how often the checkpoint is saved while running (default 1)",
    )
    imp.add_argument(
        "--retry-timeout",
        type=_seconds,
        default=900.0,
        metavar="SECONDS",
        help="how long to retry a failing batch before stopping with status 3 (default 900)",
    )
    imp.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    opts = ImportOptions(
        path=args.file,
        format=args.format,
        lines=LineOptions(kind=args.kind, event=args.event, id_column=args.id_column),
        dry_run=args.dry_run,
        errors=args.errors,
        checkpoint=args.checkpoint,
        restart=args.restart,
        sandbox=args.sandbox,
        region=args.region,
        quiet=args.quiet,
        batch_size=args.batch_size,
        concurrency=args.concurrency,
        drain_timeout=args.drain_timeout,
        checkpoint_interval=args.checkpoint_interval,
        retry_timeout=args.retry_timeout,
    )
    return run_import(opts)
