"""The canonical class order of hamkit, shared by every reader, model and report.

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

__all__ = ["CLASS_CODES", "ISIC_COLUMNS", "CLASS_NAMES", "NUM_CLASSES", "class_index"]

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
