"""HTTP for dataset downloads, with the standard library only (``urllib.request``).

* :func:`fetch_json` GETs a JSON document.
* :func:`download_file` downloads one file into ``<target>.part``, resuming a partial download
  with an HTTP ``Range`` request (appending when the server answers ``206``, starting over when
  it answers ``200``), verifies its size and checksum (MD5, SHA-1, SHA-256 or SHA-512), and only
  then renames it onto ``target``. A corrupt download is deleted and fetched again.

Transient failures (no connection, a timeout, a dropped connection, HTTP 408/429/5xx) are retried
with exponential back-off; every failure that remains becomes one :class:`DownloadError` whose
message names the URL, says what went wrong and what to do.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from hamkit._version import __version__
from hamkit.errors import HamkitError

__all__ = [
    "DownloadError",
    "Checksum",
    "Log",
    "USER_AGENT",
    "fetch_json",
    "download_file",
    "verify_file",
]

T = TypeVar("T")
Log = Callable[[str], None]
"""A callable that receives one human-readable progress line."""

USER_AGENT = f"hamkit/{__version__} (+https://pypi.org/project/hamkit; Python urllib)"
"""The ``User-Agent`` header hamkit sends."""

BACKOFF_S: float = 1.0
"""Wait before the first retry, in seconds; it doubles with every further retry."""
MAX_BACKOFF_S: float = 30.0
"""Longest wait between two retries, in seconds."""

_CHUNK = 1 << 20
_ALGORITHMS = {"MD5": "md5", "SHA1": "sha1", "SHA256": "sha256", "SHA512": "sha512"}
_NETWORK_ERRORS = (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError)
_HTTP_HINTS = {
    401: "the file is restricted: it needs an account with access",
    403: "access denied: the file may be restricted, or need the dataset's terms accepted on its web page",
    404: "not found: check the server address and the dataset DOI",
    410: "the file or dataset was removed from the server",
}


class DownloadError(HamkitError):
    """A download failed: no network, an HTTP error, a checksum mismatch, an unsafe or corrupt
    archive, or a file missing from the dataset record.

    The message names the URL or file at fault and says what to do (check the network and rerun:
    finished files are kept and partial downloads resume; or download the files by hand).
    """


@dataclass(frozen=True)
class Checksum:
    """A file checksum as a repository publishes it.

    Attributes:
        kind: The algorithm as published, e.g. ``"MD5"`` or ``"SHA-256"``.
        value: The hex digest, lower case.

    Examples:
        >>> Checksum.parse("SHA-256", "AB12").algorithm
        'sha256'
        >>> Checksum.parse("CRC32", "1234") is None
        True
    """

    kind: str
    value: str

    @classmethod
    def parse(cls, kind: object, value: object) -> Checksum | None:
        """Build a checksum from an API's type and value, or ``None`` when either is unusable.

        Args:
            kind: The algorithm name (``MD5``, ``SHA-1``, ``SHA-256``, ``SHA-512``; case and
                dashes do not matter).
            value: The hex digest.

        Returns:
            The checksum, or ``None`` for a missing value or an unsupported algorithm.
        """
        if not isinstance(kind, str) or not isinstance(value, str) or not value.strip():
            return None
        if kind.upper().replace("-", "").replace("_", "") not in _ALGORITHMS:
            return None
        return cls(kind, value.strip().lower())

    @property
    def algorithm(self) -> str:
        """The :mod:`hashlib` name of the algorithm (``md5``, ``sha1``, ``sha256``, ``sha512``)."""
        return _ALGORITHMS[self.kind.upper().replace("-", "").replace("_", "")]


def _silent(_: str) -> None:
    return None


def _open(url: str, headers: dict[str, str], timeout: float) -> http.client.HTTPResponse:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, **headers})
    response: http.client.HTTPResponse = urllib.request.urlopen(request, timeout=timeout)
    return response


def _error_detail(err: urllib.error.HTTPError) -> str:
    """The server's own explanation from an error body (Dataverse answers JSON ``message``)."""
    try:
        body = err.read(4096)
    except (OSError, http.client.HTTPException):
        return ""
    finally:
        err.close()
    with contextlib.suppress(ValueError, AttributeError):
        message = json.loads(body).get("message")
        if isinstance(message, str):
            return message.strip()
    return ""


