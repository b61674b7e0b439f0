"""Readers for HAM10000 metadata and ISIC 2018 Task 3 ground-truth CSVs.

Both return a list of :class:`ImageRecord` whose ``label`` follows the canonical class order of
:mod:`hamkit.classes`. Every problem (missing file or column, unknown diagnosis, duplicate
``image_id``, a ground-truth row that is not one-hot) raises :class:`~hamkit.errors.DataError`
naming the file and the line.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from hamkit.classes import CLASS_CODES, ISIC_COLUMNS, class_index
from hamkit.errors import DataError

__all__ = [
    "ImageRecord",
    "METADATA_COLUMNS",
    "read_metadata",
    "read_isic_groundtruth",
    "read_labels",
    "labels_of",
]

METADATA_COLUMNS: tuple[str, ...] = (
    "lesion_id",
    "image_id",
    "dx",
    "dx_type",
    "age",
    "sex",
    "localization",
)
"""Columns of ``HAM10000_metadata.csv``; ``lesion_id``, ``image_id`` and ``dx`` are required."""

_REQUIRED_METADATA = ("lesion_id", "image_id", "dx")


@dataclass(frozen=True)
class ImageRecord:
    """One image of a dataset, as described by its metadata.

    Attributes:
        image_id: The image's id, e.g. ``"ISIC_0024306"`` (the file name without extension).
        dx: The diagnosis code, one of :data:`hamkit.classes.CLASS_CODES`.
        lesion_id: The lesion the image shows (several images may show one lesion), or
            ``None`` where the source has no lesion ids (ISIC ground-truth CSVs).
        dx_type: How the diagnosis was confirmed (histo, follow_up, consensus, confocal).
        age: Age in years, ``None`` where the metadata leaves it empty.
        sex: ``male``, ``female`` or ``unknown``.
        localization: Body site.

    Examples:
        >>> ImageRecord("ISIC_0024306", "nv", "HAM_0000550").label
        1
    """

    image_id: str
    dx: str
    lesion_id: str | None = None
    dx_type: str = ""
    age: float | None = None
    sex: str = ""
    localization: str = ""

    @property
    def label(self) -> int:
        """The class index of :attr:`dx` (0..6)."""
        return class_index(self.dx)

    @property
    def group(self) -> str:
        """The grouping key of the image: its lesion id, or its image id when there is none."""
        return self.lesion_id or self.image_id


def read_table_text(path: Path) -> tuple[str, str]:
    """The text of a label table and its delimiter.

    UTF-8 (with or without BOM) is read as such; other bytes are read as Latin-1 / Windows-1252,
    the encoding spreadsheet programs often save. The delimiter is a comma, a tab (Dataverse
    serves ``HAM10000_metadata.tab``) or a semicolon, whichever the header line uses.

    Raises:
        DataError: Missing, unreadable or binary file.
    """
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataError(f"{path}: cannot be read ({err.strerror or err})") from err
    if b"\x00" in data[:65536]:
        raise DataError(f"{path}: a binary file, not a CSV table of labels; pass the metadata CSV")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = data.decode("cp1252")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
    first = text.split("\n", 1)[0]
    counts = {d: first.count(d) for d in (",", "\t", ";")}
    delimiter = max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","
    return text, delimiter


def _open_rows(path: Path, required: Sequence[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(line_number, row)`` of a CSV after checking that its required columns exist."""
    text, delimiter = read_table_text(path)
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = [name.strip() for name in (reader.fieldnames or [])]
    except csv.Error as err:
        raise DataError(f"{path}: not a readable CSV file ({err})") from err
    reader.fieldnames = header
    missing = [name for name in required if name not in header]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(header) or 'none'}; "
            f"expected at least {', '.join(required)}"
        )
    try:
        for line, row in enumerate(reader, start=2):
            yield line, {k: (v or "").strip() for k, v in row.items() if k is not None}
    except csv.Error as err:
        raise DataError(f"{path}: not a readable CSV file ({err})") from err


def _check_unique(path: Path, records: list[ImageRecord], lines: list[int]) -> None:
    seen: dict[str, int] = {}
    for record, line in zip(records, lines, strict=True):
        first = seen.setdefault(record.image_id, line)
        if first != line:
            raise DataError(
                f"{path}: image_id {record.image_id!r} appears twice (lines {first} and {line}); "
                "each image must be listed once"
            )


def _parse_age(path: Path, line: int, text: str) -> float | None:
    if text == "":
        return None
    try:
        age = float(text)
    except ValueError:
        raise DataError(f"{path}, line {line}: age {text!r} is not a number") from None
    return None if math.isnan(age) else age


