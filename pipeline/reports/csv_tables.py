"""Writing and reading the CSV tables with stable formatting.

Every cell is formatted from its :class:`~metrics.columns.Column`: floats with the column's
fixed number of decimals (never ``-0.000``, never ``nan``), booleans ``true``/``false``,
date-times ISO 8601, flags sorted and joined by ``;``, missing values as empty cells. Rows are
written with ``\\n`` line ends in UTF-8, so identical inputs give byte-identical files.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from metrics.columns import Column, Kind, names
from metrics.timestamps import EventTime, to_event_time
from pipeline.io.atomic import atomic_open


def format_cell(column: Column, value: object) -> str:
    """The text of one cell (see the module notes)."""
    if value is None:
        return ""
    kind = column.kind
    if kind is Kind.FLOAT:
        number = float(value)  # type: ignore[arg-type]
        if not math.isfinite(number):
            return ""
        text = f"{number:.{column.decimals}f}"
        if text.startswith("-") and not text.strip("-0."):
            text = text[1:]
        return text
    if kind is Kind.INT:
        return str(int(value))  # type: ignore[call-overload]
    if kind is Kind.BOOL:
        return "true" if value else "false"
    if kind is Kind.DATETIME:
        moment = value if isinstance(value, EventTime) else to_event_time(value)
        return "" if moment is None else moment.iso()
    if kind is Kind.FLAGS:
        items = value.split(";") if isinstance(value, str) else value
        return ";".join(sorted({str(getattr(i, "value", i)).strip() for i in items} - {""}))  # type: ignore[union-attr]
    return str(getattr(value, "value", value))


def write_table(path: Path, columns: Sequence[Column], rows: Iterable[Mapping[str, object]]) -> Path:
    """Write ``rows`` (column name -> value; missing keys are empty) as CSV, atomically."""
    with atomic_open(Path(path), "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(names(tuple(columns)))
        for row in rows:
            writer.writerow([format_cell(column, row.get(column.name)) for column in columns])
    return Path(path)


def read_table(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV table written by :func:`write_table`, as text cells keyed by column name.

    Raises
    ------
    ValueError
        If the file has no header or a row has more cells than the header.
    """
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header:
            raise ValueError(f"{path}: empty file, expected a header line")
        rows = []
        for cells in reader:
            if not any(cells):
                continue
            if len(cells) > len(header):
                raise ValueError(f"{path}: line {reader.line_num}: {len(cells)} cells for {len(header)} columns")
            rows.append(dict(zip(header, cells + [""] * (len(header) - len(cells)), strict=True)))
    return rows
