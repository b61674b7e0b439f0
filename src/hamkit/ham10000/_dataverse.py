"""Reading a dataset record from a Dataverse server's Native API, and picking files by name.

The files of a dataset version, with their database ids, sizes and checksums, come from::

    GET {base}/api/datasets/:persistentId/versions/:latest?persistentId={doi}

which answers ``{"status": "OK", "data": {"files": [{"label": ..., "dataFile": {"id": ...,
"filename": ..., "filesize": ..., "checksum": {"type": "MD5", "value": ...}}}, ...]}}`` (older
servers give ``"md5"`` instead of ``"checksum"``). A file is downloaded from
``{base}/api/access/datafile/{id}``. A tabular file that Dataverse *ingested* (a CSV, say) is
listed under a ``.tab`` name with ``originalFileName`` / ``originalFileFormat`` /
``originalFileSize``; ``?format=original`` downloads the file as uploaded, and the listed checksum
is that of the original.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from hamkit.ham10000._http import Checksum, DownloadError, Log, _silent, fetch_json

__all__ = ["RemoteFile", "dataset_api_url", "parse_record", "list_record_files", "select_files"]


@dataclass(frozen=True)
class RemoteFile:
    """One file of a Dataverse dataset version.

    Attributes:
        label: The name shown on the dataset page (``HAM10000_metadata.tab`` for an ingested CSV).
        file_id: The file's database id, for the Data Access API.
        filename: The stored file name (usually equal to ``label``).
        original_name: For an ingested tabular file, the name it was uploaded under, if listed.
        size: Bytes of what :attr:`download_path` serves (the original for a tabular file), or
            ``None`` when the record does not say.
        checksum: The published checksum (of the original, for a tabular file), or ``None``.
        tabular: Whether Dataverse ingested the file, so that ``?format=original`` is needed.

    Examples:
        >>> f = RemoteFile("m.tab", 7, "m.tab", "m.csv", 10, None, True)
        >>> f.download_path, f.describe()
        ('/api/access/datafile/7?format=original', 'm.tab (original: m.csv)')
    """

    label: str
    file_id: int
    filename: str
    original_name: str | None
    size: int | None
    checksum: Checksum | None
    tabular: bool

    @property
    def names(self) -> tuple[str, ...]:
        """Every name the file is known by: label, stored name, original name."""
        names = (self.label, self.filename, self.original_name)
        return tuple(dict.fromkeys(n for n in names if n))

    @property
    def download_path(self) -> str:
        """The Data Access API path (``?format=original`` for an ingested tabular file)."""
        path = f"/api/access/datafile/{self.file_id}"
        return path + "?format=original" if self.tabular else path

    def describe(self) -> str:
        """The label, with the original name where it differs (for error messages)."""
        if self.original_name and self.original_name != self.label:
            return f"{self.label} (original: {self.original_name})"
        return self.label


def dataset_api_url(base_url: str, doi: str, version: str = ":latest") -> str:
    """The Native API address of one version of a dataset.

    Args:
        base_url: The server, e.g. ``https://dataverse.harvard.edu``.
        doi: The dataset's persistent id, e.g. ``doi:10.7910/DVN/DBW86T``.
        version: ``:latest``, ``:latest-published`` or a number such as ``4.0``.

    Returns:
        The URL.

    Examples:
        >>> dataset_api_url("https://dataverse.harvard.edu/", "doi:10.7910/DVN/DBW86T")
        'https://dataverse.harvard.edu/api/datasets/:persistentId/versions/:latest?persistentId=doi%3A10.7910%2FDVN%2FDBW86T'
    """
    query = urllib.parse.urlencode({"persistentId": doi})
    return f"{base_url.rstrip('/')}/api/datasets/:persistentId/versions/{version}?{query}"


def _integer(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _parse_file(entry: object, source: str, index: int) -> RemoteFile:
    if not isinstance(entry, Mapping):
        entry = {}
    data = entry.get("dataFile")
    file_id = _integer(data.get("id")) if isinstance(data, Mapping) else None
    if not isinstance(data, Mapping) or file_id is None:
        raise DownloadError(
            f"{source}: file entry {index} has no dataFile with a numeric id; the server's API "
            "answer has an unexpected shape"
        )
    filename = str(data.get("filename") or entry.get("label") or "")
    label = str(entry.get("label") or filename)
    original = data.get("originalFileName")
    tabular = bool(data.get("originalFileFormat") or original or data.get("tabularData") is True)
    listed = data.get("checksum")
    checksum = None
    if isinstance(listed, Mapping):
        checksum = Checksum.parse(listed.get("type"), listed.get("value"))
    if checksum is None:
        checksum = Checksum.parse("MD5", data.get("md5"))
    size = _integer(data.get("originalFileSize")) if tabular else _integer(data.get("filesize"))
    return RemoteFile(
        label=label,
        file_id=file_id,
        filename=filename,
        original_name=str(original) if original else None,
        size=size,
        checksum=checksum,
        tabular=tabular,
    )


def parse_record(payload: object, *, source: str) -> list[RemoteFile]:
    """Read the files of a dataset version from a Native API answer.

    Args:
        payload: The decoded JSON answer.
        source: Where it came from (a URL), for error messages.

    Returns:
        The files, in the order the record lists them.

    Raises:
        DownloadError: The answer is an error (``"status": "ERROR"``) or has an unexpected shape.

    Examples:
        >>> answer = {"status": "OK", "data": {"files": [{"label": "a.zip", "dataFile": {
        ...     "id": 3, "filename": "a.zip", "filesize": 5, "md5": "ab"}}]}}
        >>> parse_record(answer, source="test")[0].checksum
        Checksum(kind='MD5', value='ab')
    """
    if not isinstance(payload, Mapping):
        raise DownloadError(f"{source}: the answer is not a JSON object; is this a Dataverse server?")
    if payload.get("status") != "OK":
        message = payload.get("message") or "no message"
        raise DownloadError(f"{source}: the server answered status {payload.get('status')!r}: {message}")
    data = payload.get("data")
    files = data.get("files") if isinstance(data, Mapping) else None
    if not isinstance(files, list):
        raise DownloadError(f"{source}: the answer lists no files (no data.files array)")
    return [_parse_file(entry, source, index) for index, entry in enumerate(files)]


def list_record_files(
    base_url: str, doi: str, *, timeout: float, retries: int, advice: str = "", log: Log = _silent
) -> list[RemoteFile]:
    """Fetch the file list of the latest version of a dataset.

    Args:
        base_url: The server, e.g. ``https://dataverse.harvard.edu``.
        doi: The dataset's persistent id.
        timeout: Seconds to wait for the connection and for each read.
        retries: How often a transient failure is retried.
        advice: A sentence appended to error messages.
        log: Receives a line before each retry.

    Returns:
        The files of the record.

    Raises:
        DownloadError: The server cannot be reached, or answers an error or something unexpected.

    Examples:
        >>> files = list_record_files("https://dataverse.harvard.edu", "doi:10.7910/DVN/DBW86T",
        ...                           timeout=60, retries=3)  # doctest: +SKIP
    """
    url = dataset_api_url(base_url, doi)
    return parse_record(fetch_json(url, timeout=timeout, retries=retries, advice=advice, log=log), source=url)


def _stem(name: str) -> str:
    return PurePosixPath(name).stem


def _stem_matches(name: str, remote: RemoteFile) -> bool:
    """``name`` without its extension names an ingested tabular file, or a file listed without
    an extension (``HAM10000_metadata.csv`` vs ``HAM10000_metadata.tab`` / ``HAM10000_metadata``)."""
    stem = _stem(name)
    return any(
        (remote.tabular and _stem(n) == stem) or (PurePosixPath(n).suffix == "" and n == stem) for n in remote.names
    )


def select_files(remote: Sequence[RemoteFile], wanted: Sequence[str], *, record: str) -> dict[str, RemoteFile]:
    """Pick files of a record by name.

    A wanted name matches a file's label, stored name or original name exactly. Failing that,
    it matches an ingested tabular file of the same stem (``HAM10000_metadata.csv`` matches
    ``HAM10000_metadata.tab``, since older servers do not list the original name), or a file
    listed under the stem alone (``HAM10000_metadata``).

    Args:
        remote: The files of the record.
        wanted: The names to pick.
        record: The record's name (DOI and server), for error messages.

    Returns:
        ``{wanted name: file}`` in the order of ``wanted``.

    Raises:
        DownloadError: A wanted name matches no file (the message lists the available names),
            or more than one.

    Examples:
        >>> files = [RemoteFile("m.tab", 1, "m.tab", None, None, None, True)]
        >>> select_files(files, ["m.csv"], record="test")["m.csv"].file_id
        1
    """
    chosen: dict[str, RemoteFile] = {}
    missing: list[str] = []
    for name in wanted:
        matches = [f for f in remote if name in f.names]
        if not matches:
            matches = [f for f in remote if _stem_matches(name, f)]
        if len(matches) > 1:
            raise DownloadError(
                f"{record}: {len(matches)} files match {name!r}: "
                f"{', '.join(f'{m.describe()} (id {m.file_id})' for m in matches)}"
            )
        if matches:
            chosen[name] = matches[0]
        else:
            missing.append(name)
    if missing:
        available = ", ".join(f.describe() for f in remote) or "none"
        raise DownloadError(
            f"{record} has no file named {', '.join(map(repr, missing))}. Available files: "
            f"{available}. Ask for names from this list (files=[...] or --file NAME)."
        )
    return chosen