def read_metadata(path: str | os.PathLike[str]) -> list[ImageRecord]:
    """Read a ``HAM10000_metadata.csv`` file.

    Args:
        path: The CSV with columns ``lesion_id,image_id,dx,dx_type,age,sex,localization``
            (the last four are optional; ``age`` may be empty).

    Returns:
        One :class:`ImageRecord` per row, in file order.

    Raises:
        DataError: The file is missing or unreadable, a required column is missing, a row has an
            empty id, an unknown ``dx`` code or a non-numeric age, or an ``image_id`` repeats.

    Examples:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "meta.csv"
        >>> _ = p.write_text("lesion_id,image_id,dx,dx_type,age,sex,localization\\n"
        ...                  "HAM_1,ISIC_1,mel,histo,,male,back\\n")
        >>> read_metadata(p)[0].label
        0
    """
    path = Path(path)
    records: list[ImageRecord] = []
    lines: list[int] = []
    for line, row in _open_rows(path, _REQUIRED_METADATA):
        for column in _REQUIRED_METADATA:
            if not row.get(column):
                raise DataError(f"{path}, line {line}: empty {column}")
        dx = row["dx"].lower()
        if dx not in CLASS_CODES:
            raise DataError(
                f"{path}, line {line}: unknown dx code {row['dx']!r}; expected one of {', '.join(CLASS_CODES)}"
            )
        records.append(
            ImageRecord(
                image_id=row["image_id"],
                dx=dx,
                lesion_id=row["lesion_id"],
                dx_type=row.get("dx_type", ""),
                age=_parse_age(path, line, row.get("age", "")),
                sex=row.get("sex", ""),
                localization=row.get("localization", ""),
            )
        )
        lines.append(line)
    if not records:
        raise DataError(f"{path}: the file has a header but no rows")
    _check_unique(path, records, lines)
    return records


def read_isic_groundtruth(path: str | os.PathLike[str]) -> list[ImageRecord]:
    """Read an ISIC 2018 Task 3 ground-truth CSV (one-hot ``image,MEL,NV,BCC,AKIEC,BKL,DF,VASC``).

    The class of a row is the argmax of its one-hot columns, as in the seed report; a row must be
    exactly one-hot (one 1, six 0s). These files have no lesion ids, so ``lesion_id`` is ``None``
    and a split groups such images by ``image_id`` alone.

    Args:
        path: The ground-truth CSV.

    Returns:
        One :class:`ImageRecord` per row, in file order.

    Raises:
        DataError: The file or a column is missing, a value is not a number, a row is not one-hot,
            or an image repeats.
    """
    path = Path(path)
    records: list[ImageRecord] = []
    lines: list[int] = []
    for line, row in _open_rows(path, ("image", *ISIC_COLUMNS)):
        if not row["image"]:
            raise DataError(f"{path}, line {line}: empty image")
        try:
            values = [float(row[c]) for c in ISIC_COLUMNS]
        except ValueError:
            raise DataError(
                f"{path}, line {line}: the class columns must be numbers 0 or 1, got "
                + ", ".join(f"{c}={row[c]!r}" for c in ISIC_COLUMNS)
            ) from None
        if sorted(values) != [0.0] * (len(values) - 1) + [1.0]:
            raise DataError(
                f"{path}, line {line}: row for {row['image']!r} is not one-hot "
                f"({', '.join(f'{c}={v:g}' for c, v in zip(ISIC_COLUMNS, values, strict=True))}); "
                "exactly one class column must be 1"
            )
        records.append(ImageRecord(image_id=row["image"], dx=CLASS_CODES[values.index(1.0)]))
        lines.append(line)
    if not records:
        raise DataError(f"{path}: the file has a header but no rows")
    _check_unique(path, records, lines)
    return records


def read_labels(path: str | os.PathLike[str]) -> list[ImageRecord]:
    """Read either kind of label file, telling them apart by their header.

    Args:
        path: A HAM10000 metadata CSV or an ISIC 2018 Task 3 ground-truth CSV.

    Returns:
        The records of :func:`read_metadata` or :func:`read_isic_groundtruth`.

    Raises:
        DataError: As those functions do, or when the header fits neither format.
    """
    path = Path(path)
    text, delimiter = read_table_text(path)
    header = {name.strip() for name in next(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), [])}
    if "dx" in header or "lesion_id" in header:
        return read_metadata(path)
    if "image" in header and set(ISIC_COLUMNS) & header:
        return read_isic_groundtruth(path)
    raise DataError(
        f"{path}: neither a HAM10000 metadata CSV ({','.join(METADATA_COLUMNS)}) nor an ISIC 2018 "
        f"Task 3 ground-truth CSV (image,{','.join(ISIC_COLUMNS)}); found columns {sorted(header)}"
    )


def labels_of(records: Sequence[ImageRecord]) -> list[int]:
    """Return the class index of every record.

    Examples:
        >>> labels_of([ImageRecord("a", "vasc"), ImageRecord("b", "mel")])
        [6, 0]
    """
    return [record.label for record in records]
