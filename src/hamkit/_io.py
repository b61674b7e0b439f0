"""Atomic file output: write to a temporary file beside the target, then rename.

An interrupted run never leaves a half-written output file behind, and the file gets the
permissions the user's umask gives a new file (``tempfile.mkstemp`` alone would leave it 0600,
unreadable to colleagues). This is the one writer path, so it is also where the output's other
rules live:

* a full disk (``ENOSPC``) or a used-up quota (``EDQUOT``), from any writer (NumPy, safetensors,
  torch, Pillow) becomes one :class:`~hamkit.errors.DiskFullError` line naming the file;
* a target that is a symbolic link is written through (the file it points to is replaced, the
  link stays);
* :func:`staged_folder` writes a result set (several files) all or nothing, and removes the
  staging folders that an ended process (``kill -9``, a power cut) left in the output folder;
* :func:`path_lines` writes one-path-per-line lists, refusing names that would read as two lines;
* :func:`csv_text` writes CSVs whose text cells cannot start a spreadsheet formula.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import os
import re
import shutil
import socket
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from hamkit.errors import DataError, DiskFullError, HamkitError

__all__ = [
    "atomic_path",
    "atomic_write_text",
    "atomic_write_bytes",
    "bad_name_message",
    "csv_text",
    "current_umask",
    "disk_full",
    "path_lines",
    "spreadsheet_safe",
    "stale_stages",
    "staged_folder",
    "written_as",
]

_FULL_TEXTS: dict[int, tuple[str, ...]] = {
    errno.ENOSPC: ("no space left on device", "os error 28", "code: 28,", "storagefull"),
    errno.EDQUOT: ("disk quota exceeded", "os error 122", "code: 122,", "filesystemquotaexceeded"),
}
_FULL_ADVICE = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is used up",
}


def _full_code(exc: BaseException, folder: Path) -> int | None:
    """``ENOSPC`` or ``EDQUOT`` when ``exc`` (or an exception it chains) says the disk is full."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(seen) < 8 and not any(current is s for s in seen):
        seen.append(current)
        if isinstance(current, OSError) and current.errno in _FULL_TEXTS:
            return int(current.errno)
        text = str(current).lower()
        for code, needles in _FULL_TEXTS.items():
            if any(needle in text for needle in needles):
                return code
        current = current.__cause__ or current.__context__
    # writers that do not say why ("file write failed"): ask the file system
    if not isinstance(exc, HamkitError) and "writ" in str(exc).lower():
        with contextlib.suppress(OSError):
            if os.statvfs(folder).f_bavail == 0:
                return errno.ENOSPC
    return None


def disk_full(exc: BaseException, target: str | os.PathLike[str]) -> DiskFullError | None:
    """The :class:`~hamkit.errors.DiskFullError` for ``exc`` raised while writing ``target``,
    or ``None`` when ``exc`` is not about a full disk or a used-up quota.

    Args:
        exc: The exception a writer raised (an ``OSError`` with ``errno`` ``ENOSPC`` or
            ``EDQUOT``, or a library's error whose text says so, e.g. safetensors').
        target: The file that was being written.

    Examples:
        >>> import errno
        >>> error = disk_full(OSError(errno.ENOSPC, "No space left on device"), "out/kept.txt")
        >>> str(error).split(";")[0]
        'out/kept.txt: cannot be written: no space left on the device (the one holding out)'
        >>> disk_full(ValueError("bad value"), "out/kept.txt") is None
        True
    """
    target = Path(target)
    if isinstance(exc, DiskFullError):
        return exc
    code = _full_code(exc, target.parent)
    if code is None:
        return None
    error = DiskFullError(
        f"{target}: cannot be written: {_FULL_ADVICE[code]} (the one holding {target.parent}); "
        "free some space there, or write to another folder, and run again"
    )
    error.errno = code
    return error


