"""Tests for ``avmit_psych.dataset.download`` and ``python -m avmit_psych.dataset download``.

Everything runs against a local fake of the Zenodo records API (``FakeZenodo``): a
ThreadingHTTPServer on 127.0.0.1 that serves the record JSON and the files' contents with HTTP
Range support, records every request (path, Range header, status, body bytes sent) and can be
told, per file, to ignore Range, cut the connection early, serve corrupted bytes or fail with
an HTTP error. No test touches the network.
"""
from __future__ import annotations

import hashlib
import json
import random
import re
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from avmit_psych.dataset import download
from avmit_psych.dataset.download import DownloadError, RecordFile

RECORD_PATH = f"/api/records/{download.RECORD_ID}"
TAR = "AVMIT_VGGish_VGG16.tar"
TAR2 = "AVMIT_YamNet_EffNetB0.tar"
#: A file of the record that no default selection asks for.
EXTRA = "README.md"


def _fixture_files() -> dict[str, bytes]:
    rng = random.Random(download.RECORD_ID)
    labels = ["dog", "guitar", "rain", "speech", "car"]
    video_ratings = "video_id,label,rating\n" + "".join(
        f"v{i:05d},{rng.choice(labels)},{rng.randint(1, 5)}\n" for i in range(120))
    raw_ratings = "rater,video_id,label,rating\n" + "".join(
        f"r{rng.randint(1, 11):02d},v{i % 120:05d},{rng.choice(labels)},{rng.randint(1, 5)}\n"
        for i in range(400))
    test_set = "video_id,label\n" + "".join(f"v{i:05d},{rng.choice(labels)}\n"
                                            for i in range(0, 120, 3))
    return {
        "video_ratings.csv": video_ratings.encode(),
        "raw_video_ratings.csv": raw_ratings.encode(),
        "test_set.csv": test_set.encode(),
        TAR: rng.randbytes(384 * 1024),
        TAR2: rng.randbytes(256 * 1024),
        EXTRA: b"AVMIT: audiovisual moments in time\n",
    }


FILES = _fixture_files()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


# --------------------------------------------------------------------------- the fake server


@dataclass
class Behaviour:
    """How the fake server answers for one file (or for the record)."""
    status: int | None = None      # answer with this HTTP error instead of the body
    ignore_range: bool = False      # always 200 with the whole body
    cut_after: int | None = None    # send the headers as usual, close after this many body bytes
    corrupt: bool = False           # flip one byte in the middle (same size, wrong md5)
    extra: bytes = b""              # append bytes beyond the record's size
    chunked: bool = False           # Transfer-Encoding: chunked instead of Content-Length


@dataclass
class Hit:
    path: str
    range: str | None
    status: int | None = None
    sent: int = 0                   # body bytes the server sent


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: "FakeZenodo"

    def log_message(self, format, *args):  # keep the test output clean
        pass

    def do_GET(self):
        self.fake.serve(self)


