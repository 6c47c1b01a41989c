"""The ``cio-async`` command: its parser and the table of subcommands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import _demo, _import_cmd, _relay, _serve, _spool

#: The subcommands, in the order ``--help`` lists them. Each is a module whose
#: ``add_parser(subparsers)`` adds its parser and sets ``run(args) -> exit status``
#: as its default; a new subcommand is a new module added here.
COMMANDS = (_demo, _serve, _import_cmd, _spool, _relay)


def build_parser() -> argparse.ArgumentParser:
    """The ``cio-async`` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="cio-async",
        description="cio_async: the asyncio Customer.io SDK, from the command line.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cio-async`` console script."""
    args = build_parser().parse_args(argv)
    try:
        status: int = args.run(args)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