def _describe(err: BaseException) -> str:
    if isinstance(err, urllib.error.HTTPError):
        text = f"HTTP {err.code} {err.reason}".rstrip()
        hint = _HTTP_HINTS.get(err.code)
        detail = _error_detail(err)
        return text + (f" ({hint})" if hint else "") + (f"; the server says: {detail}" if detail else "")
    if isinstance(err, urllib.error.URLError):
        return f"cannot connect ({err.reason})"
    if isinstance(err, TimeoutError):
        return "timed out"
    if isinstance(err, http.client.IncompleteRead):
        return "the connection dropped before the file was complete"
    return f"{type(err).__name__}: {err}"


def _is_transient(err: BaseException) -> bool:
    if isinstance(err, urllib.error.HTTPError):
        return err.code in (408, 425, 429) or err.code >= 500
    return isinstance(err, _NETWORK_ERRORS)


def _with_retries(action: Callable[[], T], *, url: str, retries: int, advice: str, log: Log) -> T:
    """Run ``action``; retry transient network failures; turn the final one into DownloadError."""
    attempt = 0
    while True:
        try:
            return action()
        except _NETWORK_ERRORS as err:
            if not _is_transient(err) or attempt >= retries:
                tries = f" (after {attempt + 1} tries)" if attempt else ""
                raise DownloadError(f"{url}: {_describe(err)}{tries}. {advice}".rstrip()) from None
            wait = min(BACKOFF_S * 2**attempt, MAX_BACKOFF_S)
            log(f"  {url}: {_describe(err)}; retry {attempt + 1} of {retries} in {wait:g} s")
            time.sleep(wait)
            attempt += 1


def fetch_json(url: str, *, timeout: float, retries: int, advice: str = "", log: Log = _silent) -> Any:
    """GET ``url`` and decode its JSON answer.

    Args:
        url: The address.
        timeout: Seconds to wait for the connection and for each read.
        retries: How often a transient failure is retried (0: one try only).
        advice: A sentence appended to error messages (what the user can do).
        log: Receives a line before each retry.

    Returns:
        The decoded JSON document.

    Raises:
        DownloadError: The server cannot be reached, answers an HTTP error, or not JSON.

    Examples:
        >>> fetch_json("http://127.0.0.1:9/x", timeout=1, retries=0)  # doctest: +SKIP
        Traceback (most recent call last):
        hamkit.ham10000._http.DownloadError: http://127.0.0.1:9/x: cannot connect (...)
    """

    def get() -> bytes:
        with _open(url, {"Accept": "application/json"}, timeout) as response:
            return response.read()

    body = _with_retries(get, url=url, retries=retries, advice=advice, log=log)
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DownloadError(
            f"{url}: the answer is not JSON ({err}); is this the address of a Dataverse server? {advice}".rstrip()
        ) from None


def verify_file(path: Path, *, size: int | None, checksum: Checksum | None) -> str | None:
    """Check a file's size and checksum.

    Args:
        path: The file.
        size: The expected size in bytes, or ``None`` to skip that check.
        checksum: The expected checksum, or ``None`` to skip that check.

    Returns:
        ``None`` when the file is good, otherwise what is wrong, in words.

    Examples:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "x"
        >>> _ = path.write_bytes(b"abc")
        >>> verify_file(path, size=3, checksum=Checksum("MD5", "900150983cd24fb0d6963f7d28e17f72"))
        >>> verify_file(path, size=4, checksum=None)
        'its size is 3 bytes, expected 4'
    """
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        return f"its size is {actual_size} bytes, expected {size}"
    if checksum is not None:
        with path.open("rb") as handle:
            digest = hashlib.file_digest(handle, checksum.algorithm).hexdigest()
        if digest != checksum.value:
            return f"{checksum.kind} checksum mismatch: expected {checksum.value}, got {digest}"
    return None


