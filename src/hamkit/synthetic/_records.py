"""The tabular side of the synthetic dataset: class balance, photo counts, patients, ids.

Shares and value sets follow the real ``HAM10000_metadata.csv`` (10015 images of 7470 lesions).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hamkit.classes import CLASS_CODES

__all__ = [
    "HAM10000_DX_COUNTS",
    "HAM10000_DX_ORDER",
    "MIN_LESIONS_PER_CLASS",
    "Patient",
    "lesion_counts",
    "photo_counts",
    "sample_patients",
    "unique_ids",
]

HAM10000_DX_COUNTS: dict[str, int] = {
    "nv": 6705,
    "mel": 1113,
    "bkl": 1099,
    "bcc": 514,
    "akiec": 327,
    "vasc": 142,
    "df": 115,
}
"""Images per diagnosis in HAM10000 (10015 in all)."""

HAM10000_DX_ORDER: tuple[str, ...] = ("bkl", "nv", "df", "mel", "vasc", "bcc", "akiec")
"""The order in which the diagnoses' rows appear in the official metadata file."""

MIN_LESIONS_PER_CLASS: int = 4
"""Fewest lesions per class (when ``n_lesions`` allows), so each class reaches every split of a
0.75 / 0.125 / 0.125 grouped split."""

_DX_TYPES: dict[str, dict[str, float]] = {
    "mel": {"histo": 1.0},
    "nv": {"follow_up": 0.55, "histo": 0.35, "consensus": 0.08, "confocal": 0.02},
    "bcc": {"histo": 1.0},
    "akiec": {"histo": 1.0},
    "bkl": {"histo": 0.6, "consensus": 0.34, "confocal": 0.06},
    "df": {"histo": 0.5, "consensus": 0.5},
    "vasc": {"histo": 0.5, "consensus": 0.5},
}
_MEAN_AGE: dict[str, float] = {
    "mel": 61.0,
    "nv": 47.0,
    "bcc": 67.0,
    "akiec": 67.0,
    "bkl": 64.0,
    "df": 53.0,
    "vasc": 51.0,
}
_SEXES: dict[str, float] = {"male": 0.54, "female": 0.455, "unknown": 0.005}
_LOCALIZATIONS: dict[str, int] = {
    "back": 2192,
    "lower extremity": 2077,
    "trunk": 1404,
    "upper extremity": 1118,
    "abdomen": 1022,
    "face": 745,
    "chest": 407,
    "foot": 319,
    "unknown": 234,
    "neck": 168,
    "scalp": 128,
    "hand": 90,
    "ear": 56,
    "genital": 48,
    "acral": 7,
}
_MISSING_AGE_SHARE = 0.02


@dataclass(frozen=True)
class Patient:
    """The metadata of one lesion, shared by all its photos (CSV-ready strings).

    Attributes:
        dx: Diagnosis code.
        dx_type: How the diagnosis was confirmed.
        age: Age as written in the CSV (``"45.0"``), or ``""`` where unknown.
        sex: ``male``, ``female`` or ``unknown``.
        localization: Body site.
    """

    dx: str
    dx_type: str
    age: str
    sex: str
    localization: str


