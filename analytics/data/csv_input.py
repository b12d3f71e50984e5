"""Reading the small CSV files a site hands the loop (lab genotypes, research opt-outs).

These files come from other systems and are untrusted: whatever is wrong with one (bytes that are
not UTF-8, a NUL, an over-long field, an id that is not an OMOP person_id) is reported as
``file:line: message`` before anything is changed.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path

BIGINT_MAX = 2**63 - 1  # OMOP person_id is a BIGINT in the store
_DIGITS = re.compile(r"[0-9]{1,19}")  # ASCII only: str.isdigit() also takes "²" and "١٢٣"


class CsvFileError(ValueError):
    """A CSV file that cannot be read; the message says where (``file:line: message``)."""


def read_rows(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row with lower-case keys and stripped values) for each data row of ``path``.

    Refuses a file whose header lacks a ``required`` column, or that is not UTF-8 text (a BOM is allowed).
    """
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise CsvFileError(f"{path}:{line}: not UTF-8 text (byte {exc.start + 1} of the file)") from None
    read = 0  # lines handed to the csv module so far: where a csv.Error happened

    def numbered() -> Iterator[str]:
        nonlocal read
        for read, line in enumerate(io.StringIO(text, newline=""), start=1):  # noqa: B007 - read is the count
            yield line

    reader = csv.DictReader(numbered())
    try:
        header = [name.strip().lower() for name in reader.fieldnames or []]
        if not set(required) <= set(header):
            names = ", ".join(required)
            raise CsvFileError(f"{path}:1: the header must name {names}")
        for raw_row in reader:
            row = {key.strip().lower(): (value or "").strip() for key, value in raw_row.items() if isinstance(key, str)}
            yield reader.line_num, row
    except csv.Error as exc:
        raise CsvFileError(f"{path}:{read}: not readable as CSV ({exc})") from None


def person_id(path: Path, line: int, value: str) -> int:
    """``value`` as an OMOP person_id (a whole number from 0 to the BIGINT maximum), or a located error."""
    if not _DIGITS.fullmatch(value) or int(value) > BIGINT_MAX:
        raise CsvFileError(f"{path}:{line}: person_id must be a whole number from 0 to {BIGINT_MAX}")
    return int(value)
