"""``cio-async import``: bulk-load people and events through the batching pipeline.

``run_import`` sets a run up before anything is sent (credentials, the input and its
format, the errors file, the checkpoint to resume from) and hands it to
``ImportRun``. The pieces:

- ``_import_read``: the input's bytes into records, records into operations;
- ``_import_lines``: the line formats (NDJSON objects, CSV rows) and their rules;
- ``_import_settle``: the settlement window, the checkpoint and the errors file;
- ``_import_report``: the status line, rejected lines and the summary;
- ``_import_run``: the run in the event loop (client, signals, draining).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import stat
import sys
from collections.abc import Mapping
from typing import Any, BinaryIO, TextIO

from .._config import ClientConfig
from .._errors import ConfigurationError
from ._import_options import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REJECTED,
    EXIT_USAGE,
    FORMATS,
    ImportOptions,
    UsageError,
)
from ._import_read import LineParser, detect_format, read_head, records_of
from ._import_report import Report
from ._import_run import ImportRun
from ._import_settle import Checkpoint, CheckpointFile, ErrorsFile, Window, prepare_errors_file

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_REJECTED",
    "EXIT_USAGE",
    "FORMATS",
    "ImportOptions",
    "run_import",
]


def run_import(
    opts: ImportOptions,
    *,
    env: Mapping[str, str] | None = None,
    stdin: BinaryIO | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run ``cio-async import`` and return its exit status."""
    out = out or sys.stdout
    err = err or sys.stderr
    env = os.environ if env is None else env
    try:
        return _run(opts, env, stdin, out, err)
    except UsageError as exc:
        print(f"cio-async import: error: {exc}", file=err)
        return EXIT_USAGE


def _run(
    opts: ImportOptions,
    env: Mapping[str, str],
    stdin: BinaryIO | None,
    out: TextIO,
    err: TextIO,
) -> int:
    config = None
    if not opts.dry_run and not opts.sandbox:
        config = _config_from_env(opts, env)
    if opts.path == "-":
        # Unbuffered, and not sys.stdin itself: the reader thread may be blocked in a
        # read when the process exits, and a buffered stream's lock would then make
        # interpreter shutdown abort.
        source: BinaryIO = (
            stdin if stdin is not None else io.FileIO(sys.stdin.fileno(), "rb", closefd=False)
        )
        total: int | None = None
    else:
        try:
            source = open(opts.path, "rb", buffering=0)  # noqa: SIM115 - closed below
        except OSError as exc:
            raise UsageError(f"cannot read {opts.path}: {exc.strerror or exc}") from None
        st = os.fstat(source.fileno())
        total = st.st_size if stat.S_ISREG(st.st_mode) else None
    try:
        try:
            head = read_head(source)
        except OSError as exc:
            raise UsageError(f"cannot read {opts.path}: {exc.strerror or exc}") from None
        fmt = detect_format(opts, head)
        errors_path, checkpoint_path = _state_paths(opts)
        resume = _resume(opts, fmt, checkpoint_path)
        errors = None
        if errors_path is not None:
            try:
                prepare_errors_file(errors_path, resume.next_line if resume else 1)
            except OSError as exc:
                raise UsageError(f"cannot write the errors file {errors_path}: {exc}") from None
            errors = ErrorsFile(errors_path)
        window = Window(resume, max_records=max(1000, opts.batch_size * (opts.concurrency + 2)))
        checkpoint = None
        if checkpoint_path is not None:
            checkpoint = CheckpointFile(
                checkpoint_path,
                input_path=opts.path,
                fmt=fmt,
                options=opts.lines,
                errors=errors,
                saved_line=window.resume_line,
            )
        run = ImportRun(
            opts,
            records=records_of(fmt, head, source),
            parser=LineParser(opts.path, fmt, opts.lines, head),
            window=window,
            report=Report(opts, out=out, err=err, errors_path=errors_path),
            errors=errors,
            checkpoint=checkpoint,
            config=config,
            total_bytes=total,
        )
        try:
            return asyncio.run(run.run())
        except KeyboardInterrupt:  # before the loop's own handler was installed
            print("interrupted", file=err)
            return EXIT_INTERRUPTED
    finally:
        if source is not stdin and opts.path != "-":
            source.close()


