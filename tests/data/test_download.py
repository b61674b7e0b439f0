"""Tests of ``hamkit.ham10000.download`` and ``hamkit download``, against a fake Dataverse server
on 127.0.0.1 (never the real site).

The fake server answers the Native API's dataset-version JSON (same shape as Harvard Dataverse)
and the Data Access API, honours ``Range`` requests, redirects one file like Harvard does (to
S3), serves the ingested metadata as TSV unless ``?format=original`` is asked for, and can be
told to corrupt a file, ignore ranges, drop a connection halfway, or fail with HTTP 503.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
import socket
import threading
import urllib.parse
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from hamkit.cli import main as cli_main
from hamkit.cli.main import main
from hamkit.data.dataset import find_mask_dir
from hamkit.data.images import find_images, find_masks
from hamkit.data.metadata import read_metadata
from hamkit.errors import HamkitError
from hamkit.ham10000 import _http
from hamkit.ham10000._archive import member_parts
from hamkit.ham10000._dataverse import RemoteFile, dataset_api_url, parse_record, select_files
from hamkit.ham10000.download import (
    HAM10000_DOI,
    HAM10000_FILES,
    STATE_DIR,
    DownloadError,
    download_ham10000,
    layout_summary,
)
from hamkit.synthetic import make_synthetic

PART1, PART2, METADATA, MASKS = HAM10000_FILES
TEST_IMAGES = "ISIC2018_Task3_Test_Images.zip"
MASKS_DIR = "HAM10000_segmentations_lesion_tschandl"


# --------------------------------------------------------------------------- fake record


@dataclass
class FakeFile:
    """One file of the fake record: what it serves and how the API describes its checksum."""

    file_id: int
    label: str
    content: bytes
    checksum: str = "checksum-md5"  # or "md5" (old servers), "sha256", "sha1"
    archival: bytes | None = None  # for an ingested tabular file: the .tab served by default
    original_name: str | None = None

    def entry(self) -> dict[str, object]:
        data: dict[str, object] = {
            "id": self.file_id,
            "filename": self.label,
            "persistentId": f"{HAM10000_DOI}/{self.file_id}",
            "contentType": "application/zip",
            "rootDataFileId": -1,
        }
        md5 = hashlib.md5(self.content).hexdigest()
        if self.archival is not None:
            data.update(
                contentType="text/tab-separated-values",
                filesize=len(self.archival),
                originalFileFormat="text/csv",
                originalFormatLabel="Comma Separated Values",
                originalFileSize=len(self.content),
                UNF="UNF:6:xyz==",
            )
            if self.original_name:
                data["originalFileName"] = self.original_name
        else:
            data["filesize"] = len(self.content)
        if self.checksum == "md5":
            data["md5"] = md5
        elif self.checksum == "checksum-md5":
            data.update(md5=md5, checksum={"type": "MD5", "value": md5})
        elif self.checksum == "sha256":
            data["checksum"] = {"type": "SHA-256", "value": hashlib.sha256(self.content).hexdigest()}
        elif self.checksum == "sha1":
            data["checksum"] = {"type": "SHA-1", "value": hashlib.sha1(self.content).hexdigest()}
        return {"label": self.label, "restricted": False, "version": 1, "dataFile": data}


@dataclass
class Request:
    path: str
    range: str | None
    sent: int = 0


@dataclass
class FakeDataverse:
    """A fake Dataverse server's state; ``url`` is set once it listens."""

    files: list[FakeFile]
    doi: str = HAM10000_DOI
    redirect: set[int] = field(default_factory=set)
    corrupt: set[int] = field(default_factory=set)
    drop_halfway: set[int] = field(default_factory=set)  # drop the connection once, halfway
    honour_range: bool = True
    fail_next: int = 0
    requests: list[Request] = field(default_factory=list)
    url: str = ""

    def record(self) -> dict[str, object]:
        return {
            "status": "OK",
            "data": {
                "id": 1,
                "datasetPersistentId": self.doi,
                "versionState": "RELEASED",
                "versionNumber": 4,
                "files": [f.entry() for f in self.files],
            },
        }

    def by_id(self, file_id: int) -> FakeFile:
        return next(f for f in self.files if f.file_id == file_id)

    def file_requests(self, file_id: int | None = None) -> list[Request]:
        keys = ("/api/access/datafile/", "/s3/")
        found = [r for r in self.requests if r.path.startswith(keys)]
        if file_id is None:
            return found
        return [r for r in found if urllib.parse.urlsplit(r.path).path.rstrip("/").endswith(f"/{file_id}")]


