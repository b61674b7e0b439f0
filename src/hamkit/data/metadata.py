"""Readers for label files: HAM10000 metadata, ISIC 2018 Task 3 ground truth, and any labels CSV.

Each returns a list of :class:`ImageRecord`. The HAM10000 and ISIC 2018 formats use the seven
classes of :mod:`hamkit.classes`; a generic labels file (:func:`read_label_table`: an image
column, a label column with any class names, and any grouping columns, or one-hot class columns)
uses the classes its rows hold. Every record carries its class list, so ``record.label`` is its
index in that list. Every problem (missing file or column, unknown diagnosis, duplicate
``image_id``, a ground-truth row that is not one-hot) raises :class:`~hamkit.errors.DataError`
naming the file and the line.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hamkit.classes import CLASS_CODES, ISIC_COLUMNS, class_index, order_classes
from hamkit.errors import DataError

__all__ = [
    "ImageRecord",
    "METADATA_COLUMNS",
    "IMAGE_COLUMNS",
    "LABEL_COLUMNS",
    "read_metadata",
    "read_isic_groundtruth",
    "read_label_table",
    "read_labels",
    "classes_of",
    "labels_of",
]

IMAGE_COLUMNS: tuple[str, ...] = (
    "image_id",
    "image",
    "isic_id",
    "image_name",
    "img_id",
    "file_name",
    "filename",
    "file",
)
"""Column names a generic labels file's image column is recognised by, in order of preference."""

LABEL_COLUMNS: tuple[str, ...] = ("label", "dx", "diagnosis", "class", "target")
"""Column names a generic labels file's label column is recognised by, in order of preference."""

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")

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
        dx: The class name, one of :attr:`classes` (a HAM10000 ``dx`` code by default).
        lesion_id: The lesion the image shows (several images may show one lesion), or
            ``None`` where the source has no lesion ids (ISIC ground-truth CSVs).
        dx_type: How the diagnosis was confirmed (histo, follow_up, consensus, confocal).
        age: Age in years, ``None`` where the metadata leaves it empty.
        sex: ``male``, ``female`` or ``unknown``.
        localization: Body site.
        classes: The class set :attr:`label` indexes: the seven HAM10000 codes by default, or
            the classes of the labels file the record was read from.
        keys: More grouping keys as ``(name, value)`` pairs, e.g. ``(("patient_id", "P7"),)``:
            a split keeps images that share any key together (see :attr:`group_keys`).
        source: The data set the image comes from (e.g. ``"HAM10000"``), ``""`` if unknown.
        licence: The image's licence (e.g. ``"CC-BY-NC"``), ``""`` if unknown.
        diagnosis: The diagnosis as the source spells it, where a reader mapped it onto
            :attr:`dx` (e.g. ``"seborrheic keratosis"`` read as ``bkl``); ``""`` otherwise.

    Examples:
        >>> ImageRecord("ISIC_0024306", "nv", "HAM_0000550").label
        1
        >>> ImageRecord("a", "other", classes=("mel", "other")).label
        1
    """

    image_id: str
    dx: str
    lesion_id: str | None = None
    dx_type: str = ""
    age: float | None = None
    sex: str = ""
    localization: str = ""
    classes: tuple[str, ...] = field(default=CLASS_CODES, repr=False)
    keys: tuple[tuple[str, str], ...] = ()
    source: str = ""
    licence: str = ""
    diagnosis: str = ""

    @property
    def label(self) -> int:
        """The index of :attr:`dx` in :attr:`classes`."""
        if self.classes == CLASS_CODES:
            return class_index(self.dx)
        try:
            return self.classes.index(self.dx)
        except ValueError:
            raise DataError(
                f"image {self.image_id!r}: label {self.dx!r} is not one of its classes {list(self.classes)}"
            ) from None

    @property
    def group_keys(self) -> dict[str, str]:
        """Every grouping key of the image: ``lesion_id`` (when known) and :attr:`keys`."""
        keys = {"lesion_id": self.lesion_id} if self.lesion_id else {}
        keys.update((name, value) for name, value in self.keys if value)
        return keys

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


def read_metadata(path: str | os.PathLike[str], *, group_by: Sequence[str] = ()) -> list[ImageRecord]:
    """Read a ``HAM10000_metadata.csv`` file.

    Args:
        path: The CSV with columns ``lesion_id,image_id,dx,dx_type,age,sex,localization``
            (the last four are optional; ``age`` may be empty).
        group_by: More columns to group by (e.g. a ``patient_id`` column added to the file),
            recorded in :attr:`ImageRecord.keys`.

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
    group_columns = _group_columns(group_by, exclude=("lesion_id",))
    for line, row in _open_rows(path, (*_REQUIRED_METADATA, *group_columns)):
        for column in _REQUIRED_METADATA:
            if not row.get(column):
                raise DataError(f"{path}, line {line}: empty {column}")
        dx = row["dx"].lower()
        if dx not in CLASS_CODES:
            raise DataError(
                f"{path}, line {line}: unknown dx code {row['dx']!r}; expected one of {', '.join(CLASS_CODES)}, "
                "or read the file as your own class set with label_column='dx' (CLI: --label-column dx)"
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
                keys=tuple((c, row[c]) for c in group_columns),
            )
        )
        lines.append(line)
    if not records:
        raise DataError(f"{path}: the file has a header but no rows")
    _check_unique(path, records, lines)
    return records