def _state_paths(opts: ImportOptions) -> tuple[str | None, str | None]:
    """The errors file and the checkpoint of this run, checked writable."""
    # Dry runs and sandbox runs leave no state behind unless asked to: a sandbox
    # checkpoint would make the real import skip what only the sandbox received.
    quiet_state = opts.dry_run or opts.sandbox
    errors_path = opts.errors or (None if quiet_state else _default_path(opts, ".errors.ndjson"))
    if opts.path == "-" and errors_path is None and not quiet_state:
        errors_path = "cio-import-errors.ndjson"
    checkpoint_path = None
    if not opts.dry_run:
        checkpoint_path = opts.checkpoint or (
            None if opts.sandbox else _default_path(opts, ".checkpoint.json")
        )
    # Before anything is changed on disk.
    if errors_path is not None:
        _check_writable(errors_path, "errors file", "--errors")
    if checkpoint_path is not None:
        _check_writable(checkpoint_path, "checkpoint", "--checkpoint")
    return errors_path, checkpoint_path


def _resume(opts: ImportOptions, fmt: str, checkpoint_path: str | None) -> Checkpoint | None:
    """The checkpoint to resume from, if any (``--restart`` removes it now)."""
    if checkpoint_path is None:
        return None
    if opts.restart:
        # Gone now, not at the first save: a crash before it must not leave the
        # old checkpoint to skip lines this run was asked to send again.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(checkpoint_path)
        return None
    resume = Checkpoint.load(checkpoint_path)
    if resume is not None and (resume.format != fmt or resume.options != opts.lines.as_dict()):
        raise UsageError(
            f"the checkpoint {checkpoint_path} was written for --format "
            f"{resume.format} with {_describe_options(resume.options)}; this run "
            f"reads --format {fmt} with {_describe_options(opts.lines.as_dict())}. "
            "Use the same options to resume, or pass --restart."
        )
    return resume


def _config_from_env(opts: ImportOptions, env: Mapping[str, str]) -> ClientConfig:
    e = dict(env)
    missing = [k for k in ("CUSTOMERIO_SITE_ID", "CUSTOMERIO_TRACK_API_KEY") if not e.get(k)]
    if missing:
        raise UsageError(
            f"missing Customer.io credentials: set {' and '.join(missing)} (Track API "
            "credentials, in Customer.io under Settings > API Credentials), and "
            "CUSTOMERIO_REGION=eu for an EU account. Or check the file with --dry-run, "
            "or try it against a local stand-in with --sandbox."
        )
    if opts.region is not None:
        e["CUSTOMERIO_REGION"] = opts.region
    try:
        return ClientConfig.from_env(e)
    except ConfigurationError as exc:
        text = str(exc)
        if text.startswith("region"):
            text = f"CUSTOMERIO_REGION: {text}"
        elif text.startswith("track_url") or text.startswith("app_url"):
            text = f"CUSTOMERIO_{text.split(' ', 1)[0].upper()}: {text}"
        raise UsageError(f"bad configuration: {text}") from None


def _default_path(opts: ImportOptions, suffix: str) -> str | None:
    if opts.path == "-":
        return None
    return opts.path + suffix


def _check_writable(path: str, what: str, option: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        problem = "does not exist"
    elif not os.access(directory, os.W_OK):
        problem = "is not writable"
    else:
        return
    raise UsageError(
        f"cannot write the {what} {path}: {directory} {problem} (pass {option} FILE elsewhere)"
    )


def _describe_options(options: Mapping[str, Any]) -> str:
    given = [f"--{k.replace('_', '-')} {v}" for k, v in options.items() if v is not None]
    return " ".join(given) if given else "no --kind/--event/--id-column"
