"""Safe, atomic extraction of a downloaded zip archive into one folder.

* Members with an absolute path, a drive letter, a ``..`` component or a symbolic link are
  refused (zip-slip): nothing is written outside the target folder.
* Archives may or may not wrap their files in one top folder; a single top folder common to
  all members is stripped, so the files always land directly in the target folder.
* macOS and Windows clutter (``__MACOSX/``, ``.DS_Store``, ``Thumbs.db``) is skipped.
* Files are extracted into a temporary folder beside the target and renamed onto it at the end,
  so the target is either complete or absent; a failed extraction leaves nothing behind.
"""

from __future__ import annotations

import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from pathlib import Path

from hamkit._io import current_umask
from hamkit.ham10000._http import DownloadError

__all__ = ["member_parts", "extract_zip", "EXTRACT_PREFIX"]

EXTRACT_PREFIX = "extract-"
"""Name prefix of the temporary extraction folders (stale ones may be removed)."""

_JUNK_DIRS = frozenset({"__MACOSX"})
_JUNK_FILES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})
_DRIVE = re.compile(r"^[A-Za-z]:")
_CHUNK = 1 << 20


def member_parts(name: str) -> tuple[str, ...] | None:
    """Split a zip member name into safe path components.

    Args:
        name: The member's name as stored in the archive.

    Returns:
        The components, or ``None`` for a name that would escape the target folder (absolute,
        with a drive letter, or with a ``..`` component) or that names nothing.

    Examples:
        >>> member_parts("top/ISIC_1.jpg")
        ('top', 'ISIC_1.jpg')
        >>> member_parts("../evil.jpg") is None, member_parts("/etc/passwd") is None
        (True, True)
    """
    normal = name.replace("\\", "/")
    if normal.startswith("/") or _DRIVE.match(normal):
        return None
    parts = tuple(p for p in normal.split("/") if p not in ("", "."))
    if not parts or ".." in parts:
        return None
    return parts


def _is_junk(parts: tuple[str, ...]) -> bool:
    return parts[0] in _JUNK_DIRS or parts[-1] in _JUNK_FILES


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def _plan(archive: Path, members: list[zipfile.ZipInfo]) -> list[tuple[zipfile.ZipInfo, tuple[str, ...]]]:
    """Pair each file member with its path inside the target; refuse unsafe members."""
    plan: list[tuple[zipfile.ZipInfo, tuple[str, ...]]] = []
    for info in members:
        parts = member_parts(info.filename)
        if parts is None or _is_symlink(info):
            why = "is a symbolic link" if parts is not None else "points outside the folder"
            raise DownloadError(
                f"{archive}: refused to extract member {info.filename!r}, which {why} "
                "(a zip-slip attack, or a broken archive); nothing was extracted. Delete the "
                "archive and download it again from the official source."
            )
        if not info.is_dir() and not _is_junk(parts):
            plan.append((info, parts))
    tops = {parts[0] for _, parts in plan}
    if len(tops) == 1 and all(len(parts) > 1 for _, parts in plan):
        plan = [(info, parts[1:]) for info, parts in plan]
    return plan


def _replace_folder(source: Path, target: Path) -> None:
    """Rename ``source`` onto ``target``, replacing an existing ``target`` folder."""
    if not target.exists():
        source.rename(target)
        return
    old = Path(tempfile.mkdtemp(prefix=f"{EXTRACT_PREFIX}old-{target.name}-", dir=source.parent))
    old.rmdir()
    target.rename(old)
    source.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def extract_zip(archive: Path, target: Path, *, work_dir: Path) -> int:
    """Extract ``archive`` into the folder ``target``, safely and atomically.

    Args:
        archive: The zip file.
        target: The folder the files go to; an existing one is replaced.
        work_dir: Where the temporary folder is made (on the same file system as ``target``).

    Returns:
        The number of files extracted.

    Raises:
        DownloadError: The archive is corrupt, or a member would be written outside the target
            folder. Nothing is extracted then.

    Examples:
        >>> extract_zip(Path("HAM10000_images_part_1.zip"), Path("HAM10000_images_part_1"),
        ...             work_dir=Path(".hamkit-download"))  # doctest: +SKIP
        5000
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f"{EXTRACT_PREFIX}{target.name}-", dir=work_dir))
    try:
        with zipfile.ZipFile(archive) as zf:
            plan = _plan(archive, zf.infolist())
            for folder in {temp.joinpath(*parts[:-1]) for _, parts in plan}:
                folder.mkdir(parents=True, exist_ok=True)
            for info, parts in plan:
                with zf.open(info) as src, temp.joinpath(*parts).open("wb") as out:
                    shutil.copyfileobj(src, out, _CHUNK)
        temp.chmod(0o777 & ~current_umask())  # mkdtemp makes it 0700; the data set is for colleagues too
        _replace_folder(temp, target)
    except (zipfile.BadZipFile, zlib.error, EOFError) as err:
        raise DownloadError(f"{archive}: corrupt zip archive ({err}); delete it and download it again") from None
    finally:
        if temp.exists():
            shutil.rmtree(temp, ignore_errors=True)
    return len(plan)