def current_umask() -> int:
    """The process's umask, read without changing it where the system allows (Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (not thread-safe, but brief)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success.

    On an exception the temporary file is removed and ``target`` is left untouched. A
    ``target`` that is a symbolic link is written through: the file it points to is replaced.

    Raises:
        DiskFullError: The disk is full or the quota used up (the temporary file is removed).
    """
    target = Path(target)
    if target.is_symlink():
        target = Path(os.path.realpath(target))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # at most 40 characters of the name: the temporary file's must fit where the target's does
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name[:40]}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
    except OSError as err:
        raise (disk_full(err, target) or err) from err
    tmp = Path(tmp_name)
    try:
        yield tmp
        if tmp.exists():
            os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, target)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        full = disk_full(err, target) if isinstance(err, Exception) else None
        if full is not None and full is not err:
            raise full from err
        raise


def written_as(target: str | os.PathLike[str]) -> str:
    """How to name ``target`` in a "wrote ..." line: the path, and where it is a symbolic link,
    the file the write replaced through it (a link to a file elsewhere is never replaced silently).

    Examples:
        >>> written_as("predictions.csv")
        'predictions.csv'
    """
    path = Path(target)
    if not path.is_symlink():
        return os.fspath(target)
    return f"{os.fspath(target)} (a symbolic link: wrote the file it points to, {os.path.realpath(path)})"


