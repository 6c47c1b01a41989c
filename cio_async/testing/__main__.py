"""Run the stand-in server: ``python -m cio_async.testing [--port 8089 ...]``."""

import sys

from ..cli import main

raise SystemExit(main(["serve-stand-in", *sys.argv[1:]]))
