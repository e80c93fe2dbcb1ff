"""Fetch the AVMIT dataset's public record (Zenodo record 8253350).

Only an explicit user command downloads anything. Each file is fetched into ``<name>.part``,
resumed with an HTTP Range request when a partial file is there, checked against the record's
size and checksum, and only then renamed to its final name: a file under its final name is
always complete and verified.

The record's file list comes from the Zenodo records API (``--record-url``), which gives each
file's key, size, checksum (``md5:<hex>``) and download link; tests point it at a local server.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from .. import _atomic
from ..errors import DownloadError, UnknownFileError

RECORD_ID = 8253350
RECORD_URL = f"https://zenodo.org/api/records/{RECORD_ID}"
#: Downloaded by default: the annotations and the test set.
CSV_FILES = ("video_ratings.csv", "raw_video_ratings.csv", "test_set.csv")
#: Downloaded with ``--embeddings``: the two archives of audiovisual embeddings.
EMBEDDING_FILES = ("AVMIT_VGGish_VGG16.tar", "AVMIT_YamNet_EffNetB0.tar")
CHUNK_BYTES = 1 << 20




@dataclass(frozen=True)
class RecordFile:
    key: str
    size: int
    checksum: str  # "<algorithm>:<hex>"
    url: str


def fetch_record(record_url: str = RECORD_URL, *, timeout: float = 60.0) -> list[RecordFile]:
    """The files of a Zenodo record, from its API JSON."""
    try:
        with urllib.request.urlopen(_request(record_url), timeout=timeout) as response:
            record = json.load(response)
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        raise DownloadError(f"cannot read the record at {record_url} ({_reason(err)}); "
                            "check the network connection or --record-url") from err
    except json.JSONDecodeError as err:
        raise DownloadError(f"the record at {record_url} is not JSON ({err})") from err
    return parse_record(record, base_url=record_url)


def parse_record(record: dict, *, base_url: str = RECORD_URL) -> list[RecordFile]:
    """Parse the ``files`` of a Zenodo record (legacy list or InvenioRDM ``entries``)."""
    files = record.get("files")
    if isinstance(files, dict):
        files = list((files.get("entries") or {}).values())
    if not files:
        raise DownloadError("the record lists no files")
    out = []
    for entry in files:
        key = entry.get("key") or entry.get("filename")
        links = entry.get("links") or {}
        url = links.get("content") or links.get("self") or links.get("download")
        if not key or url is None or "size" not in entry:
            raise DownloadError(f"the record's file entry {entry!r} lacks key, size or link")
        checksum = entry.get("checksum") or ""
        if checksum and ":" not in checksum:
            checksum = "md5:" + checksum
        out.append(RecordFile(key=key, size=int(entry["size"]), checksum=checksum,
                              url=urllib.parse.urljoin(base_url, url)))
    return out


def download(to, files=None, *, embeddings: bool = False, record_url: str = RECORD_URL,
             progress: bool = True, timeout: float = 60.0) -> list[Path]:
    """Download files of the AVMIT record into ``to``.

    Parameters
    ----------
    to : destination folder (created if needed).
    files : names of record files to fetch (default: the CSV files; plus the embedding
        archives with ``embeddings=True``).
    record_url : the records API URL (default: Zenodo record 8253350).

    Returns
    -------
    list of Path
        The verified files, in the order asked. Files already present and verified are kept.
    """
    to = Path(to)
    record = {f.key: f for f in fetch_record(record_url, timeout=timeout)}
    wanted = list(files) if files else list(CSV_FILES) + (list(EMBEDDING_FILES) if embeddings
                                                            else [])
    missing = [name for name in wanted if name not in record]
    if missing:
        raise UnknownFileError(f"not in the record: {', '.join(missing)}; available: "
                            f"{', '.join(sorted(record))}")
    to.mkdir(parents=True, exist_ok=True)
    return [fetch_file(record[name], to, progress=progress, timeout=timeout) for name in wanted]


def fetch_file(entry: RecordFile, to: Path, *, progress: bool = True,
               timeout: float = 60.0) -> Path:
    """Download one record file with resume and verification; see the module docstring."""
    final = Path(to) / entry.key
    part = final.with_name(final.name + ".part")
    if final.exists():
        if final.stat().st_size == entry.size and _digest_matches(final, entry.checksum):
            return final
        # A file under the final name that does not verify cannot be trusted: fetch it anew.
        final.unlink()
    offset = part.stat().st_size if part.exists() else 0
    if offset > entry.size:
        part.unlink()
        offset = 0
    if offset < entry.size or not part.exists():  # (an empty record file has no .part yet)
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        try:
            response = urllib.request.urlopen(_request(entry.url, headers), timeout=timeout)
        except urllib.error.HTTPError as err:
            if err.code == 416 and offset:  # nothing left to send: verify what we have
                response = None
            else:
                raise DownloadError(f"{entry.key}: HTTP {err.code} from {entry.url}") from err
        except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
            raise DownloadError(f"{entry.key}: cannot connect ({_reason(err)}); run the same "
                                "command again to resume") from err
        if response is not None:
            with response:
                if offset and response.status != 206:
                    offset = 0  # the server ignored the Range header: start again
                mode = "ab" if offset else "wb"
                bar = tqdm(total=entry.size, initial=offset, unit="B", unit_scale=True,
                           unit_divisor=1024, desc=entry.key, disable=not progress)
                try:
                    with open(part, mode) as fh:
                        while True:
                            try:
                                chunk = response.read(CHUNK_BYTES)
                            # IncompleteRead (a body cut short) is an HTTPException,
                            # not an OSError
                            except (OSError, urllib.error.URLError,
                                    http.client.HTTPException) as err:
                                raise DownloadError(
                                    f"{entry.key}: connection lost after "
                                    f"{fh.tell():,} bytes ({_reason(err)}); run the same "
                                    "command again to resume") from err
                            if not chunk:
                                break
                            fh.write(chunk)
                            bar.update(len(chunk))
                        fh.flush()
                        os.fsync(fh.fileno())
                finally:
                    bar.close()
    size = part.stat().st_size if part.exists() else 0
    if size < entry.size:
        raise DownloadError(f"{entry.key}: got {size:,} of {entry.size:,} bytes; run the same "
                            "command again to resume")
    if size > entry.size or not _digest_matches(part, entry.checksum):
        part.unlink()
        raise DownloadError(f"{entry.key}: size or checksum does not match the record "
                            f"(expected {entry.size:,} bytes, {entry.checksum}); the partial "
                            "file was removed, run the command again")
    _atomic.replace(part, final)
    return final


def _digest_matches(path: Path, checksum: str) -> bool:
    if not checksum:
        return True
    algorithm, _, expected = checksum.partition(":")
    try:
        digest = hashlib.new(algorithm.lower())
    except ValueError as err:
        raise DownloadError(f"unknown checksum algorithm '{algorithm}'") from err
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest() == expected.lower()


def _request(url: str, headers: dict | None = None) -> urllib.request.Request:
    return urllib.request.Request(url, headers={"User-Agent": "avmit_psych", **(headers or {})})


def _reason(err: Exception) -> str:
    return str(getattr(err, "reason", err))