def atomic_write_text(target: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``target`` atomically and return the target path.

    File names that are not valid UTF-8 (Python holds their bytes as surrogates) are written
    as their original bytes, so a list of paths names the very files.
    """
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding=encoding, errors="surrogateescape")
    return Path(target)


def atomic_write_bytes(target: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``target`` atomically and return the target path."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def path_lines(paths: Iterable[str | os.PathLike[str]], list_file: str | os.PathLike[str]) -> str:
    """The text of a one-path-per-line list (``kept.txt``, ``removed.txt``...).

    A name holding a line break would read as two paths (to ``xargs rm``, or to hamkit reading
    the list back), so it is refused rather than written.

    Args:
        paths: The paths, in order.
        list_file: The list being written (named in the error).

    Raises:
        DataError: A path with a line break in it; the message names the list and the file.

    Examples:
        >>> path_lines(["a.jpg", "b/c.jpg"], "kept.txt")
        'a.jpg\\nb/c.jpg\\n'
    """
    lines = [os.fspath(p) for p in paths]
    bad = next((line for line in lines if "\n" in line or "\r" in line), None)
    if bad is not None:
        raise DataError(bad_name_message(bad, list_file))
    return "".join(f"{line}\n" for line in lines)


def bad_name_message(path: str | os.PathLike[str], list_file: str | os.PathLike[str]) -> str:
    """The one-line refusal of a file name with a line break, which ``list_file`` cannot hold."""
    return (
        f"{os.fspath(path)!r}: the file name holds a line break, so {Path(list_file).name} (one path a line) "
        "cannot name it; rename the file (e.g. replace the line break with _) and run again"
    )


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(cell: Any) -> Any:
    """``cell``, with a leading ``'`` when it is text a spreadsheet would run as a formula.

    Text starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is a formula to
    Excel and LibreOffice (a file named ``=HYPERLINK(...).jpg`` would be one); the ``'`` makes
    it text again. Numbers, and text that reads as a number (``-0.25``), are left as they are.

    Examples:
        >>> spreadsheet_safe("=1+2.jpg"), spreadsheet_safe("-0.25"), spreadsheet_safe(-0.25)
        ("'=1+2.jpg", '-0.25', -0.25)
    """
    if not isinstance(cell, str) or not cell.startswith(_FORMULA_STARTS):
        return cell
    try:
        float(cell)
    except ValueError:
        return "'" + cell
    return cell


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A CSV (``\\n`` line ends) whose text cells are :func:`spreadsheet_safe`.

    Examples:
        >>> print(csv_text(["path", "score"], [["@SUM(A1).jpg", 0.5]]), end="")
        path,score
        '@SUM(A1).jpg,0.5
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([spreadsheet_safe(h) for h in header])
    writer.writerows([spreadsheet_safe(cell) for cell in row] for row in rows)
    return buffer.getvalue()


_STAGING = ".hamkit-staging-"
_STAGE_NAME = re.compile(re.escape(_STAGING) + r"(?P<pid>\d+)@(?P<host>[A-Za-z0-9._]+)-[a-z0-9_]+")


def _host() -> str:
    """This machine's name as a staging folder's name holds it (letters, digits, ``.``, ``_``)."""
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname())[:64] or "host"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # another user's process (alive), or not a pid at all
        return True
    return True


def stale_stages(out: str | os.PathLike[str]) -> list[Path]:
    """The staging folders in ``out`` that a :func:`staged_folder` of a process that has ended
    left behind (killed with ``kill -9``, or the machine stopped, mid-write).

    Only hamkit's own are named: ``.hamkit-staging-<pid>@<host>-<random>`` whose ``host`` is this
    machine and whose process ``pid`` is not running. A folder of a live process, of another
    machine (an output folder on a shared disk) or of another name is never named.

    Examples:
        >>> stale_stages("a/folder/that/does/not/exist")
        []
    """
    folder = Path(out)
    try:
        entries = list(folder.iterdir()) if folder.is_dir() else []
    except OSError:
        return []
    host, found = _host(), []
    for entry in entries:
        match = _STAGE_NAME.fullmatch(entry.name)
        if match is None or match["host"] != host or not entry.is_dir() or entry.is_symlink():
            continue
        if int(match["pid"]) != os.getpid() and not _process_alive(int(match["pid"])):
            found.append(entry)
    return sorted(found)


def _remove_stale_stages(out: Path) -> None:
    """Remove :func:`stale_stages` of ``out``, with one warning line saying so."""
    stale = stale_stages(out)
    for stage in stale:
        shutil.rmtree(stage, ignore_errors=True)
    if stale:
        warnings.warn(
            f"{out}: removed {len(stale)} unfinished result set(s) that an ended hamkit process left there "
            f"({', '.join(s.name for s in stale)})",
            UserWarning,
            stacklevel=4,
        )


@contextlib.contextmanager
def staged_folder(out: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a staging folder inside ``out``; move what was written there into ``out`` on success.

    A result set of several files is written all or nothing: while it is being written (the
    step that can fail: a full disk, an interrupt, a bad name) ``out`` holds none of the new
    files, and the moves after it are renames, which need no space. On an exception the staging
    folder is removed and ``out`` keeps what it held before.

    The staging folder is ``.hamkit-staging-<pid>@<host>-<random>``: a process killed with
    ``kill -9`` cannot remove it, so the next result set written into ``out`` removes those of
    processes of this machine that have ended (:func:`stale_stages`), with one warning line.

    Args:
        out: The output folder (created; it may exist and hold other files, or be a link).

    Raises:
        DiskFullError: The disk filled while the set was written.
    """
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        _remove_stale_stages(out)
        stage = Path(tempfile.mkdtemp(prefix=f"{_STAGING}{os.getpid()}@{_host()}-", dir=out))
    except OSError as err:
        raise (disk_full(err, out) or err) from err
    try:
        yield stage
        for item in sorted(stage.rglob("*")):
            if item.is_file() or item.is_symlink():
                destination = out / item.relative_to(stage)
                destination.parent.mkdir(parents=True, exist_ok=True)
                if destination.is_symlink():
                    destination = Path(os.path.realpath(destination))
                os.replace(item, destination)
    except BaseException as err:
        full = disk_full(err, out) if isinstance(err, Exception) else None
        if full is not None:  # name the file in out, not in the staging folder the user never sees
            named = DiskFullError(str(full).replace(os.fspath(stage), os.fspath(out)))
            named.errno = full.errno
            raise named from err
        raise
    finally:
        shutil.rmtree(stage, ignore_errors=True)
