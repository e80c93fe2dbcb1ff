"""The extraction runner: videos -> audio and visual embeddings -> released-layout TFRecords.

Decoding (ffmpeg, in worker threads) runs ahead of inference; frames and audio of several
videos are batched into one model call each; every TFRecord is written through
:func:`avmit_psych.dataset.tfrecords.write_example` (temporary name, fsync, rename, fsync of the
folder), so a killed run leaves no incomplete file under a final name. A rerun skips a video
only when its TFRecord reads back whole (gzip, framing and both CRCs, the released layout, the
CSV's label); a file that does not (cut short by a power cut, say) is removed and the video
redone. Each video gets a row in the run report: written, skipped (already there, verified) or
failed, with the reason.
"""
from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import _atomic
from ..dataset import schema
from ..dataset.schema import DatasetError
from ..dataset.tfrecords import (FEATURE_SETS, feature_set_of, manifest_tfrecord_filename,
                                 read_example, write_example)
from . import media

#: Frame interval (s) and audio model that go with each visual model in the released sets.
PAIRINGS = {("vggish", "vgg16"), ("yamnet", "effnetb0")}
REPORT_COLUMNS = ["row", "filename", "label", "video_path", "tfrecord_filename", "status",
                  "reason", "has_audio", "audio_timesteps", "visual_timesteps", "duration_s",
                  "fps", "manipulation", "level"]


@dataclass
class Job:
    row: int
    filename: str
    label: str
    video_path: Path
    tfrecord_filename: str
    manipulation: str = ""
    level: str = ""


def _label_column(df: pd.DataFrame, path) -> str:
    for col in ("AVMIT_label", "label", "AVMIT label"):
        if col in df.columns:
            return col
    raise DatasetError("no label column (AVMIT_label, label or 'AVMIT label')", path=path,
                       fix="give video ratings, a test set, a training file or a manifest")


def plan(csv_path, videos_root, *, label_classes=None) -> list[Job]:
    """The videos a CSV names, with where each is read from and written to.

    Video paths: a manifest's ``path`` column (absolute, or relative to ``videos_root``);
    otherwise ``filename`` under ``videos_root``, or under ``videos_root/<video_location>/``
    (the MIT layout the authors read from), or ``new_filename`` (the renamed test set).
    Output: the CSV's ``tfrecord_filename``; for a manifest ``<label>/<stimulus_id>.tfrecord``;
    else ``<label>/<video stem>.tfrecord``.
    """
    csv_path, root = Path(csv_path), Path(videos_root)
    df = schema.read_csv(csv_path)
    label_col = _label_column(df, csv_path)
    manifest = "stimulus_id" in df.columns
    if not manifest and "filename" not in df.columns:
        raise DatasetError("no filename column", path=csv_path, column="filename",
                           fix="give a CSV that names the videos")
    jobs = []
    for i, row in enumerate(df.to_dict("records")):
        label = str(row[label_col]).strip()
        if not label or (label_classes is not None and label not in label_classes):
            raise DatasetError(f"label '{label}' is not a class", path=csv_path, row=i + 1,
                               column=label_col, fix="use the AVMIT class names")
        if manifest:
            video = Path(str(row.get("path", "")))
            video = video if video.is_absolute() else root / video
            filename = str(row.get("source_filename") or row["stimulus_id"])
            tf_rel = str(row.get("tfrecord_filename") or
                         manifest_tfrecord_filename(label, row["stimulus_id"]))
        else:
            filename = str(row["filename"])
            candidates = [root / filename]
            if row.get("video_location"):
                candidates.append(root / str(row["video_location"]) / filename)
            if row.get("new_filename"):
                candidates.append(root / str(row["new_filename"]))
            video = next((c for c in candidates if c.exists()), candidates[0])
            tf_rel = str(row.get("tfrecord_filename") or schema.tfrecord_filename(label, filename))
        jobs.append(Job(row=i + 1, filename=filename, label=label, video_path=video,
                        tfrecord_filename=tf_rel,
                        manipulation=str(row.get("manipulation", "") or ""),
                        level="" if row.get("level") is None else str(row.get("level"))))
    return jobs