def _handler(state: FakeDataverse) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            return None

        def _send(self, code: int, body: bytes, headers: dict[str, str] | None = None) -> int:
            self.send_response(code)
            for key, value in {"Content-Length": str(len(body)), **(headers or {})}.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)
            return len(body)

        def _json(self, code: int, payload: object) -> None:
            self._send(code, json.dumps(payload).encode(), {"Content-Type": "application/json"})

        def _serve_file(self, request: Request, file_id: int, query: dict[str, list[str]]) -> None:
            fake = state.by_id(file_id)
            body = fake.content
            if fake.archival is not None and query.get("format") != ["original"]:
                body = fake.archival
            if file_id in state.corrupt:
                body = bytes([body[0] ^ 0xFF]) + body[1:]
            start = 0
            if request.range and state.honour_range:
                start = int(request.range.removeprefix("bytes=").split("-")[0])
                if start >= len(body):
                    self._send(416, b"", {"Content-Range": f"bytes */{len(body)}"})
                    return
            if file_id in state.drop_halfway:
                state.drop_halfway.discard(file_id)
                half = (len(body) - start) // 2
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(body) - start))
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.end_headers()
                self.wfile.write(body[start : start + half])
                request.sent = half
                self.close_connection = True
                return
            if start:
                request.sent = self._send(
                    206, body[start:], {"Content-Range": f"bytes {start}-{len(body) - 1}/{len(body)}"}
                )
            else:
                request.sent = self._send(200, body)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            request = Request(self.path, self.headers.get("Range"))
            state.requests.append(request)
            if state.fail_next > 0:
                state.fail_next -= 1
                self._json(503, {"status": "ERROR", "message": "try later"})
                return
            parts = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(parts.query)
            if parts.path == "/api/datasets/:persistentId/versions/:latest":
                if query.get("persistentId") != [state.doi]:
                    self._json(
                        404,
                        {
                            "status": "ERROR",
                            "message": f"Dataset with Persistent ID {query.get('persistentId')} not found.",
                        },
                    )
                else:
                    self._json(200, state.record())
                return
            for prefix in ("/api/access/datafile/", "/s3/"):
                if parts.path.startswith(prefix) and parts.path[len(prefix) :].isdigit():
                    file_id = int(parts.path[len(prefix) :])
                    if prefix.startswith("/api") and file_id in state.redirect:
                        location = f"/s3/{file_id}" + (f"?{parts.query}" if parts.query else "")
                        self._send(303, b"", {"Location": location})
                    else:
                        self._serve_file(request, file_id, query)
                    return
            self._json(404, {"status": "ERROR", "message": "no such endpoint"})

    return Handler


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries happen at once in tests."""
    monkeypatch.setattr(_http, "BACKOFF_S", 0.0)


@contextlib.contextmanager
def serving(state: FakeDataverse) -> Iterator[FakeDataverse]:
    """Run the fake server in a thread on a free local port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _zip(members: dict[str, bytes], dirs: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in dirs:
            zf.writestr(zipfile.ZipInfo(name), b"")
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


@dataclass(frozen=True)
class Payload:
    """The fake record's files, built from a tiny synthetic dataset."""

    part1: dict[str, bytes]
    part2: dict[str, bytes]
    masks: dict[str, bytes]
    metadata_csv: bytes
    files: tuple[FakeFile, ...]


@pytest.fixture(scope="module")
def payload(tmp_path_factory: pytest.TempPathFactory) -> Payload:
    """Zips in the shapes Dataverse serves: part 1 without a top folder, part 2 and the masks
    inside one (plus macOS clutter), the metadata as an ingested tabular file."""
    data = make_synthetic(
        tmp_path_factory.mktemp("src") / "ham", n_lesions=7, random_state=0, image_size=(32, 32), duplicate_fraction=0.0
    )
    part1 = {p.name: p.read_bytes() for p in sorted(data.image_dirs[0].iterdir())}
    part2 = {p.name: p.read_bytes() for p in sorted(data.image_dirs[1].iterdir())}
    masks = {p.name: p.read_bytes() for p in sorted(data.masks_dir.iterdir())}
    csv_bytes = data.metadata_csv.read_bytes()
    tsv_bytes = csv_bytes.replace(b",", b"\t")
    top2, topm = "HAM10000_images_part_2/", f"{MASKS_DIR}/"
    files = (
        FakeFile(101, PART1, _zip(part1), checksum="checksum-md5"),
        FakeFile(
            102,
            PART2,
            _zip({top2 + k: v for k, v in part2.items()} | {f"__MACOSX/{top2}._x.jpg": b"junk"}, dirs=(top2,)),
            checksum="md5",
        ),
        FakeFile(103, "HAM10000_metadata.tab", csv_bytes, archival=tsv_bytes, original_name="HAM10000_metadata.csv"),
        FakeFile(
            104, MASKS, _zip({topm + k: v for k, v in masks.items()} | {topm + ".DS_Store": b"x"}), checksum="sha256"
        ),
        FakeFile(105, TEST_IMAGES, _zip({"ISIC_0034524.jpg": b"not needed"}), checksum="sha1"),
    )
    return Payload(part1, part2, masks, csv_bytes, files)


@pytest.fixture()
def server(payload: Payload) -> Iterator[FakeDataverse]:
    """A fresh fake Harvard Dataverse with the HAM10000 record; part 2 is served via a redirect."""
    with serving(FakeDataverse(files=list(payload.files), redirect={102})) as state:
        yield state


def _download(server: FakeDataverse, root: Path, **kwargs: object) -> list[str]:
    lines: list[str] = []
    download_ham10000(root, base_url=server.url, progress=False, timeout=5, log=lines.append, **kwargs)  # type: ignore[arg-type]
    return lines


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------- full download


def test_full_download_gives_the_layout_hamkit_reads(server: FakeDataverse, payload: Payload, tmp_path: Path) -> None:
    root = tmp_path / "ham"
    lines = _download(server, root)
    part1, part2 = root / "HAM10000_images_part_1", root / "HAM10000_images_part_2"
    # both zip shapes end up flat: no top folder is kept, clutter is dropped
    assert sorted(p.name for p in part1.iterdir()) == sorted(payload.part1)
    assert sorted(p.name for p in part2.iterdir()) == sorted(payload.part2)
    assert sorted(p.name for p in (root / MASKS_DIR).iterdir()) == sorted(payload.masks)
    assert (part1 / next(iter(payload.part1))).read_bytes() == next(iter(payload.part1.values()))
    # the original CSV, not Dataverse's TSV rendering
    assert (root / METADATA).read_bytes() == payload.metadata_csv
    records = read_metadata(root / METADATA)
    images = find_images(root)
    assert sorted(images) == sorted(r.image_id for r in records)
    assert len(images) == len(payload.part1) + len(payload.part2)
    assert find_mask_dir(root) == root / MASKS_DIR
    match = find_masks(root / MASKS_DIR, images)
    assert match.missing == [] and match.extra == []
    # nothing but completion markers is left in the state folder
    state = root / STATE_DIR
    assert sorted(p.name for p in state.iterdir()) == sorted(f"{n}.done.json" for n in HAM10000_FILES)
    marker = json.loads((state / f"{MASKS}.done.json").read_text())
    assert marker["checksum"]["type"] == "SHA-256" and marker["files"] == len(payload.masks)
    # requests: the ingested CSV as original, part 2 through the redirect, no unwanted file
    paths = [r.path for r in server.file_requests()]
    assert "/api/access/datafile/103?format=original" in paths
    assert "/s3/102" in paths
    assert not server.file_requests(105)
    assert any("extracted" in line and "HAM10000_images_part_2" in line for line in lines)


def test_downloaded_folder_loads_as_skin_dataset(server: FakeDataverse, payload: Payload, tmp_path: Path) -> None:
    from hamkit.data.dataset import SkinDataset

    root = tmp_path / "ham"
    _download(server, root)
    dataset = SkinDataset.from_folder(root, masks=True, image_size=32)
    assert len(dataset) == len(payload.part1) + len(payload.part2)
    item = dataset[0]
    assert tuple(item["image"].shape) == (3, 32, 32) and item["mask"].shape[-2:] == (32, 32)


def test_rerun_makes_no_request_at_all(server: FakeDataverse, tmp_path: Path) -> None:
    root = tmp_path / "ham"
    _download(server, root)
    stale = root / STATE_DIR / "extract-HAM10000_images_part_1-x1y2"  # left by a killed run
    stale.mkdir()
    (stale / "ISIC_0000000_segmentation.png").write_bytes(b"half")
    server.requests.clear()
    lines = _download(server, root)
    assert server.requests == []
    assert not stale.exists()
    assert sum("skipped" in line for line in lines) == len(HAM10000_FILES)


def test_kept_archive_is_reused_not_downloaded_again(server: FakeDataverse, payload: Payload, tmp_path: Path) -> None:
    root = tmp_path / "ham"
    _download(server, root, files=[PART1], keep_archives=True)
    archive = root / STATE_DIR / PART1
    assert archive.read_bytes() == payload.files[0].content
    shutil.rmtree(root / "HAM10000_images_part_1")
    server.requests.clear()
    lines = _download(server, root, files=[PART1], keep_archives=True)
    assert server.file_requests() == []  # only the record was asked for
    assert len(server.requests) == 1
    assert sorted(p.name for p in (root / "HAM10000_images_part_1").iterdir()) == sorted(payload.part1)
    assert any("already downloaded, checksum verified" in line for line in lines)


def test_existing_file_with_good_checksum_is_adopted(server: FakeDataverse, payload: Payload, tmp_path: Path) -> None:
    root = tmp_path / "ham"
    root.mkdir()
    (root / METADATA).write_bytes(payload.metadata_csv)
    _download(server, root, files=[METADATA])
    assert server.file_requests() == []
    assert (root / STATE_DIR / f"{METADATA}.done.json").is_file()


def test_foreign_file_in_the_way_is_not_overwritten(server: FakeDataverse, tmp_path: Path) -> None:
    root = tmp_path / "ham"
    root.mkdir()
    (root / METADATA).write_text("my own notes\n")
    with pytest.raises(DownloadError, match="not written by hamkit download"):
        _download(server, root, files=[METADATA])
    assert (root / METADATA).read_text() == "my own notes\n"


# --------------------------------------------------------------------------- resume


def test_partial_download_is_resumed_with_range(server: FakeDataverse, payload: Payload, tmp_path: Path) -> None:
    root = tmp_path / "ham"
    content = payload.files[1].content  # part 2, served through a redirect like on Harvard
    cut = len(content) * 2 // 5
    (root / STATE_DIR).mkdir(parents=True)
    (root / STATE_DIR / f"{PART2}.part").write_bytes(content[:cut])
    lines = _download(server, root, files=[PART2])
    served = server.file_requests(102)
    assert [r.range for r in served] == [f"bytes={cut}-", f"bytes={cut}-"]  # kept across the redirect
    assert served[-1].sent == len(content) - cut
    assert sorted(p.name for p in (root / "HAM10000_images_part_2").iterdir()) == sorted(payload.part2)
    assert not (root / STATE_DIR / f"{PART2}.part").exists()
    assert any(f"resuming at byte {cut}" in line for line in lines)


def test_server_that_ignores_range_restarts_from_zero(server: FakeDataverse, payload: Payload, tmp_path: Path) -> None:
    server.honour_range = False
    root = tmp_path / "ham"
    (root / STATE_DIR).mkdir(parents=True)
    garbage = b"garbage that must not be kept"
    (root / STATE_DIR / f"{PART1}.part").write_bytes(garbage)
    lines = _download(server, root, files=[PART1])
    assert server.file_requests(101)[0].range == f"bytes={len(garbage)}-"
    assert sorted(p.name for p in (root / "HAM10000_images_part_1").iterdir()) == sorted(payload.part1)
    assert any("starting over" in line for line in lines)


def test_dropped_connection_is_resumed_within_the_same_call(
    server: FakeDataverse, payload: Payload, tmp_path: Path
) -> None:
    server.drop_halfway = {104}
    root = tmp_path / "ham"
    _download(server, root, files=[MASKS], retries=2)
    first, second = server.file_requests(104)
    assert first.range is None and second.range == f"bytes={first.sent}-"
    assert first.sent + second.sent == len(payload.files[3].content)
    assert sorted(p.name for p in (root / MASKS_DIR).iterdir()) == sorted(payload.masks)


def test_transient_http_errors_are_retried(server: FakeDataverse, tmp_path: Path) -> None:
    server.fail_next = 2
    lines = _download(server, tmp_path / "ham", files=[METADATA], retries=2)
    assert (tmp_path / "ham" / METADATA).is_file()
    assert sum("HTTP 503" in line and "retry" in line for line in lines) == 2


# --------------------------------------------------------------------------- failures


def test_checksum_mismatch_is_an_error_and_leaves_nothing(server: FakeDataverse, tmp_path: Path) -> None:
    server.corrupt = {101}
    root = tmp_path / "ham"
    with pytest.raises(DownloadError) as info:
        _download(server, root, files=[PART1], retries=1)
    message = str(info.value)
    assert PART1 in message and "MD5 checksum mismatch" in message and "deleted" in message
    assert len(server.file_requests(101)) == 2  # fetched again once, then given up
    assert not (root / "HAM10000_images_part_1").exists()
    assert sorted(p.name for p in (root / STATE_DIR).iterdir()) == []


def test_sha256_mismatch_is_detected(server: FakeDataverse, tmp_path: Path) -> None:
    server.corrupt = {104}
    with pytest.raises(DownloadError, match="SHA-256 checksum mismatch"):
        _download(server, tmp_path / "ham", files=[MASKS], retries=0)


def test_file_missing_from_the_record_lists_the_available_names(server: FakeDataverse, tmp_path: Path) -> None:
    with pytest.raises(DownloadError) as info:
        _download(server, tmp_path / "ham", files=[PART1, "HAM10000_images_part_3.zip"])
    message = str(info.value)
    assert "'HAM10000_images_part_3.zip'" in message and "'HAM10000_images_part_1.zip'" not in message
    assert PART1 in message and TEST_IMAGES in message
    assert "HAM10000_metadata.tab (original: HAM10000_metadata.csv)" in message
    assert server.file_requests() == []  # nothing fetched before the names were checked


def test_unknown_dataset_is_reported_without_retrying(server: FakeDataverse, tmp_path: Path) -> None:
    with pytest.raises(DownloadError) as info:
        _download(server, tmp_path / "ham", doi="doi:10.5072/FK2/NOPE", retries=3)
    message = str(info.value)
    assert "HTTP 404" in message and "not found." in message and "doi.org/10.5072/FK2/NOPE" in message
    assert len(server.requests) == 1


def test_server_down_is_one_clear_error(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(DownloadError) as info:
        download_ham10000(tmp_path / "ham", base_url=url, progress=False, timeout=2, retries=1)
    message = str(info.value)
    assert message.startswith(f"{url}/api/datasets/:persistentId/versions/:latest?persistentId=")
    assert "cannot connect" in message and "after 2 tries" in message
    assert "rerun" in message and "https://doi.org/10.7910/DVN/DBW86T" in message
    assert "HAM10000_images_part_1/" in message


@pytest.mark.parametrize("evil", ["../evil.jpg", "a/../../evil.jpg", "/tmp/evil.jpg", "C:\\evil.jpg"])
def test_zip_slip_member_is_refused(evil: str, tmp_path: Path) -> None:
    bad = _zip({"ISIC_0000001.jpg": b"fine", evil: b"evil"})
    with serving(FakeDataverse(files=[FakeFile(7, PART1, bad)])) as state:
        with pytest.raises(DownloadError) as info:
            _download(state, tmp_path / "ham", files=[PART1])
    assert repr(evil) in str(info.value) and "refused" in str(info.value)
    assert not (tmp_path / "ham" / "HAM10000_images_part_1").exists()
    assert not list(tmp_path.rglob("evil.jpg"))
    assert not list((tmp_path / "ham" / STATE_DIR).glob("extract-*"))


def test_corrupt_zip_with_matching_checksum_is_reported(tmp_path: Path) -> None:
    with serving(FakeDataverse(files=[FakeFile(7, PART1, b"PK\x03\x04 not really a zip")])) as state:
        with pytest.raises(DownloadError, match="corrupt zip archive"):
            _download(state, tmp_path / "ham", files=[PART1])
    assert not (tmp_path / "ham" / "HAM10000_images_part_1").exists()
    assert not (tmp_path / "ham" / STATE_DIR / f"{PART1}.done.json").exists()


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="list of file names"):
        download_ham10000(tmp_path, files=PART1, progress=False)
    with pytest.raises(DownloadError, match="plain file name"):
        download_ham10000(tmp_path, files=["../x.zip"], progress=False)
    with pytest.raises(DownloadError, match="retries"):
        download_ham10000(tmp_path, retries=-1, progress=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(DownloadError, match="not a folder"):
        download_ham10000(tmp_path / "file", progress=False)


# --------------------------------------------------------------------------- record parsing


def test_record_parsing_handles_every_checksum_shape() -> None:
    answer = {
        "status": "OK",
        "data": {
            "files": [
                {"label": "a.zip", "dataFile": {"id": 1, "filename": "a.zip", "filesize": 9, "md5": "AB"}},
                {
                    "label": "b.zip",
                    "dataFile": {
                        "id": 2,
                        "filename": "b.zip",
                        "filesize": 5,
                        "checksum": {"type": "SHA-1", "value": "cd"},
                    },
                },
                {
                    "label": "c.zip",
                    "dataFile": {
                        "id": 3,
                        "filename": "c.zip",
                        "filesize": 5,
                        "checksum": {"type": "CRC32", "value": "ef"},
                    },
                },
                {
                    "label": "m.tab",
                    "dataFile": {
                        "id": 4,
                        "filename": "m.tab",
                        "filesize": 50,
                        "originalFileFormat": "text/csv",
                        "originalFileSize": 60,
                        "md5": "01",
                    },
                },
            ]
        },
    }
    a, b, c, m = parse_record(answer, source="test")
    assert (a.checksum.kind, a.checksum.value, a.size) == ("MD5", "ab", 9)  # type: ignore[union-attr]
    assert b.checksum is not None and b.checksum.algorithm == "sha1"
    assert c.checksum is None  # unsupported algorithm: size check only
    assert m.tabular and m.size == 60 and m.download_path.endswith("/4?format=original")
    assert select_files([a, m], ["m.csv", "a.zip"], record="r") == {"m.csv": m, "a.zip": a}
    bare = RemoteFile("k", 6, "k", None, 3, None, tabular=False)
    assert select_files([bare], ["k.csv"], record="r")["k.csv"] is bare
    plain_tab = RemoteFile("n.tab", 5, "n.tab", None, 3, None, tabular=False)
    with pytest.raises(DownloadError, match="no file named 'n.csv'"):  # a real .tab is no CSV
        select_files([plain_tab], ["n.csv"], record="r")
    twins = [RemoteFile("t.zip", i, "t.zip", None, 1, None, tabular=False) for i in (8, 9)]
    with pytest.raises(DownloadError, match=r"2 files match 't.zip'.*\(id 8\).*\(id 9\)"):
        select_files(twins, ["t.zip"], record="r")
    with pytest.raises(DownloadError, match="status 'ERROR': nope"):
        parse_record({"status": "ERROR", "message": "nope"}, source="test")
    with pytest.raises(DownloadError, match="numeric id"):
        parse_record({"status": "OK", "data": {"files": [{"label": "x"}]}}, source="test")


def test_api_url_and_member_names() -> None:
    assert dataset_api_url("https://h.org/", "doi:10.1/X").endswith(
        "/api/datasets/:persistentId/versions/:latest?persistentId=doi%3A10.1%2FX"
    )
    assert member_parts("./top//a.jpg") == ("top", "a.jpg")
    assert member_parts("top\\a.jpg") == ("top", "a.jpg")
    assert member_parts("x/..") is None and member_parts("D:/a") is None and member_parts("/") is None


# --------------------------------------------------------------------------- command line


@pytest.fixture()
def only_download(monkeypatch: pytest.MonkeyPatch) -> None:
    """Build the parser with the download command alone."""
    monkeypatch.setattr(cli_main, "COMMAND_MODULES", ("download",))


@pytest.mark.usefixtures("only_download")
def test_cli_downloads_and_prints_the_layout(
    server: FakeDataverse, payload: Payload, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "ham"
    assert main(["download", "ham10000", str(root), "--base-url", server.url, "--timeout", "5"]) == 0
    out = capsys.readouterr().out
    assert f"{PART1}: downloading" in out and f"extracted {len(payload.masks)} files" in out
    layout = out[out.index(f"dataset in {root}\n") :].splitlines()[1:]
    assert [line.split(maxsplit=1) for line in layout] == [
        ["HAM10000_images_part_1/", f"{len(payload.part1)} files"],
        ["HAM10000_images_part_2/", f"{len(payload.part2)} files"],
        [METADATA, f"{len(payload.part1) + len(payload.part2)} rows"],
        [f"{MASKS_DIR}/", f"{len(payload.masks)} files"],
    ]
    assert main(["download", "ham10000", str(root), "--base-url", server.url, "--quiet"]) == 0
    assert capsys.readouterr().out.startswith(f"dataset in {root}\n")


@pytest.mark.usefixtures("only_download")
def test_cli_offline_prints_the_error_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    code = main(
        [
            "download",
            "ham10000",
            str(tmp_path / "ham"),
            "--base-url",
            url,
            "--retries",
            "0",
            "--timeout",
            "2",
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith(f"hamkit download: error: {url}/api/datasets/")
    assert "Traceback" not in err and "cannot connect" in err


@pytest.mark.usefixtures("only_download")
def test_cli_picks_files_and_rejects_unknown_datasets(
    server: FakeDataverse, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "ham"
    assert (
        main(
            [
                "download",
                "ham10000",
                str(root),
                "--base-url",
                server.url,
                "--quiet",
                "--file",
                TEST_IMAGES,
                "--keep-archives",
            ]
        )
        == 0
    )
    assert (root / "ISIC2018_Task3_Test_Images" / "ISIC_0034524.jpg").read_bytes() == b"not needed"
    assert (root / STATE_DIR / TEST_IMAGES).is_file()
    assert "ISIC2018_Task3_Test_Images/  1 files" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["download", "isic2019", str(root)])


def test_download_error_is_a_hamkit_error() -> None:
    assert issubclass(DownloadError, HamkitError)
    summary = layout_summary(Path("/nonexistent"))
    assert summary.splitlines()[1].split() == ["HAM10000_images_part_1/", "missing"]


def test_kept_plain_file_is_copied_atomically(server: FakeDataverse, payload: Payload, tmp_path: Path) -> None:
    root = tmp_path / "ham"
    _download(server, root, files=[METADATA], keep_archives=True)
    assert (root / METADATA).read_bytes() == payload.metadata_csv
    assert (root / STATE_DIR / METADATA).read_bytes() == payload.metadata_csv
    assert sorted(p.name for p in root.iterdir()) == sorted([STATE_DIR, METADATA])


def test_extracted_folder_honours_the_umask(tmp_path):
    """mkdtemp makes 0700 folders; the extracted data set must be readable by colleagues (umask 022)."""
    import os
    import zipfile

    from hamkit.ham10000._archive import extract_zip

    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("sub/ISIC_1.jpg", b"x")
        zf.writestr("ISIC_2.jpg", b"y")  # two tops: nothing is flattened
    old = os.umask(0o022)
    try:
        extract_zip(archive, tmp_path / "images", work_dir=tmp_path / "work")
    finally:
        os.umask(old)
    assert (tmp_path / "images").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "images" / "sub").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "images" / "sub" / "ISIC_1.jpg").stat().st_mode & 0o777 == 0o644