def lesion_counts(n_lesions: int, minimum: int = MIN_LESIONS_PER_CLASS) -> dict[str, int]:
    """Split ``n_lesions`` over the classes in HAM10000's proportions, each at least ``minimum``.

    Classes whose share would fall below the floor get exactly the floor; the other classes share
    the remaining lesions in proportion (largest remainders round up). The floor is lowered to
    ``n_lesions // 7`` when there are too few lesions for it.

    Args:
        n_lesions: Number of lesions, at least 7.
        minimum: Fewest lesions per class.

    Returns:
        Lesions per ``dx`` code, in :data:`~hamkit.classes.CLASS_CODES` order, summing to
        ``n_lesions``.

    Examples:
        >>> lesion_counts(150)
        {'mel': 16, 'nv': 98, 'bcc': 7, 'akiec': 5, 'bkl': 16, 'df': 4, 'vasc': 4}
    """
    floor = min(minimum, n_lesions // len(CLASS_CODES))
    shares = np.array([HAM10000_DX_COUNTS[c] for c in CLASS_CODES], dtype=float)
    fixed = np.zeros(len(CLASS_CODES), dtype=bool)  # classes held at the floor
    while True:  # at most 7 rounds: each fixes at least one more class
        budget = n_lesions - floor * int(fixed.sum())
        ideal = np.where(fixed, 0.0, budget * shares / shares[~fixed].sum())
        below = ~fixed & (ideal < floor)
        if not below.any():
            break
        fixed |= below
    counts = np.where(fixed, floor, np.floor(ideal)).astype(int)
    remainders = np.where(fixed, -1.0, ideal - np.floor(ideal))
    for index in np.argsort(-remainders, kind="stable")[: n_lesions - int(counts.sum())]:
        counts[index] += 1  # largest remainders first
    return {code: int(n) for code, n in zip(CLASS_CODES, counts, strict=True)}


def photo_counts(rng: np.random.Generator, n_lesions: int, low: int, high: int) -> np.ndarray:
    """Draw how many photos each lesion gets: ``low`` .. ``high``, each extra photo half as likely.

    Args:
        rng: Source of randomness.
        n_lesions: Number of lesions.
        low: Fewest photos of a lesion (at least 1).
        high: Most photos of a lesion.

    Returns:
        An int array of shape ``(n_lesions,)``.

    Examples:
        >>> photo_counts(np.random.default_rng(0), 5, 1, 3).tolist()
        [2, 1, 1, 1, 2]
    """
    choices = np.arange(low, high + 1)
    weights = 0.5 ** np.arange(choices.size)
    return rng.choice(choices, size=n_lesions, p=weights / weights.sum())


def _pick(rng: np.random.Generator, table: dict[str, float] | dict[str, int], n: int) -> list[str]:
    names = list(table)
    weights = np.array([table[name] for name in names], dtype=float)
    return [names[i] for i in rng.choice(len(names), size=n, p=weights / weights.sum())]


def sample_patients(rng: np.random.Generator, dxs: list[str]) -> list[Patient]:
    """Draw the metadata of lesions with the given diagnoses.

    Ages (multiples of 5, 0..85) centre on each diagnosis's typical age; about 2 % of the lesions
    (at least one) have an empty age, with sex and localization ``unknown``, as in HAM10000.

    Args:
        rng: Source of randomness.
        dxs: The diagnosis of each lesion.

    Returns:
        One :class:`Patient` per lesion, in the same order.

    Examples:
        >>> patients = sample_patients(np.random.default_rng(0), ["mel", "nv"])
        >>> [p.dx for p in patients], all(p.age == "" or p.age.endswith(".0") for p in patients)
        (['mel', 'nv'], True)
    """
    n = len(dxs)
    means = np.array([_MEAN_AGE[dx] for dx in dxs])
    ages = np.clip(np.round(rng.normal(means, 14.0) / 5.0) * 5.0, 0.0, 85.0)
    missing = set(rng.choice(n, size=max(1, round(_MISSING_AGE_SHARE * n)), replace=False).tolist())
    sexes = _pick(rng, _SEXES, n)
    sites = _pick(rng, _LOCALIZATIONS, n)
    dx_types = [_pick(rng, _DX_TYPES[dx], 1)[0] for dx in dxs]
    return [
        Patient(
            dx=dx,
            dx_type=dx_types[i],
            age="" if i in missing else f"{ages[i]:.1f}",
            sex="unknown" if i in missing else sexes[i],
            localization="unknown" if i in missing else sites[i],
        )
        for i, dx in enumerate(dxs)
    ]


def unique_ids(rng: np.random.Generator, n: int, prefix: str, first: int, span: int) -> list[str]:
    """Draw ``n`` distinct ids ``prefix`` + 7 digits, from ``first`` on, in random order.

    Args:
        rng: Source of randomness.
        n: Number of ids.
        prefix: ``"ISIC_"`` or ``"HAM_"``.
        first: Smallest number.
        span: Size of the number range to draw from (raised to ``3 * n`` when smaller).

    Returns:
        The ids, e.g. ``"ISIC_0024306"``.

    Examples:
        >>> ids = unique_ids(np.random.default_rng(0), 3, "ISIC_", 24306, 10015)
        >>> len(set(ids)), all(len(i) == 12 for i in ids)
        (3, True)
    """
    numbers = first + rng.choice(max(span, 3 * n), size=n, replace=False)
    return [f"{prefix}{int(k):07d}" for k in numbers]