def _group_columns(group_by: Sequence[str] | str, *, exclude: Sequence[str] = ()) -> tuple[str, ...]:
    """The grouping columns asked for, without repeats and without those read anyway."""
    if isinstance(group_by, str):
        group_by = [part for part in group_by.split(",")]
    names = [str(c).strip() for c in group_by]
    if any(not n for n in names):
        raise DataError(f"group_by: empty column name in {list(group_by)}")
    return tuple(n for n in dict.fromkeys(names) if n not in exclude)


def read_isic_groundtruth(path: str | os.PathLike[str]) -> list[ImageRecord]:
    """Read an ISIC 2018 Task 3 ground-truth CSV (one-hot ``image,MEL,NV,BCC,AKIEC,BKL,DF,VASC``).

    The class of a row is the argmax of its one-hot columns, as in the original report; a row must be
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


def _image_id(text: str) -> str:
    """An image column's value as an image id: a file name loses its folder and image suffix."""
    name = text.replace("\\", "/").rsplit("/", 1)[-1]
    stem, dot, suffix = name.rpartition(".")
    return stem if dot and f".{suffix.lower()}" in _IMAGE_SUFFIXES else name


def _pick_column(
    path: Path, header: Sequence[str], given: str | None, known: Sequence[str], what: str, flag: str
) -> str:
    if given is not None:
        if given not in header:
            raise DataError(f"{path}: no column {given!r} for the {what}; the columns are {', '.join(header)}")
        return given
    for name in known:
        if name in header:
            return name
    lowered = {h.lower(): h for h in header}
    for name in known:
        if name in lowered:
            return lowered[name]
    raise DataError(
        f"{path}: which column holds the {what}? None of {', '.join(known)} is there (columns: "
        f"{', '.join(header)}); name it with {flag}"
    )


def _one_hot_columns(path: Path, header: Sequence[str], image_column: str, rows: list[dict[str, str]]) -> list[str]:
    """The class columns of a one-hot ground-truth table (every other column 0/1), or ``[]``."""
    columns = [h for h in header if h != image_column]
    if not columns or not rows:
        return []
    for row in rows:
        values = [row.get(c, "") for c in columns]
        try:
            numbers = [float(v) for v in values]
        except ValueError:
            return []
        if any(x not in (0.0, 1.0) for x in numbers) or sum(numbers) != 1.0:
            return []
    return columns