class FakeZenodo:
    def __init__(self, files: dict[str, bytes]):
        self.files = dict(files)
        self.behaviour: dict[str, Behaviour] = {}
        self.record_behaviour = Behaviour()
        self.record_body: bytes | None = None   # replaces the generated record JSON
        self.hits: list[Hit] = []
        self._lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"fake": self})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.record_url = self.base + RECORD_PATH
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.01}, daemon=True)

    # what the record says
    def content_path(self, key: str) -> str:
        return f"{RECORD_PATH}/files/{key}/content"

    def entry(self, key: str) -> dict:
        data = self.files[key]
        return {"id": f"id-{key}", "key": key, "size": len(data), "checksum": f"md5:{md5(data)}",
                "links": {"self": self.base + self.content_path(key)}}

    def record_json(self) -> dict:
        return {"id": download.RECORD_ID, "files": [self.entry(k) for k in self.files]}

    def expected(self, key: str) -> RecordFile:
        data = self.files[key]
        return RecordFile(key=key, size=len(data), checksum=f"md5:{md5(data)}",
                          url=self.base + self.content_path(key))

    # what was asked
    def content_hits(self, key: str | None = None) -> list[Hit]:
        with self._lock:
            return [h for h in self.hits if h.path != RECORD_PATH
                    and (key is None or h.path == self.content_path(key))]

    def record_hits(self) -> list[Hit]:
        with self._lock:
            return [h for h in self.hits if h.path == RECORD_PATH]

    def requested_keys(self) -> list[str]:
        prefix, suffix = f"{RECORD_PATH}/files/", "/content"
        return [h.path[len(prefix):-len(suffix)] for h in self.content_hits()]

    # serving
    def serve(self, h: BaseHTTPRequestHandler) -> None:
        path = urlsplit(h.path).path
        hit = Hit(path, h.headers.get("Range"))
        with self._lock:
            self.hits.append(hit)
        if path == RECORD_PATH:
            body = (self.record_body if self.record_body is not None
                    else json.dumps(self.record_json()).encode())
            return self._respond(h, hit, body, self.record_behaviour, "application/json",
                                 ranged=False)
        m = re.fullmatch(rf"{RECORD_PATH}/files/(.+)/content", path)
        if not m or m.group(1) not in self.files:
            return self._error(h, hit, 404)
        key = m.group(1)
        self._respond(h, hit, self.files[key], self.behaviour.get(key, Behaviour()),
                      "application/octet-stream", ranged=True)

    def _error(self, h, hit: Hit, code: int) -> None:
        body = json.dumps({"status": code, "message": "fake error"}).encode()
        hit.status = code
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.send_header("Connection", "close")
        h.end_headers()
        h.close_connection = True
        h.wfile.write(body)

    def _respond(self, h, hit: Hit, data: bytes, b: Behaviour, ctype: str, *,
                 ranged: bool) -> None:
        if b.status:
            return self._error(h, hit, b.status)
        if b.corrupt:
            mid = len(data) // 2
            data = data[:mid] + bytes([data[mid] ^ 0xFF]) + data[mid + 1:]
        data += b.extra
        status, body, headers = 200, data, {}
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", (hit.range or "").strip())
        if ranged and m and not b.ignore_range:
            start = int(m.group(1))
            end = min(int(m.group(2)) if m.group(2) else len(data) - 1, len(data) - 1)
            if start >= len(data):
                hit.status = 416
                h.send_response(416)
                h.send_header("Content-Range", f"bytes */{len(data)}")
                h.send_header("Content-Length", "0")
                h.send_header("Connection", "close")
                h.end_headers()
                h.close_connection = True
                return
            status, body = 206, data[start:end + 1]
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        hit.status = status
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        if ranged:
            h.send_header("Accept-Ranges", "bytes")
        for name, value in headers.items():
            h.send_header(name, value)
        if b.chunked:
            h.send_header("Transfer-Encoding", "chunked")
        else:
            h.send_header("Content-Length", str(len(body)))  # the full length, even when cut
        h.send_header("Connection", "close")
        h.end_headers()
        h.close_connection = True
        limit = len(body) if b.cut_after is None else min(b.cut_after, len(body))
        hit.sent = limit  # before writing: the client may finish before this thread resumes
        if not b.chunked:
            h.wfile.write(body[:limit])
            return
        step = 16 * 1024
        for i in range(0, len(body), step):
            piece = body[i:i + step]
            allowed = piece[:max(0, limit - i)]
            h.wfile.write(f"{len(piece):x}\r\n".encode() + allowed)
            if len(allowed) < len(piece):
                return  # cut in the middle of a chunk
            h.wfile.write(b"\r\n")
        h.wfile.write(b"0\r\n\r\n")


# --------------------------------------------------------------------------- fixtures & helpers


@pytest.fixture
def server():
    fake = FakeZenodo(FILES)
    fake.thread.start()
    yield fake
    fake.httpd.shutdown()
    fake.httpd.server_close()
    fake.thread.join(timeout=5)


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    """Read in 32 KiB chunks so every archive takes several reads (and writes to .part)."""
    monkeypatch.setattr(download, "CHUNK_BYTES", 32 * 1024)


