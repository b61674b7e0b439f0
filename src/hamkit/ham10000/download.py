"""Download HAM10000 from its official Harvard Dataverse record into the layout hamkit reads.

:func:`download_ham10000` asks the Dataverse Native API for the record's file list (ids, sizes
and checksums are resolved by file name at run time, never hard-coded), downloads the wanted
files with resume and checksum verification, and unpacks the zips::

    ROOT/HAM10000_images_part_1/*.jpg
    ROOT/HAM10000_images_part_2/*.jpg
    ROOT/HAM10000_metadata.csv
    ROOT/HAM10000_segmentations_lesion_tschandl/*_segmentation.png

so that ``SkinDataset.from_folder(ROOT, masks=True)`` works. Bookkeeping lives in the hidden
folder ``ROOT/.hamkit-download/``: partial downloads (``NAME.part``, resumed by the next run),
kept archives, and one ``NAME.done.json`` marker per finished file. A finished file is never
downloaded again: a rerun of a complete download does not touch the network at all.

Only the standard library is used for HTTP. Progress bars come from tqdm.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from hamkit._io import atomic_path, atomic_write_text
from hamkit.ham10000._archive import EXTRACT_PREFIX, extract_zip
from hamkit.ham10000._dataverse import RemoteFile, list_record_files, select_files
from hamkit.ham10000._http import DownloadError, Log, download_file, verify_file
from hamkit.ham10000.layout import DOWNLOAD_FILES

__all__ = [
    "DownloadError",
    "DATAVERSE_URL",
    "HAM10000_DOI",
    "HAM10000_FILES",
    "STATE_DIR",
    "download_ham10000",
    "layout_summary",
]

DATAVERSE_URL = "https://dataverse.harvard.edu"
"""The Harvard Dataverse server, which hosts the official HAM10000 record."""
HAM10000_DOI = "doi:10.7910/DVN/DBW86T"
"""The persistent id of the HAM10000 record (Tschandl et al., 2018)."""
HAM10000_FILES: tuple[str, ...] = DOWNLOAD_FILES
"""The files fetched by default: both image archives, the metadata (ingested by Dataverse as a
tabular file and downloaded as the original CSV) and the lesion masks. The record also holds
ISIC 2018 test images and labels, which can be asked for by name."""
STATE_DIR = ".hamkit-download"
"""Hidden folder under the root for partial downloads, kept archives and completion markers."""

_MARKER_SUFFIX = ".done.json"


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def _silent(_: str) -> None:
    return None


def _output_of(root: Path, name: str) -> Path:
    """Where a file ends up: a zip becomes the folder of its stem, anything else stays a file."""
    return root / name[: -len(".zip")] if name.lower().endswith(".zip") else root / name


def _shown(root: Path, name: str) -> str:
    path = _output_of(root, name)
    return path.name + ("/" if name.lower().endswith(".zip") else "")


def _manual_hint(root: Path, base_url: str, doi: str, names: Sequence[str]) -> str:
    page = (
        f"https://doi.org/{doi[4:]}"
        if doi.lower().startswith("doi:")
        else f"{base_url.rstrip('/')}/dataset.xhtml?persistentId={doi}"
    )
    layout = ", ".join(_shown(root, n) for n in names)
    return (
        "Check your network connection (and proxy settings), then rerun the same command: "
        "finished files are kept and partial downloads resume. Or download the files by hand "
        f"from {page} and unpack them into {root} as: {layout}."
    )


def _check_arguments(files: Sequence[str] | None, timeout: float, retries: int) -> tuple[str, ...]:
    if isinstance(files, (str, bytes)):
        raise DownloadError(f"files must be a list of file names, not the string {files!r}")
    names = tuple(HAM10000_FILES if files is None else files)
    if not names:
        raise DownloadError("files is empty: name at least one file of the record")
    for name in names:
        if not isinstance(name, str) or not name or "/" in name or "\\" in name or name in {".", ".."}:
            raise DownloadError(f"files: {name!r} is not a plain file name")
    if len(set(names)) != len(names):
        raise DownloadError(f"files: a name is given twice in {list(names)}")
    if not timeout > 0:
        raise DownloadError(f"timeout must be positive, got {timeout!r}")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise DownloadError(f"retries must be a non-negative integer, got {retries!r}")
    return names


def _marker(state: Path, name: str) -> Path:
    return state / f"{name}{_MARKER_SUFFIX}"


def _read_marker(state: Path, name: str) -> dict[str, object] | None:
    try:
        data = json.loads(_marker(state, name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("name") == name else None


def _is_done(root: Path, state: Path, name: str) -> bool:
    """Finished before: a marker exists and the output is still there (a file of the same size)."""
    marker = _read_marker(state, name)
    output = _output_of(root, name)
    if marker is None:
        return False
    if name.lower().endswith(".zip"):
        return output.is_dir()
    return output.is_file() and output.stat().st_size == marker.get("size")


def _write_marker(state: Path, name: str, remote: RemoteFile, size: int, count: int | None) -> None:
    checksum = remote.checksum
    record = {
        "name": name,
        "label": remote.label,
        "file_id": remote.file_id,
        "size": size,
        "checksum": {"type": checksum.kind, "value": checksum.value} if checksum else None,
        "output": _output_of(state.parent, name).name,
        "files": count,
    }
    atomic_write_text(_marker(state, name), json.dumps(record, indent=2) + "\n")


def _size_text(n: int) -> str:
    value = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{n} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} bytes"  # pragma: no cover


def _verified(path: Path, remote: RemoteFile) -> bool:
    return path.is_file() and verify_file(path, size=remote.size, checksum=remote.checksum) is None


def _fetch_one(
    root: Path,
    state: Path,
    name: str,
    remote: RemoteFile,
    *,
    base_url: str,
    timeout: float,
    retries: int,
    progress: bool,
    keep_archives: bool,
    advice: str,
    log: Log,
) -> None:
    output = _output_of(root, name)
    is_zip = name.lower().endswith(".zip")
    if not is_zip and _verified(output, remote):
        _write_marker(state, name, remote, output.stat().st_size, None)
        log(f"{name}: already in {root} with a good checksum; not downloaded again")
        return
    if output.exists() and _read_marker(state, name) is None:
        raise DownloadError(
            f"{output} already exists but was not written by hamkit download (or was changed); "
            f"move it away and rerun, or leave {name} out of the files to download"
        )
    archive = state / name
    if _verified(archive, remote):
        log(f"{name}: already downloaded, checksum verified")
    else:
        archive.unlink(missing_ok=True)
        url = base_url.rstrip("/") + remote.download_path
        size = f" ({_size_text(remote.size)})" if remote.size is not None else ""
        log(f"{name}: downloading {remote.describe()}{size} from {url}")
        download_file(
            url,
            archive,
            size=remote.size,
            checksum=remote.checksum,
            timeout=timeout,
            retries=retries,
            progress=progress,
            label=name,
            advice=advice,
            log=log,
        )
        check = f"{remote.checksum.kind} verified" if remote.checksum else "no checksum published; size only"
        log(f"{name}: downloaded, {check}")
    size_bytes = archive.stat().st_size
    if is_zip:
        # the marker claims the folder before it appears, so that a run killed right after the
        # rename finds it ours; it is removed again if the extraction fails
        _write_marker(state, name, remote, size_bytes, None)
        try:
            count: int | None = extract_zip(archive, output, work_dir=state)
        except BaseException:
            _marker(state, name).unlink(missing_ok=True)
            raise
        log(f"{name}: extracted {count} files into {output}")
        if not keep_archives:
            archive.unlink()
    else:
        count = None
        if keep_archives:
            with atomic_path(output) as tmp:
                shutil.copyfile(archive, tmp)
        else:
            os.replace(archive, output)
        log(f"{name}: saved as {output}")
    _write_marker(state, name, remote, size_bytes, count)


def _remove_stale(state: Path) -> None:
    """Remove extraction folders a killed run left behind (they would confuse the readers)."""
    for folder in state.glob(f"{EXTRACT_PREFIX}*"):
        if folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)


def download_ham10000(
    root: str | os.PathLike[str],
    *,
    base_url: str = DATAVERSE_URL,
    doi: str = HAM10000_DOI,
    files: Sequence[str] | None = None,
    progress: bool = True,
    timeout: float = 60,
    retries: int = 3,
    keep_archives: bool = False,
    log: Log | None = None,
) -> Path:
    """Download HAM10000 (images, metadata, lesion masks) from its official Dataverse record.

    File ids, sizes and checksums are read from the Dataverse dataset API at run time and the
    files are matched by name. Each file is downloaded to ``ROOT/.hamkit-download/NAME.part``
    (a partial one is resumed with an HTTP ``Range`` request), verified against the published
    checksum (MD5, SHA-1, SHA-256 or SHA-512), then zips are extracted atomically into
    ``ROOT/<zip name without .zip>/`` (a single top folder inside the zip is stripped; members
    that would land outside are refused) and other files are moved to ``ROOT/NAME``. A file
    finished by an earlier run is skipped; when all are, no request is made at all.

    Args:
        root: The dataset folder (created if missing).
        base_url: The Dataverse server.
        doi: The dataset's persistent id.
        files: The names of the files to fetch (default :data:`HAM10000_FILES`). A name matches
            a file's label, stored name or original upload name (``HAM10000_metadata.csv``
            matches the ingested ``HAM10000_metadata.tab``, which is downloaded as the CSV).
        progress: Show byte progress bars (tqdm) and, unless ``log`` is given, step messages on
            stderr.
        timeout: Seconds to wait for a connection and for each read.
        retries: How often a transient network failure, or a corrupt download, is retried.
        keep_archives: Keep the downloaded zips in ``ROOT/.hamkit-download/`` after extraction.
        log: Receives one line per step (what was downloaded, verified, extracted or skipped).
            Default: stderr when ``progress`` is true, nothing otherwise.

    Returns:
        ``root``, as a :class:`~pathlib.Path`.

    Raises:
        DownloadError: The server cannot be reached or answers an error, a wanted file is not in
            the record (the message lists the available names), a checksum does not match, an
            archive is corrupt or unsafe, or ``root`` holds a file of the same name that this
            function did not write. The message says what to do; rerunning resumes.

    Examples:
        >>> from hamkit.ham10000 import download_ham10000  # doctest: +SKIP
        >>> root = download_ham10000("data/ham10000")  # doctest: +SKIP
        >>> SkinDataset.from_folder(root, masks=True)  # doctest: +SKIP
    """
    names = _check_arguments(files, timeout, retries)
    if log is None:
        log = _stderr if progress else _silent
    root = Path(root).expanduser()
    if root.exists() and not root.is_dir():
        raise DownloadError(f"{root}: exists and is not a folder; choose another ROOT")
    state = root / STATE_DIR
    try:
        state.mkdir(parents=True, exist_ok=True)
        _remove_stale(state)
        pending = [n for n in names if not _is_done(root, state, n)]
        for name in names:
            if name not in pending:
                log(f"{name}: already downloaded into {_shown(root, name)}; skipped")
        if not pending:
            return root
        advice = _manual_hint(root, base_url, doi, names)
        remote = list_record_files(base_url, doi, timeout=timeout, retries=retries, advice=advice, log=log)
        chosen = select_files(remote, pending, record=f"dataset {doi} on {base_url}")
        for name, entry in chosen.items():
            _fetch_one(
                root,
                state,
                name,
                entry,
                base_url=base_url,
                timeout=timeout,
                retries=retries,
                progress=progress,
                keep_archives=keep_archives,
                advice=advice,
                log=log,
            )
    except DownloadError:
        raise
    except OSError as err:
        where = f" ({err.filename})" if err.filename else ""
        raise DownloadError(
            f"cannot write into {root}{where}: {err.strerror or err}; free some disk space or "
            "fix the folder's permissions, then rerun (finished files are kept)"
        ) from None
    return root


def _count_files(folder: Path) -> int:
    return sum(len(filenames) for _, _, filenames in os.walk(folder))


def layout_summary(root: str | os.PathLike[str], files: Sequence[str] | None = None) -> str:
    """Describe what is in a downloaded dataset folder (what ``hamkit download`` prints).

    Args:
        root: The dataset folder.
        files: The downloaded file names (default :data:`HAM10000_FILES`).

    Returns:
        One line for the folder, then one per output: files per folder, rows per CSV, size of
        other files, or ``missing``.

    Examples:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> _ = (root / "HAM10000_metadata.csv").write_text("image_id,dx\\nISIC_1,nv\\n")
        >>> print(layout_summary(root, ["HAM10000_metadata.csv"]))  # doctest: +ELLIPSIS
        dataset in ...
          HAM10000_metadata.csv  1 rows
    """
    root = Path(root)
    names = tuple(HAM10000_FILES if files is None else files)
    shown = [_shown(root, n) for n in names]
    width = max(len(s) for s in shown)
    lines = [f"dataset in {root}"]
    for name, label in zip(names, shown, strict=True):
        output = _output_of(root, name)
        if output.is_dir():
            what = f"{_count_files(output)} files"
        elif output.is_file() and output.suffix.lower() in {".csv", ".tab", ".tsv"}:
            with output.open("rb") as handle:
                lines_read = sum(1 for _ in handle)
            what = f"{max(lines_read - 1, 0)} rows"
        elif output.is_file():
            what = _size_text(output.stat().st_size)
        else:
            what = "missing"
        lines.append(f"  {label.ljust(width)}  {what}")
    return "\n".join(lines)