@dataclass
class _Decoded:
    job: Job
    waveform: np.ndarray | None = None
    has_audio: bool = True
    frames: np.ndarray | None = None
    info: media.MediaInfo | None = None
    error: str | None = None
    notes: list = field(default_factory=list)


def _decode(job: Job, frame_interval_s: float) -> _Decoded:
    try:
        info = media.probe(job.video_path)
        frames, _, waveform, has_audio = media.decode(job.video_path, frame_interval_s, info)
        out = _Decoded(job, waveform, has_audio, frames, info)
        if not has_audio:
            out.notes.append(f"no audio stream: {len(waveform) / media.SAMPLE_RATE_HZ:.2f} s of "
                             "digital silence")
        return out
    except media.MediaError as err:
        return _Decoded(job, error=str(err))
    except Exception as err:  # an unexpected decoder failure must not stop the run
        return _Decoded(job, error=f"{type(err).__name__}: {err}")


def extract(jobs: list[Job], audio_encoder, visual_encoder, out_root, *, workers: int = 2,
            batch_frames: int = 64, progress: bool = True,
            frame_interval_s: float | None = None) -> pd.DataFrame:
    """Embed every job's video and write its TFRecord; returns the run report.

    ``audio_encoder``/``visual_encoder`` are :class:`~avmit_psych.features.encoders.AudioEncoder`
    and ``VisualEncoder``. Jobs whose TFRecord exists and reads back whole are skipped; an
    existing TFRecord that does not is removed and its video redone (see :func:`check_done`).

    Raises
    ------
    DatasetError
        The output folder already holds embeddings of another size than these encoders make.
    """
    from tqdm.auto import tqdm

    out_root = Path(out_root)
    interval = frame_interval_s or media.FRAME_INTERVAL_S[visual_encoder.name]
    report: list[dict] = []
    redo: dict[int, str] = {}

    def record(job, status, reason="", **extra):
        if job.row in redo:
            what = "replaced" if status == "written" else "removed"
            reason = "; ".join(r for r in (reason, f"{what} an unreadable earlier TFRecord "
                                                   f"({redo[job.row]})") if r)
        report.append({"row": job.row, "filename": job.filename, "label": job.label,
                       "video_path": str(job.video_path),
                       "tfrecord_filename": job.tfrecord_filename, "status": status,
                       "reason": reason, "manipulation": job.manipulation,
                       "level": job.level, **extra})

    remove_stale_temporaries(out_root)
    sizes = (getattr(audio_encoder, "size", None), getattr(visual_encoder, "size", None))
    done = check_done(jobs, out_root, sizes=None if None in sizes else sizes, workers=workers)
    todo = []
    for job in jobs:
        if job.row in done and done[job.row] is None:
            record(job, "skipped", "already extracted (verified)")
            continue
        if job.row in done:  # there, but unreadable: remove it, so that nothing claims done
            _atomic.remove(out_root / job.tfrecord_filename)
            redo[job.row] = done[job.row]
        todo.append(job)
    bar = tqdm(total=len(todo), unit="video", desc="extract", disable=not progress)
    pending: list[_Decoded] = []

    def flush():
        if not pending:
            return
        frames = np.concatenate([d.frames for d in pending])
        visual = visual_encoder.embed(frames)
        audio = audio_encoder.embed_many([d.waveform for d in pending])
        start = 0
        for d, a in zip(pending, audio):
            v = visual[start:start + len(d.frames)]
            start += len(d.frames)
            common = {"has_audio": d.has_audio, "duration_s": d.info.duration_s,
                      "fps": d.info.fps, "visual_timesteps": len(v), "audio_timesteps": len(a)}
            if len(a) == 0:
                record(d.job, "failed", "audio shorter than one 960 ms example", **common)
            else:
                write_example(out_root / d.job.tfrecord_filename, d.job.filename, d.job.label,
                              a, v)
                record(d.job, "written", "; ".join(d.notes), **common)
        bar.update(len(pending))
        pending.clear()

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        queue: deque = deque()
        ahead = max(4, 4 * workers)
        it = iter(todo)
        for job in it:
            queue.append(pool.submit(_decode, job, interval))
            if len(queue) >= ahead:
                break
        while queue:
            decoded = queue.popleft().result()
            nxt = next(it, None)
            if nxt is not None:
                queue.append(pool.submit(_decode, nxt, interval))
            if decoded.error:
                record(decoded.job, "failed", decoded.error)
                bar.update(1)
                continue
            pending.append(decoded)
            if sum(len(d.frames) for d in pending) >= batch_frames:
                flush()
        flush()
    bar.close()
    out = pd.DataFrame(report).reindex(columns=REPORT_COLUMNS)
    return out.sort_values("row", kind="stable").reset_index(drop=True)


