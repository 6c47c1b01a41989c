"""The ``cio-async`` command line (also ``python -m cio_async``).

A program of its own on top of the SDK: ``_main`` holds the parser and the table of
subcommands, one module each (``_demo``, ``_serve``, ``_import_cmd``). The importer
behind ``cio-async import`` is ``_import`` and the modules it names.
"""

from ._main import build_parser, main

__all__ = ["build_parser", "main"]