def read_label_table(
    path: str | os.PathLike[str],
    *,
    label_column: str | None = None,
    image_column: str | None = None,
    group_by: Sequence[str] | str = (),
    classes: Sequence[str] | None = None,
    source: str = "",
) -> list[ImageRecord]:
    """Read a generic labels file: one row per image, any set of classes.

    The file is a CSV (comma, tab or semicolon) with an image column (``image_id``, ``image``,
    ``isic_id``, ``image_name``... or ``image_column``; a file name loses its folder and
    suffix) and either a label column (``label``, ``dx``, ``diagnosis``... or ``label_column``)
    holding any class names, or one-hot class columns (the ISIC ground-truth layout, e.g. ISIC
    2019's ``image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK``; their names are lower-cased and only
    classes with an image are kept). A ``lesion_id`` column is read as the lesion, a ``source``
    column as the data set or institution (``hold_out_source``), a ``licence`` (or ``license``)
    column as the licence; ``group_by``
    names more grouping columns (e.g. ``patient_id``). Optional ``dx_type``, ``age``, ``sex`` and
    ``localization`` columns are kept.

    Args:
        path: The labels file.
        label_column: The column of class names (default: found by name).
        image_column: The column of image ids or file names (default: found by name).
        group_by: Grouping columns (a list, or one comma-separated string).
        classes: The class list, in index order (default: the classes of the rows, in
            :func:`~hamkit.classes.order_classes` order). Every label must be one of them.
        source: The data set name recorded in each record without a ``source`` value.

    Returns:
        One :class:`ImageRecord` per row, all with the same ``classes``.

    Raises:
        DataError: A missing file or column, an empty image id or label, a label not in
            ``classes``, fewer than two classes, or an image listed twice.

    Examples:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "labels.csv"
        >>> _ = p.write_text("file,finding,patient\\na.jpg,melanoma,P1\\nb.jpg,other,P1\\n")
        >>> records = read_label_table(p, label_column="finding", group_by=["patient"])
        >>> records[0].classes, records[1].label, records[1].group_keys
        (('melanoma', 'other'), 1, {'patient': 'P1'})
    """
    path = Path(path)
    group_columns = _group_columns(group_by, exclude=("lesion_id",))
    rows_with_lines = list(_open_rows(path, group_columns))
    text, delimiter = read_table_text(path)
    header = [h.strip() for h in next(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), [])]
    if not rows_with_lines:
        raise DataError(f"{path}: the file has a header but no rows")
    rows = [row for _, row in rows_with_lines]
    image_col = _pick_column(path, header, image_column, IMAGE_COLUMNS, "image ids", "--image-column / image_column=")
    one_hot: list[str] = []
    if label_column is None and not any(h.lower() in LABEL_COLUMNS for h in header):
        one_hot = _one_hot_columns(path, header, image_col, rows)
    label_col = (
        ""
        if one_hot
        else _pick_column(path, header, label_column, LABEL_COLUMNS, "labels", "--label-column / label_column=")
    )
    labels: list[str] = []
    for line, row in rows_with_lines:
        if not row.get(image_col):
            raise DataError(f"{path}, line {line}: empty {image_col}")
        if one_hot:
            labels.append(next(c for c in one_hot if float(row[c]) == 1.0).lower())
        else:
            value = row.get(label_col, "")
            if not value:
                raise DataError(
                    f"{path}, line {line}: empty {label_col}; every image needs a label (or remove the row)"
                )
            labels.append(value)
    if classes is None:
        names = order_classes(labels)
    else:
        names = tuple(str(c) for c in classes)
        unknown = sorted(set(labels) - set(names))
        if unknown:
            raise DataError(
                f"{path}: label(s) {', '.join(map(repr, unknown[:10]))} are not among the classes {list(names)}"
            )
    if len(names) < 2:
        raise DataError(f"{path}: every row has the label {names[0]!r}; a classifier needs at least two classes")
    records = []
    lines = []
    for (line, row), label in zip(rows_with_lines, labels, strict=True):
        records.append(
            ImageRecord(
                image_id=_image_id(row[image_col]),
                dx=label,
                lesion_id=row.get("lesion_id") or None,
                dx_type=row.get("dx_type", ""),
                age=_parse_age(path, line, row.get("age", "")),
                sex=row.get("sex", ""),
                localization=row.get("localization", ""),
                classes=names,
                keys=tuple((c, row[c]) for c in group_columns),
                source=row.get("source") or source,
                licence=row.get("licence") or row.get("license") or "",
            )
        )
        lines.append(line)
    _check_unique(path, records, lines)
    return records


def read_labels(
    path: str | os.PathLike[str],
    *,
    label_column: str | None = None,
    image_column: str | None = None,
    group_by: Sequence[str] | str = (),
    classes: Sequence[str] | None = None,
) -> list[ImageRecord]:
    """Read any label file, telling the formats apart by their header.

    A HAM10000 metadata CSV and an ISIC 2018 Task 3 ground-truth CSV are read with the seven
    HAM10000 classes (:func:`read_metadata`, :func:`read_isic_groundtruth`); any other file, or
    any file when ``label_column``, ``image_column`` or ``classes`` is given, is read by
    :func:`read_label_table` with the classes of its rows.

    Args:
        path: The label file.
        label_column: The column of class names of a generic labels file.
        image_column: The column of image ids of a generic labels file.
        group_by: More grouping columns (e.g. ``["patient_id"]``); images that share a value of
            any of them (or a ``lesion_id``) stay in one split.
        classes: The class list in index order (generic files only).

    Returns:
        One :class:`ImageRecord` per row.

    Raises:
        DataError: As the readers do.
    """
    path = Path(path)
    text, delimiter = read_table_text(path)
    header = {name.strip() for name in next(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), [])}
    generic = label_column is not None or image_column is not None or classes is not None
    if not generic and {"image_id", "dx", "lesion_id"} <= header:
        return read_metadata(path, group_by=group_by)
    if not generic and not group_by and header >= {"image", *ISIC_COLUMNS}:
        return read_isic_groundtruth(path)
    return read_label_table(
        path, label_column=label_column, image_column=image_column, group_by=group_by, classes=classes
    )


def classes_of(records: Sequence[ImageRecord]) -> tuple[str, ...]:
    """The class list shared by ``records`` (the HAM10000 codes for an empty list).

    Raises:
        DataError: The records come from label files with different class lists.
    """
    if not records:
        return CLASS_CODES
    first = records[0].classes
    for record in records:
        if record.classes != first:
            raise DataError(
                f"the images have different class lists ({list(first)} and {list(record.classes)}); "
                "read them with one classes= list"
            )
    return first


def labels_of(records: Sequence[ImageRecord]) -> list[int]:
    """Return the class index of every record (in its class list).

    Examples:
        >>> labels_of([ImageRecord("a", "vasc"), ImageRecord("b", "mel")])
        [6, 0]
    """
    return [record.label for record in records]