def check_done(jobs: list[Job], out_root, *, sizes: tuple[int, int] | None = None,
               workers: int = 2) -> dict[int, str | None]:
    """Which existing TFRecords a rerun may keep: ``{job.row: None}`` for a file that reads
    back whole (gzip and its CRC, the TFRecord framing and both CRC-32Cs, the released layout,
    the job's label), ``{job.row: problem}`` for one that does not. Jobs without a file are
    left out. A full read costs ~0.3 ms per file, little beside embedding a video.

    Raises
    ------
    DatasetError
        A readable file holds embeddings of other sizes than ``sizes`` (audio, visual): the
        folder belongs to another embedding set, whose files must not be overwritten.
    """
    out_root = Path(out_root)
    existing = [j for j in jobs if (out_root / j.tfrecord_filename).exists()]

    def check(job):
        path = out_root / job.tfrecord_filename
        try:
            ex = read_example(path, expected_label=job.label)
        except DatasetError as err:
            return err.problem
        found = (ex.audio.shape[1], ex.visual.shape[1])
        if sizes is not None and found != tuple(sizes):
            held = feature_set_of(*found) if found in FEATURE_SETS.values() else str(found)
            raise DatasetError(f"holds embeddings of sizes {found} ({held}); this run makes "
                               f"{tuple(sizes)}", path=path,
                               fix="give --out a folder of its own for each embedding set")
        return None

    with ThreadPoolExecutor(max_workers=max(1, min(8, 2 * workers))) as pool:
        results = list(pool.map(check, existing))
    return {job.row: problem for job, problem in zip(existing, results)}


def remove_stale_temporaries(out_root) -> int:
    """Delete temporary TFRecords left by a killed run (their writing process is gone)."""
    return _atomic.remove_stale_temporaries(out_root, "*.tfrecord")


def probe_videos(jobs: list[Job], *, workers: int = 2, progress: bool = True) -> pd.DataFrame:
    """Per video: frame rate, duration, size, audio stream and peak amplitude (or the error)."""
    from tqdm.auto import tqdm

    def one(job):
        row = {"filename": job.filename, "video_path": str(job.video_path), "fps": np.nan,
               "duration_s": np.nan, "width": np.nan, "height": np.nan, "has_audio": False,
               "audio_peak": np.nan, "video_codec": "", "audio_codec": "", "error": ""}
        try:
            info = media.probe(job.video_path)
            row.update(fps=info.fps, duration_s=info.duration_s, width=info.width,
                       height=info.height, has_audio=info.has_audio,
                       video_codec=info.video_codec or "", audio_codec=info.audio_codec or "",
                       audio_peak=media.audio_peak(job.video_path, info))
        except media.MediaError as err:
            row["error"] = str(err)
        return row

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        rows = list(tqdm(pool.map(one, jobs), total=len(jobs), unit="video", desc="probe",
                         disable=not progress))
    return pd.DataFrame(rows)


def check_pairing(audio: str, visual: str) -> None:
    if (audio, visual) not in PAIRINGS:
        import warnings
        warnings.warn(f"{audio}+{visual} is not one of the released embedding sets "
                      "(vggish+vgg16, yamnet+effnetb0); the models' configs expect those sizes",
                      stacklevel=2)

