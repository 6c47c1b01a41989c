"""``run_import`` in-process (no subprocess): wrong formats are one clear error.

Synchronous tests: ``run_import`` runs its own event loop, as the command does.
"""

from __future__ import annotations

import io
from pathlib import Path

from cio_async.cli._import import EXIT_OK, EXIT_USAGE, ImportOptions, run_import
from cio_async.cli._import_lines import LineOptions


def dry_run(path: Path, **kw: object) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    opts = ImportOptions(path=str(path), dry_run=True, quiet=True, **kw)  # type: ignore[arg-type]
    code = run_import(opts, env={}, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_csv_read_as_ndjson_is_one_error_with_a_hint(tmp_path: Path) -> None:
    src = tmp_path / "people.ndjson"
    src.write_text("id,plan\n" + "".join(f"{i},pro\n" for i in range(30)))
    code, out, err = dry_run(src)
    assert code == EXIT_USAGE
    assert "the first 20 lines are not JSON objects" in err
    assert "pass --format csv" in err
    assert out.count("is not valid JSON") == 20  # it stopped there, not at line 31


def test_one_bad_first_line_is_only_that_line(tmp_path: Path) -> None:
    src = tmp_path / "people.ndjson"
    src.write_text("garbage\n" + '{"type": "identify", "id": "1"}\n' * 30)
    code, out, _ = dry_run(src)
    assert code == 1
    assert "30 valid (30 identify), 1 invalid" in out


def test_ndjson_read_as_csv_says_so(tmp_path: Path) -> None:
    src = tmp_path / "people.csv"
    src.write_text('{"type": "identify", "id": "1"}\n')
    code, _, err = dry_run(src)
    assert code == EXIT_USAGE
    assert "looks like NDJSON: pass --format ndjson" in err


def test_tsv_and_options_from_the_command_line(tmp_path: Path) -> None:
    src = tmp_path / "views.tsv"
    src.write_text("cio_id\turl\tref\na301\t/pricing\tads\n\n")
    code, out, _ = dry_run(src, lines=LineOptions(kind="page"))
    assert code == EXIT_OK
    assert "1 valid (1 page), 0 invalid, 1 blank" in out


def test_state_files_in_a_missing_directory_are_a_usage_error(tmp_path: Path) -> None:
    src = tmp_path / "people.ndjson"
    src.write_text('{"type": "identify", "id": "1"}\n')
    code, _, err = dry_run(src, errors=str(tmp_path / "no" / "such" / "errors.ndjson"))
    assert code == EXIT_USAGE
    assert "cannot write the errors file" in err and "does not exist" in err
    assert "(pass --errors FILE elsewhere)" in err