@pytest.fixture
def closed_port():
    """A port on 127.0.0.1 that refuses connections: bound, never listening."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture
def dest(tmp_path) -> Path:
    return tmp_path / "avmit"


def fetch(server: FakeZenodo, to: Path, files=None, **kwargs) -> list[Path]:
    return download.download(to, files, record_url=server.record_url, progress=False,
                             timeout=5, **kwargs)


def run_download(cli, record_url: str, to: Path, *args):
    return cli("dataset", ["download", "--to", to, "--record-url", record_url, "--quiet",
                           *args])


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def assert_one_line_error(err: str, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    assert lines[0].startswith("error: ")
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0]


# --------------------------------------------------------------------------- parse_record


def test_parse_record_legacy_files_list(server):
    parsed = download.parse_record(server.record_json(), base_url=server.record_url)
    assert parsed == [server.expected(k) for k in FILES]


def test_parse_record_invenio_entries_shape():
    base = "http://127.0.0.1:9/api/records/8253350"
    record = {"files": {"enabled": True, "entries": {
        "test_set.csv": {"key": "test_set.csv", "size": 123, "checksum": "md5:ABCDEF",
                         "links": {"self": "/api/records/8253350/files/test_set.csv",
                                   "content": "/api/records/8253350/files/test_set.csv/content"}},
        TAR: {"key": TAR, "size": "4096", "checksum": "0123abcd",
              "links": {"content": "files/AVMIT_VGGish_VGG16.tar/content"}},
    }}}
    parsed = download.parse_record(record, base_url=base)
    assert parsed == [
        # the content link wins over self (which is the metadata, not the bytes)
        RecordFile("test_set.csv", 123, "md5:ABCDEF",
                   "http://127.0.0.1:9/api/records/8253350/files/test_set.csv/content"),
        # a bare hex checksum is an md5; the size is an int; relative links resolve on base_url
        RecordFile(TAR, 4096, "md5:0123abcd",
                   "http://127.0.0.1:9/api/records/files/AVMIT_VGGish_VGG16.tar/content"),
    ]


@pytest.mark.parametrize("record, message", [
    ({}, "lists no files"),
    ({"files": []}, "lists no files"),
    ({"files": {"entries": {}}}, "lists no files"),
    ({"files": [{"key": "a.csv", "checksum": "md5:00", "links": {"self": "http://x/a"}}]},
     "lacks key, size or link"),
    ({"files": [{"key": "a.csv", "size": 3, "links": {}}]}, "lacks key, size or link"),
    ({"files": [{"size": 3, "links": {"self": "http://x/a"}}]}, "lacks key, size or link"),
], ids=["no-files-key", "empty-list", "empty-entries", "no-size", "no-link", "no-key"])
def test_parse_record_rejects_empty_or_incomplete_records(record, message):
    with pytest.raises(DownloadError, match=message):
        download.parse_record(record)


def test_fetch_record_reads_the_api_json(server):
    assert download.fetch_record(server.record_url, timeout=5) == [server.expected(k)
                                                                    for k in FILES]
    assert [h.path for h in server.hits] == [RECORD_PATH]


# --------------------------------------------------------------------------- 1. what is fetched


def test_default_download_fetches_the_three_csvs_verified(server, dest):
    paths = fetch(server, dest)
    assert paths == [dest / name for name in download.CSV_FILES]
    for name in download.CSV_FILES:
        assert (dest / name).read_bytes() == FILES[name]
    assert listing(dest) == sorted(download.CSV_FILES)  # no archives, no .part left over
    assert sorted(server.requested_keys()) == sorted(download.CSV_FILES)
    assert all(h.range is None and h.status == 200 for h in server.content_hits())


def test_cli_default_download(cli, server, dest):
    result = run_download(cli, server.record_url, dest)
    assert result.code == 0, result.err
    assert result.err == ""
    assert result.out.splitlines() == [f"verified {dest / name}" for name in download.CSV_FILES]
    assert listing(dest) == sorted(download.CSV_FILES)
    for name in download.CSV_FILES:
        assert (dest / name).read_bytes() == FILES[name]


def test_cli_embeddings_also_fetches_the_archives(cli, server, dest):
    result = run_download(cli, server.record_url, dest, "--embeddings")
    assert result.code == 0, result.err
    wanted = list(download.CSV_FILES) + list(download.EMBEDDING_FILES)
    assert result.out.splitlines() == [f"verified {dest / name}" for name in wanted]
    assert listing(dest) == sorted(wanted)
    for name in wanted:
        assert (dest / name).read_bytes() == FILES[name]
    assert sorted(server.requested_keys()) == sorted(wanted)  # EXTRA is not fetched


def test_cli_files_fetches_exactly_that_file(cli, server, dest):
    result = run_download(cli, server.record_url, dest, "--files", TAR)
    assert result.code == 0, result.err
    assert result.out.splitlines() == [f"verified {dest / TAR}"]
    assert listing(dest) == [TAR]
    assert (dest / TAR).read_bytes() == FILES[TAR]
    assert server.requested_keys() == [TAR]


def test_files_are_returned_in_the_order_asked(server, dest):
    paths = fetch(server, dest, [EXTRA, "test_set.csv"])
    assert paths == [dest / EXTRA, dest / "test_set.csv"]
    assert server.requested_keys() == [EXTRA, "test_set.csv"]
    assert (dest / EXTRA).read_bytes() == FILES[EXTRA]


def test_download_from_invenio_record_with_relative_links(server, dest):
    entries = {k: {"key": k, "size": len(FILES[k]), "checksum": f"md5:{md5(FILES[k])}",
                   "links": {"self": f"{RECORD_PATH}/files/{k}",
                             "content": server.content_path(k)}} for k in FILES}
    server.record_body = json.dumps({"files": {"enabled": True, "entries": entries}}).encode()
    fetch(server, dest)
    assert listing(dest) == sorted(download.CSV_FILES)
    for name in download.CSV_FILES:
        assert (dest / name).read_bytes() == FILES[name]


# --------------------------------------------------------------------------- 2. resume


def test_resume_from_existing_part_sends_range_and_completes(server, dest):
    data = FILES[TAR]
    half = len(data) // 2
    dest.mkdir()
    (dest / f"{TAR}.part").write_bytes(data[:half])

    assert fetch(server, dest, [TAR]) == [dest / TAR]

    [hit] = server.content_hits(TAR)
    assert hit.range == f"bytes={half}-"
    assert hit.status == 206
    assert hit.sent == len(data) - half  # only the missing half travelled
    assert (dest / TAR).read_bytes() == data
    assert listing(dest) == [TAR]


def test_interrupted_transfer_keeps_part_and_resumes_with_range(server, dest):
    data = FILES[TAR]
    cut = 100_000
    server.behaviour[TAR] = Behaviour(cut_after=cut)

    with pytest.raises(DownloadError, match=re.escape(TAR)) as info:
        fetch(server, dest, [TAR])
    assert "resume" in str(info.value)
    assert not (dest / TAR).exists()
    assert (dest / f"{TAR}.part").read_bytes() == data[:cut]

    server.behaviour.clear()
    assert fetch(server, dest, [TAR]) == [dest / TAR]
    first, second = server.content_hits(TAR)
    assert first.range is None and first.sent == cut
    assert second.range == f"bytes={cut}-" and second.status == 206
    assert second.sent == len(data) - cut
    assert (dest / TAR).read_bytes() == data
    assert listing(dest) == [TAR]


def test_repeated_interruptions_accumulate_in_part(server, dest):
    data = FILES[TAR]
    server.behaviour[TAR] = Behaviour(cut_after=70_000)
    for _ in range(3):
        with pytest.raises(DownloadError):
            fetch(server, dest, [TAR])
    assert (dest / f"{TAR}.part").read_bytes() == data[:210_000]
    server.behaviour.clear()
    fetch(server, dest, [TAR])
    assert [h.range for h in server.content_hits(TAR)] == [
        None, "bytes=70000-", "bytes=140000-", "bytes=210000-"]
    assert (dest / TAR).read_bytes() == data


def test_cli_interrupted_exits_1_then_resumes(cli, server, dest):
    data = FILES[TAR]
    server.behaviour[TAR] = Behaviour(cut_after=50_000)
    result = run_download(cli, server.record_url, dest, "--files", TAR)
    assert result.code == 1
    assert result.out == ""
    assert_one_line_error(result.err, TAR, "resume")
    assert listing(dest) == [f"{TAR}.part"]

    server.behaviour.clear()
    result = run_download(cli, server.record_url, dest, "--files", TAR)
    assert result.code == 0, result.err
    assert result.out.splitlines() == [f"verified {dest / TAR}"]
    assert server.content_hits(TAR)[-1].range == "bytes=50000-"
    assert (dest / TAR).read_bytes() == data
    assert listing(dest) == [TAR]


def test_chunked_transfer_cut_midway_is_a_download_error_and_resumes(server, dest):
    data = FILES[TAR]
    server.behaviour[TAR] = Behaviour(chunked=True, cut_after=100_000)
    with pytest.raises(DownloadError, match=re.escape(TAR)):
        fetch(server, dest, [TAR])
    assert not (dest / TAR).exists()
    kept = (dest / f"{TAR}.part").read_bytes()
    assert 0 < len(kept) <= 100_000 and kept == data[:len(kept)]

    server.behaviour[TAR] = Behaviour(chunked=True)
    fetch(server, dest, [TAR])
    assert server.content_hits(TAR)[-1].range == f"bytes={len(kept)}-"
    assert (dest / TAR).read_bytes() == data


def test_complete_part_is_verified_without_a_request(server, dest):
    dest.mkdir()
    (dest / f"{TAR}.part").write_bytes(FILES[TAR])
    assert fetch(server, dest, [TAR]) == [dest / TAR]
    assert server.content_hits() == []
    assert (dest / TAR).read_bytes() == FILES[TAR]
    assert listing(dest) == [TAR]


def test_part_longer_than_the_record_restarts_from_zero(server, dest):
    dest.mkdir()
    (dest / f"{TAR}.part").write_bytes(FILES[TAR] + b"junk")
    fetch(server, dest, [TAR])
    [hit] = server.content_hits(TAR)
    assert hit.range is None and hit.status == 200
    assert (dest / TAR).read_bytes() == FILES[TAR]


# --------------------------------------------------------------------------- 3. Range ignored


def test_server_ignoring_range_restarts_from_zero(server, dest):
    data = FILES[TAR]
    half = len(data) // 2
    dest.mkdir()
    # Not the true first half: appending the full body to it, or keeping it, would both show.
    (dest / f"{TAR}.part").write_bytes(b"\0" * half)
    server.behaviour[TAR] = Behaviour(ignore_range=True)

    assert fetch(server, dest, [TAR]) == [dest / TAR]
    [hit] = server.content_hits(TAR)
    assert hit.range == f"bytes={half}-"
    assert hit.status == 200 and hit.sent == len(data)
    assert (dest / TAR).read_bytes() == data
    assert listing(dest) == [TAR]


# --------------------------------------------------------------------------- 4. bad bytes


def test_checksum_mismatch_raises_and_removes_the_part(server, dest):
    server.behaviour["test_set.csv"] = Behaviour(corrupt=True)
    with pytest.raises(DownloadError, match=r"test_set\.csv: size or checksum") as info:
        fetch(server, dest, ["test_set.csv"])
    assert f"md5:{md5(FILES['test_set.csv'])}" in str(info.value)
    assert listing(dest) == []  # neither the final name nor the bad .part


def test_cli_checksum_mismatch_exits_1_with_one_line_error(cli, server, dest):
    server.behaviour[TAR] = Behaviour(corrupt=True)
    result = run_download(cli, server.record_url, dest, "--files", TAR)
    assert result.code == 1
    assert result.out == ""
    assert_one_line_error(result.err, TAR, "checksum")
    assert listing(dest) == []

    server.behaviour.clear()  # the next run starts afresh (no Range) and succeeds
    assert run_download(cli, server.record_url, dest, "--files", TAR).code == 0
    assert server.content_hits(TAR)[-1].range is None
    assert (dest / TAR).read_bytes() == FILES[TAR]


def test_wrong_bytes_in_part_are_caught_and_removed(server, dest):
    data = FILES[TAR]
    half = len(data) // 2
    dest.mkdir()
    (dest / f"{TAR}.part").write_bytes(bytes(b ^ 1 for b in data[:half]))
    with pytest.raises(DownloadError, match="checksum"):
        fetch(server, dest, [TAR])
    assert server.content_hits(TAR)[0].range == f"bytes={half}-"
    assert listing(dest) == []
    fetch(server, dest, [TAR])
    assert server.content_hits(TAR)[-1].range is None
    assert (dest / TAR).read_bytes() == data


def test_more_bytes_than_the_record_says_is_rejected(server, dest):
    server.behaviour["test_set.csv"] = Behaviour(extra=b"trailing,garbage\n")
    with pytest.raises(DownloadError, match="size or checksum"):
        fetch(server, dest, ["test_set.csv"])
    assert listing(dest) == []


# --------------------------------------------------------------------------- 5. already present


def test_verified_files_are_not_downloaded_again(server, dest):
    first = fetch(server, dest, embeddings=True)
    mtimes = {p.name: p.stat().st_mtime_ns for p in first}
    server.hits.clear()

    assert fetch(server, dest, embeddings=True) == first
    assert server.content_hits() == []
    assert len(server.record_hits()) == 1
    assert {p.name: p.stat().st_mtime_ns for p in first} == mtimes


def test_cli_second_run_makes_no_content_requests(cli, server, dest):
    assert run_download(cli, server.record_url, dest).code == 0
    server.hits.clear()
    result = run_download(cli, server.record_url, dest)
    assert result.code == 0
    assert result.out.splitlines() == [f"verified {dest / name}" for name in download.CSV_FILES]
    assert server.content_hits() == []


@pytest.mark.parametrize("wrong", [
    pytest.param(lambda d: bytes(b ^ 0xFF for b in d), id="same-size-wrong-bytes"),
    pytest.param(lambda d: d[: len(d) // 2], id="truncated"),
    pytest.param(lambda d: d + b"x", id="too-long"),
])
def test_wrong_file_under_final_name_is_fetched_anew(server, dest, wrong):
    data = FILES[TAR]
    dest.mkdir()
    (dest / TAR).write_bytes(wrong(data))
    assert fetch(server, dest, [TAR]) == [dest / TAR]
    [hit] = server.content_hits(TAR)
    assert hit.range is None  # the untrusted file is not used as a resume base
    assert (dest / TAR).read_bytes() == data
    assert listing(dest) == [TAR]


def test_failure_midway_keeps_finished_files(server, dest):
    server.behaviour["raw_video_ratings.csv"] = Behaviour(status=500)
    with pytest.raises(DownloadError, match="raw_video_ratings.csv: HTTP 500"):
        fetch(server, dest)
    assert listing(dest) == ["video_ratings.csv"]  # verified before the failure, kept

    server.behaviour.clear()
    server.hits.clear()
    fetch(server, dest)
    assert sorted(server.requested_keys()) == ["raw_video_ratings.csv", "test_set.csv"]
    assert listing(dest) == sorted(download.CSV_FILES)


# --------------------------------------------------------------------------- 6. errors


def test_unknown_name_lists_the_available_files(server, dest):
    with pytest.raises(DownloadError) as info:
        fetch(server, dest, ["test_set.csv", "nope.csv"])
    message = str(info.value)
    assert "not in the record: nope.csv" in message
    assert message.endswith("available: " + ", ".join(sorted(FILES)))
    assert server.content_hits() == []  # nothing fetched, not even the valid name
    assert not dest.exists()


def test_cli_unknown_name_exits_2_listing_names(cli, server, dest):
    result = run_download(cli, server.record_url, dest, "--files", "nope.csv")
    assert result.code == 2  # a usage error, not a failed transfer
    assert_one_line_error(result.err, "nope.csv", *FILES)
    assert server.content_hits() == []


@pytest.mark.parametrize("code", [404, 500])
def test_http_error_on_a_file_is_a_download_error(server, dest, code):
    server.behaviour["test_set.csv"] = Behaviour(status=code)
    with pytest.raises(DownloadError, match=rf"test_set\.csv: HTTP {code} from "
                                            rf"{re.escape(server.base)}"):
        fetch(server, dest, ["test_set.csv"])
    assert listing(dest) == []


def test_file_missing_from_server_cli_exits_1(cli, server, dest):
    server.record_body = json.dumps(server.record_json()).encode()  # still lists it
    del server.files["test_set.csv"]  # but its content URL now answers 404
    result = run_download(cli, server.record_url, dest, "--files", "test_set.csv")
    assert result.code == 1
    assert_one_line_error(result.err, "test_set.csv", "HTTP 404")
    assert [h.status for h in server.content_hits("test_set.csv")] == [404]
    assert listing(dest) == []


def test_record_http_error_is_a_download_error(server, dest):
    server.record_behaviour = Behaviour(status=500)
    with pytest.raises(DownloadError, match=rf"cannot read the record at "
                                            rf"{re.escape(server.record_url)}"):
        fetch(server, dest)
    assert not dest.exists()


def test_record_that_is_not_json_is_a_download_error(server, dest):
    server.record_body = b"<html>maintenance</html>"
    with pytest.raises(DownloadError, match="is not JSON"):
        fetch(server, dest)


def test_record_cut_midway_is_a_download_error(server, dest):
    server.record_behaviour = Behaviour(cut_after=40)
    with pytest.raises(DownloadError, match=re.escape(server.record_url)):
        fetch(server, dest)
    assert not dest.exists()


def test_unreachable_record_url_is_a_download_error(closed_port, dest):
    url = f"http://127.0.0.1:{closed_port}{RECORD_PATH}"
    with pytest.raises(DownloadError, match=rf"cannot read the record at {re.escape(url)}"):
        download.download(dest, record_url=url, progress=False, timeout=5)
    assert not dest.exists()


def test_cli_unreachable_record_url_exits_1(cli, closed_port, dest):
    url = f"http://127.0.0.1:{closed_port}{RECORD_PATH}"
    result = run_download(cli, url, dest)
    assert result.code == 1
    assert result.out == ""
    assert_one_line_error(result.err, "cannot read the record", url)
    assert not dest.exists()


def test_unreachable_file_link_is_a_download_error(server, dest, closed_port):
    entry = server.entry("test_set.csv")
    entry["links"]["self"] = f"http://127.0.0.1:{closed_port}/files/test_set.csv"
    server.record_body = json.dumps({"files": [entry]}).encode()
    with pytest.raises(DownloadError, match=r"test_set\.csv: cannot connect"):
        fetch(server, dest, ["test_set.csv"])
    assert listing(dest) == []


# --------------------------------------------------------------------------- 7. --list


def test_cli_list_prints_key_size_and_checksum(cli, server, dest):
    result = run_download(cli, server.record_url, dest, "--list")
    assert result.code == 0, result.err
    rows = [line.split("\t") for line in result.out.splitlines()]
    assert rows == [[k, f"{len(FILES[k]):,} bytes", f"md5:{md5(FILES[k])}"] for k in FILES]
    assert server.content_hits() == []
    assert not dest.exists()


# --------------------------------------------------------------------------- edge cases


def test_empty_file_in_the_record(server, dest):
    server.files["empty.txt"] = b""
    assert fetch(server, dest, ["empty.txt"]) == [dest / "empty.txt"]
    assert (dest / "empty.txt").read_bytes() == b""
    assert listing(dest) == ["empty.txt"]


def test_unknown_checksum_algorithm_is_a_download_error(server, dest):
    entry = server.entry("test_set.csv")
    entry["checksum"] = "crc99:abc"
    server.record_body = json.dumps({"files": [entry]}).encode()
    with pytest.raises(DownloadError, match="unknown checksum algorithm 'crc99'"):
        fetch(server, dest, ["test_set.csv"])
    assert not (dest / "test_set.csv").exists()
