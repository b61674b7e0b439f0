"""The canonical class order of hamkit, shared by every reader, model and report.

These seven are the DEFAULT class set, the one of HAM10000 and ISIC 2018; they are not a limit.
A labels file with another class set (binary melanoma-vs-rest, ISIC 2019's eight, a clinic's
own) carries its own class list, which :func:`order_classes` puts in a stable order and which a
trained model records (see :func:`hamkit.data.read_labels`).

hamkit numbers the seven HAM10000 / ISIC 2018 Task 3 diagnoses in the column order of the
official ISIC 2018 Task 3 ground-truth CSVs (``image,MEL,NV,BCC,AKIEC,BKL,DF,VASC``):

=====  =======  ======================================================================
index  dx code  diagnosis
=====  =======  ======================================================================
0      mel      Melanoma
1      nv       Melanocytic nevus
2      bcc      Basal cell carcinoma
3      akiec    Actinic keratosis / intraepithelial carcinoma (Bowen's disease)
4      bkl      Benign keratosis-like lesion
5      df       Dermatofibroma
6      vasc     Vascular lesion
=====  =======  ======================================================================
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = [
    "CLASS_CODES",
    "ISIC_COLUMNS",
    "CLASS_NAMES",
    "MELANOMA_NAMES",
    "NUM_CLASSES",
    "class_index",
    "melanoma_index",
    "order_classes",
]

CLASS_CODES: tuple[str, ...] = ("mel", "nv", "bcc", "akiec", "bkl", "df", "vasc")
"""The HAM10000 ``dx`` codes, in class-index order."""

ISIC_COLUMNS: tuple[str, ...] = tuple(code.upper() for code in CLASS_CODES)
"""The one-hot column names of the ISIC 2018 Task 3 ground-truth CSVs, in class-index order."""

CLASS_NAMES: tuple[str, ...] = (
    "Melanoma",
    "Melanocytic nevus",
    "Basal cell carcinoma",
    "Actinic keratosis / intraepithelial carcinoma",
    "Benign keratosis-like lesion",
    "Dermatofibroma",
    "Vascular lesion",
)
"""Human-readable diagnosis names, in class-index order."""

NUM_CLASSES: int = len(CLASS_CODES)

_INDEX = {code: i for i, code in enumerate(CLASS_CODES)}


def class_index(code: str) -> int:
    """Return the class index of a ``dx`` code or ISIC column name (case-insensitive).

    Args:
        code: A HAM10000 ``dx`` code such as ``"mel"`` or an ISIC column such as ``"MEL"``.

    Returns:
        The index 0..6 in :data:`CLASS_CODES` order.

    Raises:
        KeyError: ``code`` is not one of the seven diagnoses.

    Examples:
        >>> class_index("nv"), class_index("VASC")
        (1, 6)
    """
    try:
        return _INDEX[code.strip().lower()]
    except KeyError:
        raise KeyError(f"unknown diagnosis code {code!r}; expected one of {', '.join(CLASS_CODES)}") from None


MELANOMA_NAMES: tuple[str, ...] = ("mel", "melanoma")
"""Class names (compared case-insensitively) that hamkit treats as melanoma: the decision rule
protects its recall and reports show its sensitivity, whatever the rest of the class set is."""


def melanoma_index(classes: Sequence[str]) -> int | None:
    """The index of the melanoma class in ``classes``, or ``None`` when the set has none.

    Examples:
        >>> melanoma_index(["other", "MEL"]), melanoma_index(["benign", "malignant"])
        (1, None)
    """
    for i, name in enumerate(classes):
        if str(name).strip().lower() in MELANOMA_NAMES:
            return i
    return None


def order_classes(names: Iterable[str]) -> tuple[str, ...]:
    """A stable order for a class set read from data: the HAM10000 codes that occur, in
    :data:`CLASS_CODES` order (matched case-insensitively), then the other names sorted.

    Examples:
        >>> order_classes(["other", "mel"])
        ('mel', 'other')
        >>> order_classes(["SCC", "NV", "MEL", "AK"])
        ('MEL', 'NV', 'AK', 'SCC')
    """
    unique = list(dict.fromkeys(str(n) for n in names))
    known = sorted((n for n in unique if n.lower() in _INDEX), key=lambda n: _INDEX[n.lower()])
    return (*known, *sorted(n for n in unique if n.lower() not in _INDEX))
