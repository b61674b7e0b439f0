"""Readers for the dermoscopy data sets users download, behind one entry point, :func:`read_dataset`.

Each reader turns a release's own label files into :class:`~hamkit.data.metadata.ImageRecord`
objects that carry the image id, the diagnosis mapped onto hamkit's class codes where it maps
(:func:`map_diagnosis`; the source's spelling stays in ``diagnosis``, and a diagnosis that maps
onto none of them keeps its own lower-cased name as its class), the grouping keys the release has
(``lesion_id`` and ``keys`` such as ``patient_id``), the source data set and the licence. The
file and column names are those of the releases (see docs/datasets.md for each layout, where to
download it, and what could not be confirmed).

==================  ==============================================================  =====================
kind                recognised by                                                   group keys
==================  ==============================================================  =====================
``ham10000``        ``HAM10000_metadata.csv``                                       lesion
``isic2019``        ``ISIC_2019_Training_GroundTruth.csv`` (+ ``_Metadata.csv``)    lesion
``isic2020``        ``ISIC_2020_Training_GroundTruth[_v2].csv``                     patient, lesion (v2)
``bcn20000``        ``bcn20000_metadata*.csv`` (an ISIC Archive export)             lesion, patient
``isic_archive``    ``metadata.csv`` with ``isic_id`` (``isic-cli`` export)          lesion, patient
``pad_ufes_20``     ``metadata.csv`` with ``img_id`` and ``diagnostic``             patient, lesion
``derm7pt``         ``meta/meta.csv`` with ``derm`` and ``diagnosis``               case
``ph2``             ``PH2_dataset.txt``                                             (one image per lesion)
``ddi``             ``ddi_metadata.csv``                                            (none published)
``fitzpatrick17k``  ``fitzpatrick17k.csv``                                          (none published)
==================  ==============================================================  =====================
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from hamkit.classes import CLASS_CODES, order_classes
from hamkit.data.metadata import ImageRecord, read_metadata, read_table_text
from hamkit.errors import DataError

__all__ = ["DATASET_KINDS", "DatasetKind", "detect_dataset", "map_diagnosis", "read_dataset"]

_RULES: tuple[tuple[str, str], ...] = (
    (r"melanoma|^mel$|lentigo[\s_-]*maligna", "mel"),
    (r"basal[\s_-]*cell[\s_-]*carcinoma|^bcc$", "bcc"),
    (r"actinic[\s_-]*keratos|^ak$|^ack$|^akiec$|bowen|intraepithelial[\s_-]*carcinoma", "akiec"),
    (r"squamous[\s_-]*cell[\s_-]*carcinoma|^scc$", "scc"),
    (
        r"seborr?h?eic[\s_-]*keratos|benign[\s_-]*keratos|solar[\s_-]*lentig|lentigo|lichen[\s_-]*planus[\s_-]*like|lichenoid[\s_-]*keratos"
        r"|^sek$|^bkl$",
        "bkl",
    ),
    (r"dermatofibroma|^df$", "df"),
    (r"vascular|angioma|angiokeratoma|pyogenic[\s_-]*granuloma|hemorrhage|^vasc$", "vasc"),
    (r"nev(us|i)|naevus|^nv$|^nev$", "nv"),
)
"""Diagnosis text (lower-cased) -> class code; the first rule that matches wins."""


def map_diagnosis(text: str) -> str:
    """Map a diagnosis as a data set spells it onto hamkit's class codes.

    The seven HAM10000 codes, plus ``scc`` (squamous cell carcinoma, which ISIC 2019, PAD-UFES-20
    and others label apart from ``akiec``). A diagnosis that fits none of them is returned
    lower-cased and stripped, as a class of its own: the caller sees it and decides.

    Examples:
        >>> [map_diagnosis(t) for t in ("Melanoma in situ", "SEK", "clark nevus", "solar lentigo", "psoriasis")]
        ['mel', 'bkl', 'nv', 'bkl', 'psoriasis']
    """
    lowered = " ".join(str(text).strip().lower().split())
    for pattern, code in _RULES:
        if re.search(pattern, lowered):
            return code
    return lowered


@dataclass(frozen=True)
class DatasetKind:
    """One data set layout: how it is recognised and read.

    Attributes:
        name: The ``kind`` string, e.g. ``"isic2019"``.
        title: The data set's name, recorded as each record's ``source``.
        licence: The licence of its images (an ISIC Archive export names it per image).
        url: Where to download it.
        find: Returns the label file that identifies the layout under a root, or ``None``.
        read: Reads the records from that file.
    """

    name: str
    title: str
    licence: str
    url: str
    find: Callable[[Path], Path | None]
    read: Callable[[Path], list[ImageRecord]]


def _rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """``(line, row)`` of a CSV (any delimiter hamkit reads), header names stripped; an unnamed
    first column (a pandas index) is kept as ``""``."""
    text, delimiter = read_table_text(path)
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        reader.fieldnames = [name.strip() for name in (reader.fieldnames or [])]
        for line, row in enumerate(reader, start=2):
            yield line, {k: (v or "").strip() for k, v in row.items() if k is not None}
    except csv.Error as err:
        raise DataError(f"{path}: not a readable CSV file ({err})") from err


def _header(path: Path) -> list[str]:
    try:
        text, delimiter = read_table_text(path)
    except DataError:
        return []
    return [h.strip() for h in next(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), [])]


def _need(path: Path, row: dict[str, str], line: int, *columns: str) -> list[str]:
    missing = [c for c in columns if c not in row]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(row)}")
    values = [row[c] for c in columns]
    for column, value in zip(columns, values, strict=True):
        if not value:
            raise DataError(f"{path}, line {line}: empty {column}")
    return values


def _stem(name: str) -> str:
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[0] if "." in base else base


def _finish(records: list[ImageRecord], path: Path) -> list[ImageRecord]:
    """Give every record the class list of the set and check that image ids are unique."""
    if not records:
        raise DataError(f"{path}: the file has a header but no rows")
    seen: set[str] = set()
    for record in records:
        if record.image_id in seen:
            raise DataError(f"{path}: image {record.image_id!r} is listed twice; each image must be listed once")
        seen.add(record.image_id)
    classes = order_classes(r.dx for r in records)
    if set(classes) <= set(CLASS_CODES):
        classes = CLASS_CODES
    return [replace(r, classes=classes) for r in records]


def _find_file(root: Path, *patterns: str, depth: int = 3) -> Path | None:
    """The first file under ``root`` (at most ``depth`` folders down) whose name matches a pattern."""
    for pattern in patterns:
        for level in range(depth + 1):
            hits = sorted(root.glob("/".join(["*"] * level + [pattern])))
            hits = [h for h in hits if h.is_file() and not any(p.startswith(".") for p in h.relative_to(root).parts)]
            if hits:
                return hits[0]
    return None


def _find_with_columns(root: Path, pattern: str, *columns: str) -> Path | None:
    for level in range(4):
        for path in sorted(root.glob("/".join(["*"] * level + [pattern]))):
            if path.is_file() and set(columns) <= set(_header(path)):
                return path
    return None


# ---------------------------------------------------------------------------------------- readers
def _read_ham10000(path: Path) -> list[ImageRecord]:
    return [replace(r, source="HAM10000", licence=DATASET_KINDS["ham10000"].licence) for r in read_metadata(path)]


_ISIC2019_CODES = {"mel": "mel", "nv": "nv", "bcc": "bcc", "ak": "akiec", "bkl": "bkl", "df": "df", "vasc": "vasc"}


def _read_isic2019(path: Path) -> list[ImageRecord]:
    lesions: dict[str, str] = {}
    meta = path.with_name(path.name.replace("GroundTruth", "Metadata"))
    if meta != path and meta.is_file():
        for _, row in _rows(meta):
            if row.get("image") and row.get("lesion_id"):
                lesions[row["image"]] = row["lesion_id"]
    records = []
    for line, row in _rows(path):
        (image,) = _need(path, row, line, "image")
        columns = [c for c in row if c != "image"]
        try:
            hot = [c for c in columns if float(row[c]) == 1.0]
        except ValueError:
            raise DataError(f"{path}, line {line}: the class columns must be numbers 0 or 1") from None
        if len(hot) != 1:
            raise DataError(
                f"{path}, line {line}: row for {image!r} is not one-hot; exactly one class column must be 1"
            )
        code = _ISIC2019_CODES.get(hot[0].lower(), hot[0].lower())
        records.append(
            ImageRecord(
                image,
                code,
                lesions.get(image),
                source="ISIC 2019",
                licence=DATASET_KINDS["isic2019"].licence,
                diagnosis=hot[0],
            )
        )
    return _finish(records, path)


def _read_isic2020(path: Path) -> list[ImageRecord]:
    records = []
    for line, row in _rows(path):
        (image,) = _need(path, row, line, "image_name")
        text = row.get("diagnosis", "")
        if not text or text == "unknown":
            (target,) = _need(path, row, line, "target")
            text = "melanoma" if target == "1" else (text or "unknown")
        keys = tuple((c, row[c]) for c in ("patient_id",) if row.get(c))
        records.append(
            ImageRecord(
                image,
                map_diagnosis(text),
                row.get("lesion_id") or None,
                sex=row.get("sex", ""),
                localization=row.get("anatom_site_general_challenge", ""),
                keys=keys,
                source="ISIC 2020",
                licence=DATASET_KINDS["isic2020"].licence,
                diagnosis=text,
            )
        )
    return _finish(records, path)


def _archive_reader(source: str) -> Callable[[Path], list[ImageRecord]]:
    def read(path: Path) -> list[ImageRecord]:
        records = []
        for line, row in _rows(path):
            (image,) = _need(path, row, line, "isic_id")
            text = next((row[c] for c in ("diagnosis_3", "diagnosis", "diagnosis_2", "diagnosis_1") if row.get(c)), "")
            if not text:
                raise DataError(f"{path}, line {line}: image {image!r} has no diagnosis (diagnosis_1..3 are empty)")
            records.append(
                ImageRecord(
                    image,
                    map_diagnosis(text),
                    row.get("lesion_id") or None,
                    sex=row.get("sex", ""),
                    localization=row.get("anatom_site_general", ""),
                    keys=tuple((c, row[c]) for c in ("patient_id",) if row.get(c)),
                    source=source,
                    licence=row.get("copyright_license", ""),
                    diagnosis=text,
                )
            )
        return _finish(records, path)

    return read


_PAD_CODES = {"ACK": "akiec", "BCC": "bcc", "MEL": "mel", "NEV": "nv", "SCC": "scc", "SEK": "bkl"}


def _read_pad(path: Path) -> list[ImageRecord]:
    records = []
    for line, row in _rows(path):
        image, text = _need(path, row, line, "img_id", "diagnostic")
        patient = row.get("patient_id", "")
        lesion = row.get("lesion_id", "")
        records.append(
            ImageRecord(
                _stem(image),
                _PAD_CODES.get(text.upper(), map_diagnosis(text)),
                f"{patient}/{lesion}" if lesion else None,  # lesion numbers restart per patient
                sex=row.get("gender", "").lower(),
                localization=row.get("region", "").lower(),
                keys=(("patient_id", patient),) if patient else (),
                source="PAD-UFES-20",
                licence=DATASET_KINDS["pad_ufes_20"].licence,
                diagnosis=text,
            )
        )
    return _finish(records, path)


def _read_derm7pt(path: Path) -> list[ImageRecord]:
    records = []
    for line, row in _rows(path):
        image, text = _need(path, row, line, "derm", "diagnosis")
        case = row.get("case_num", "")
        records.append(
            ImageRecord(
                _stem(image),
                map_diagnosis(text),
                f"derm7pt-{case}" if case else None,
                localization=row.get("location", ""),
                sex=row.get("sex", ""),
                source="Derm7pt",
                licence=DATASET_KINDS["derm7pt"].licence,
                diagnosis=text,
            )
        )
    return _finish(records, path)


_PH2_CLINICAL = {"0": "common nevus", "1": "atypical nevus", "2": "melanoma"}


def _read_ph2(path: Path) -> list[ImageRecord]:
    """``PH2_dataset.txt``: a ``||``-separated table; column 1 the name (``IMD002``), column 3 the
    clinical diagnosis (0 common nevus, 1 atypical nevus, 2 melanoma)."""
    text, _ = read_table_text(path)
    records = []
    for line, raw in enumerate(text.splitlines(), start=1):
        cells = [c.strip() for c in raw.split("||")]
        if len(cells) < 4 or not re.fullmatch(r"IMD\d+", cells[1]):
            continue  # the header, the legend below the table, blank lines
        diagnosis = _PH2_CLINICAL.get(cells[3])
        if diagnosis is None:
            raise DataError(f"{path}, line {line}: clinical diagnosis {cells[3]!r} of {cells[1]} is not 0, 1 or 2")
        records.append(
            ImageRecord(
                cells[1],
                map_diagnosis(diagnosis),
                source="PH2",
                licence=DATASET_KINDS["ph2"].licence,
                diagnosis=diagnosis,
            )
        )
    return _finish(records, path)


def _read_ddi(path: Path) -> list[ImageRecord]:
    records = []
    for line, row in _rows(path):
        image, text = _need(path, row, line, "DDI_file", "disease")
        records.append(
            ImageRecord(
                _stem(image),
                map_diagnosis(text.replace("-", " ")),
                source="DDI",
                licence=DATASET_KINDS["ddi"].licence,
                diagnosis=text,
            )
        )
    return _finish(records, path)


def _read_fitzpatrick(path: Path) -> list[ImageRecord]:
    records = []
    for line, row in _rows(path):
        image, text = _need(path, row, line, "md5hash", "label")
        records.append(
            ImageRecord(
                image,
                map_diagnosis(text),
                source="Fitzpatrick17k",
                licence=DATASET_KINDS["fitzpatrick17k"].licence,
                diagnosis=text,
            )
        )
    return _finish(records, path)


DATASET_KINDS: dict[str, DatasetKind] = {}
"""Every layout :func:`read_dataset` knows, by kind, in the order detection tries them."""


def _register(kind: DatasetKind) -> None:
    DATASET_KINDS[kind.name] = kind


_register(
    DatasetKind(
        "ham10000",
        "HAM10000",
        "CC BY-NC-SA 4.0",
        "https://doi.org/10.7910/DVN/DBW86T",
        lambda root: _find_file(root, "HAM10000_metadata.csv", "HAM10000_metadata.tab", depth=1),
        _read_ham10000,
    )
)
_register(
    DatasetKind(
        "isic2019",
        "ISIC 2019",
        "CC BY-NC 4.0",
        "https://challenge.isic-archive.com/data/#2019",
        lambda root: _find_file(root, "ISIC_2019_Training_GroundTruth.csv"),
        _read_isic2019,
    )
)
_register(
    DatasetKind(
        "isic2020",
        "ISIC 2020",
        "CC BY-NC 4.0",
        "https://challenge.isic-archive.com/data/#2020",
        lambda root: (
            _find_file(root, "ISIC_2020_Training_GroundTruth_v2.csv", "ISIC_2020_Training_GroundTruth.csv")
            or _find_with_columns(root, "train.csv", "image_name", "patient_id", "target")
        ),
        _read_isic2020,
    )
)
_register(
    DatasetKind(
        "bcn20000",
        "BCN20000",
        "per image (copyright_license column; CC BY-NC 4.0 in the ISIC Archive collection)",
        "https://api.isic-archive.com/collections/249/",
        lambda root: _find_file(root, "bcn20000_metadata*.csv", "BCN20000_metadata*.csv"),
        _archive_reader("BCN20000"),
    )
)
_register(
    DatasetKind(
        "pad_ufes_20",
        "PAD-UFES-20",
        "CC BY 4.0",
        "https://data.mendeley.com/datasets/zr7vgbcyr2/1",
        lambda root: _find_with_columns(root, "metadata.csv", "img_id", "diagnostic"),
        _read_pad,
    )
)
_register(
    DatasetKind(
        "derm7pt",
        "Derm7pt",
        "research use under the download page's terms",
        "https://derm.cs.sfu.ca/Download.html",
        lambda root: _find_with_columns(root, "meta.csv", "derm", "diagnosis"),
        _read_derm7pt,
    )
)
_register(
    DatasetKind(
        "ph2",
        "PH2",
        "research and education only, no redistribution",
        "https://www.fc.up.pt/addi/ph2%20database.html",
        lambda root: _find_file(root, "PH2_dataset.txt"),
        _read_ph2,
    )
)
_register(
    DatasetKind(
        "ddi",
        "DDI",
        "Stanford AIMI research use agreement",
        "https://stanfordaimi.azurewebsites.net/datasets/35866158-8196-48d8-87bf-50dca81df965",
        lambda root: _find_file(root, "ddi_metadata.csv"),
        _read_ddi,
    )
)
_register(
    DatasetKind(
        "fitzpatrick17k",
        "Fitzpatrick17k",
        "CC BY-NC-SA 3.0 (annotations); images from their source atlases",
        "https://github.com/mattgroh/fitzpatrick17k",
        lambda root: _find_file(root, "fitzpatrick17k.csv"),
        _read_fitzpatrick,
    )
)
_register(
    DatasetKind(
        "isic_archive",
        "ISIC Archive",
        "per image (copyright_license column)",
        "https://www.isic-archive.com (isic-cli: isic metadata download)",
        lambda root: _find_with_columns(root, "*.csv", "isic_id", "copyright_license"),
        _archive_reader("ISIC Archive"),
    )
)


def detect_dataset(root: str | os.PathLike[str]) -> tuple[str, Path]:
    """Which layout ``root`` holds, and its label file.

    Raises:
        DataError: ``root`` is not a folder, or no known layout is found; the message lists them.
    """
    folder = Path(root)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder")
    for name, kind in DATASET_KINDS.items():
        found = kind.find(folder)
        if found is not None:
            return name, found
    raise DataError(
        f"{folder}: no known data set layout found (looked for {', '.join(DATASET_KINDS)}); pass kind= "
        "(CLI: --kind), or read your own labels file with read_labels(path, label_column=...)"
    )


def read_dataset(root: str | os.PathLike[str], kind: str | None = None) -> list[ImageRecord]:
    """Read the records of a downloaded data set, detecting its layout (or as ``kind``).

    Args:
        root: The folder the release was unpacked into (its label file may be up to three
            folders down).
        kind: One of :data:`DATASET_KINDS` (``"ham10000"``, ``"isic2019"``, ``"isic2020"``,
            ``"bcn20000"``, ``"pad_ufes_20"``, ``"derm7pt"``, ``"ph2"``, ``"ddi"``,
            ``"fitzpatrick17k"``, ``"isic_archive"``), or ``None`` to detect it.

    Returns:
        One record per image, with the set's class list (the seven HAM10000 codes when every
        diagnosis maps onto them), group keys, ``source``, ``licence`` and the original
        ``diagnosis``. Pass them to ``SkinDataset.from_folder(root, labels=records)``,
        ``split_dataset`` or an estimator's ``fit(..., labels=records)``.

    Raises:
        DataError: An unknown ``kind``, no label file of that kind, or a file that does not read
            as the release's format (the message names the file and line).

    Examples:
        >>> import tempfile, pathlib
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (root / "ddi_metadata.csv").write_text(
        ...     ",DDI_ID,DDI_file,skin_tone,malignant,disease\\n0,1,000001.png,56,True,melanoma-in-situ\\n"
        ...     "1,2,000002.png,12,False,seborrheic-keratosis\\n")
        >>> records = read_dataset(root)
        >>> [(r.image_id, r.dx, r.source, r.diagnosis) for r in records][0]
        ('000001', 'mel', 'DDI', 'melanoma-in-situ')
    """
    folder = Path(root)
    if kind is None:
        kind, path = detect_dataset(folder)
    else:
        if kind not in DATASET_KINDS:
            raise DataError(f"unknown data set kind {kind!r}; the kinds are {', '.join(DATASET_KINDS)}")
        if not folder.is_dir():
            raise DataError(f"{folder}: not a folder")
        found = DATASET_KINDS[kind].find(folder)
        if found is None:
            raise DataError(f"{folder}: no {DATASET_KINDS[kind].title} label file found; see docs/datasets.md")
        path = found
    return DATASET_KINDS[kind].read(path)