def _fetch_into(
    url: str, part: Path, *, size: int | None, timeout: float, progress: bool, label: str, log: Log
) -> None:
    """One attempt at completing ``part`` from ``url`` (resuming it when it already has bytes)."""
    from tqdm import tqdm

    offset = part.stat().st_size if part.exists() else 0
    if size is not None and offset > size:
        part.unlink()
        offset = 0
    if size is not None and offset == size and part.exists():
        return
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        response = _open(url, headers, timeout)
    except urllib.error.HTTPError as err:
        if err.code != 416 or not offset:
            raise
        err.close()
        if size is None:  # the part file may be complete already: the checksum will tell
            return
        part.unlink()
        raise http.client.HTTPException("the server refused to resume; starting over") from None
    with response:
        if offset and response.status == 206:
            content_range = response.headers.get("Content-Range", "")
            if not content_range.startswith(f"bytes {offset}-"):
                part.unlink()
                raise http.client.HTTPException(
                    f"the server resumed at the wrong place ({content_range!r}); starting over"
                )
            mode = "ab"
            log(f"  {label}: resuming at byte {offset}")
        else:
            if offset:
                log(f"  {label}: the server does not resume downloads; starting over")
            mode, offset = "wb", 0
        length = response.headers.get("Content-Length")
        expected = offset + int(length) if length and length.isdigit() else size
        with (
            part.open(mode) as out,
            tqdm(
                total=size if size is not None else expected,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=label,
                disable=not progress,
                file=sys.stderr,
                leave=False,
            ) as bar,
        ):
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                bar.update(len(chunk))
    received = part.stat().st_size
    if expected is not None and received < expected:
        raise http.client.IncompleteRead(b"", expected - received)


def download_file(
    url: str,
    target: Path,
    *,
    size: int | None,
    checksum: Checksum | None,
    timeout: float,
    retries: int,
    progress: bool = True,
    label: str | None = None,
    advice: str = "",
    log: Log = _silent,
) -> None:
    """Download ``url`` to ``target``, resuming ``<target>.part`` and verifying the result.

    ``target`` appears only once the file is complete and verified. A partial download is kept
    in ``<target>.part`` for the next call to resume; a download with the wrong size or checksum
    is deleted and fetched again, up to ``retries`` more times.

    Args:
        url: The address of the file.
        target: Where the verified file goes (its folder must exist).
        size: The expected size in bytes, or ``None`` when unknown.
        checksum: The expected checksum, or ``None`` to check the size only.
        timeout: Seconds to wait for the connection and for each read.
        retries: How often a transient failure, or a corrupt download, is retried.
        progress: Show a tqdm progress bar (in bytes) on stderr.
        label: The name shown in the progress bar and messages (default: the target's name).
        advice: A sentence appended to error messages (what the user can do).
        log: Receives one line per resume, restart and retry.

    Raises:
        DownloadError: The server cannot be reached or answers an error, or every download had
            the wrong size or checksum. A corrupt download is deleted, never left behind.

    Examples:
        >>> download_file("https://example.org/f.zip", Path("f.zip"), size=None,
        ...               checksum=None, timeout=60, retries=3)  # doctest: +SKIP
    """
    label = label or target.name
    part = target.with_name(target.name + ".part")
    problem = ""
    for attempt in range(retries + 1):
        _with_retries(
            lambda: _fetch_into(url, part, size=size, timeout=timeout, progress=progress, label=label, log=log),
            url=url,
            retries=retries,
            advice=advice,
            log=log,
        )
        problem = verify_file(part, size=size, checksum=checksum) or ""
        if not problem:
            os.replace(part, target)
            return
        part.unlink()
        if attempt < retries:
            log(f"  {label}: the download is corrupt ({problem}); downloading it again")
    tries = f"{retries + 1} downloads" if retries else "the download"
    raise DownloadError(
        f"{label}: {problem} in {tries} from {url}; the corrupt file was deleted. "
        f"Rerun later (the server may have served a broken copy). {advice}".rstrip()
    )
