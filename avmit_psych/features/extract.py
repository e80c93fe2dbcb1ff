"""The extraction runner: videos -> audio and visual embeddings -> released-layout TFRecords.

Decoding runs ahead of inference in worker threads, a few videos per ffmpeg process (one to
probe them, one to decode them: ``media.probe_many``, ``media.decode_many``), with the audio
front end; frames and audio of several videos are batched into one model call each; a thread
of its own writes every TFRecord through
:func:`avmit_psych.dataset.tfrecords.write_example` (temporary name, fsync, rename, fsync of the
folder), so a killed run leaves no incomplete file under a final name. The thread that calls
the models does nothing else: the models use every core, ffmpeg runs in processes of its own,
and what the other threads do in Python (resizing, resampling, the front end) is NumPy, SciPy
and OpenCV work that releases the GIL (``benchmarks/bench_extract.py --profile`` shows where
the time goes). The batch a video falls in does not change its embeddings, bit for bit (the
built-in models; except VGGish on a batch of a single example, which differs in the last
bits). A rerun skips a video
only when its TFRecord reads back whole (gzip, framing and both CRCs, the released layout, the
CSV's label); a file that does not (cut short by a power cut, say) is removed and the video
redone. Each video gets a row in the run report: written, skipped (already there, verified) or
failed, with the reason.
"""
from __future__ import annotations

import threading
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
from .. import media

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
    examples: np.ndarray | None = None  # the audio model's input, when computed while decoding


def _decode(job: Job, frame_interval_s: float, audio_examples=None) -> _Decoded:
    """Probe and decode one video; ``audio_examples`` (the audio encoder's ``examples``), when
    given, computes the audio model's input here too, off the thread that runs the models."""
    try:
        info = media.probe(job.video_path)
        return _decoded(job, info, media.decode(job.video_path, frame_interval_s, info),
                        audio_examples)
    except media.MediaError as err:
        return _Decoded(job, error=str(err))
    except Exception as err:  # an unexpected decoder failure must not stop the run
        return _Decoded(job, error=f"{type(err).__name__}: {err}")


def _decoded(job: Job, info: media.MediaInfo, values, audio_examples) -> _Decoded:
    frames, _, waveform, has_audio = values
    out = _Decoded(job, waveform, has_audio, frames, info)
    if audio_examples is not None:
        out.examples = audio_examples(waveform)
    if not has_audio:
        out.notes.append(f"no audio stream: {len(waveform) / media.SAMPLE_RATE_HZ:.2f} s of "
                         "digital silence")
    return out


def _decode_chunk(jobs: list[Job], frame_interval_s: float, audio_examples=None
                  ) -> list[_Decoded]:
    """:func:`_decode` of a few videos, probed by one ffmpeg process and decoded by another
    (``media.probe_many``, ``media.decode_many``: the same values and messages)."""
    try:
        infos = media.probe_many([job.video_path for job in jobs])
        ok = [(job, info) for job, info in zip(jobs, infos)
              if not isinstance(info, media.MediaError)]
        values = iter(media.decode_many([(job.video_path, info) for job, info in ok],
                                        frame_interval_s))
        out = []
        for job, info in zip(jobs, infos):
            got = info if isinstance(info, media.MediaError) else next(values)
            try:
                out.append(_Decoded(job, error=str(got)) if isinstance(got, media.MediaError)
                           else _decoded(job, info, got, audio_examples))
            except Exception as err:  # as in _decode: this video fails, the run goes on
                out.append(_Decoded(job, error=f"{type(err).__name__}: {err}"))
        return out
    except Exception:  # unexpected: each video on its own, so that only its own fault shows
        return [_decode(job, frame_interval_s, audio_examples) for job in jobs]


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
    # The audio front end runs in the decoding threads, TFRecords are written (and fsynced) by
    # a thread of their own: this thread only calls the models, which use every core.
    audio_examples = getattr(audio_encoder, "examples", None)
    writing: deque = deque()

    def settle(wait: bool):
        """Report the writes that are done (all of them with ``wait``); a failed write raises."""
        while writing and (wait or writing[0][0].done()):
            future, d, common = writing.popleft()
            future.result()
            record(d.job, "written", "; ".join(d.notes), **common)
            bar.update(1)

    def flush(writer):
        if not pending:
            return
        frames = np.concatenate([d.frames for d in pending])
        visual = visual_encoder.embed(frames)
        waveforms = [d.waveform for d in pending]
        audio = (audio_encoder.embed_many(waveforms, examples=[d.examples for d in pending])
                 if audio_examples is not None else audio_encoder.embed_many(waveforms))
        start = 0
        for d, a in zip(pending, audio):
            v = visual[start:start + len(d.frames)]
            start += len(d.frames)
            common = {"has_audio": d.has_audio, "duration_s": d.info.duration_s,
                      "fps": d.info.fps, "visual_timesteps": len(v), "audio_timesteps": len(a)}
            if len(a) == 0:
                record(d.job, "failed", "audio shorter than one 960 ms example", **common)
                bar.update(1)
            else:
                writing.append((writer.submit(write_example, out_root / d.job.tfrecord_filename,
                                              d.job.filename, d.job.label, a, v), d, common))
        pending.clear()
        settle(wait=False)

    # Videos are decoded a few at a time (media.VIDEOS_PER_PROCESS per ffmpeg process), up
    # to 2 * workers such chunks ahead of the models.
    chunks = iter([todo[i:i + media.VIDEOS_PER_PROCESS]
                   for i in range(0, len(todo), media.VIDEOS_PER_PROCESS)])
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool, \
            ThreadPoolExecutor(max_workers=1) as writer:
        queue: deque = deque()
        for chunk in chunks:
            queue.append(pool.submit(_decode_chunk, chunk, interval, audio_examples))
            if len(queue) >= 2 * max(1, workers):
                break
        while queue:
            chunk_decoded = queue.popleft().result()
            nxt = next(chunks, None)
            if nxt is not None:
                queue.append(pool.submit(_decode_chunk, nxt, interval, audio_examples))
            for decoded in chunk_decoded:
                if decoded.error:
                    record(decoded.job, "failed", decoded.error)
                    bar.update(1)
                    continue
                pending.append(decoded)
                if sum(len(d.frames) for d in pending) >= batch_frames:
                    flush(writer)
        flush(writer)
        settle(wait=True)
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



# -- on a Dask cluster (``--scheduler`` / ``--cluster``; see avmit_psych._cluster) ----------------
@dataclass(frozen=True)
class EncoderSpec:
    """The encoders as the command line names them (``--audio``, ``--audio-model``,
    ``--visual``, ``--visual-weights``, ``--seed``): what a Dask worker needs to build them."""
    audio: str
    audio_model: str
    visual: str
    visual_weights: str = "imagenet"
    seed: int = 0

    @property
    def sizes(self) -> tuple[int, int]:
        """(audio, visual) embedding sizes, known without building the models."""
        from .encoders import AUDIO_MODELS, VISUAL_MODELS
        return AUDIO_MODELS[self.audio], VISUAL_MODELS[self.visual]

    def resolved(self) -> "EncoderSpec":
        """Local model files as absolute paths (a worker's working folder is its own); a
        weights file that is missing raises :class:`DatasetError` here, before any worker
        starts."""
        def local(handle: str, flag: str) -> str:
            if handle in ("random", "imagenet") or "://" in handle:
                return handle
            path = Path(handle).expanduser()
            if path.exists():
                return str(path.absolute())
            if handle.lower().endswith(".h5"):
                raise DatasetError("weights file not found", path=handle, column=flag,
                                   fix="give the path of an existing .weights.h5 file, the "
                                       "same on every worker")
            return handle
        from dataclasses import replace
        return replace(self, audio_model=local(str(self.audio_model), "--audio-model"),
                       visual_weights=local(str(self.visual_weights), "--visual-weights"))

    def load(self) -> tuple:
        """(AudioEncoder, VisualEncoder), built as ``features extract`` builds them."""
        from . import encoders
        audio = encoders.AudioEncoder.load(self.audio, self.audio_model, seed=self.seed)
        visual = encoders.VisualEncoder.load(self.visual, self.visual_weights, seed=self.seed)
        return audio, visual


#: Encoders built in this process, by spec: a Dask worker builds them for its first shard and
#: keeps them for the next ones. ``ENCODER_LOADS`` counts the builds (once per process).
_PROCESS_ENCODERS: dict[EncoderSpec, tuple] = {}
ENCODER_LOADS: dict[EncoderSpec, int] = {}
_PROCESS_ENCODERS_LOCK = threading.Lock()


def encoders_for(spec: EncoderSpec) -> tuple:
    """This process's (AudioEncoder, VisualEncoder) for ``spec``, built on first use."""
    with _PROCESS_ENCODERS_LOCK:  # two shards starting at once in one worker build them once
        if spec not in _PROCESS_ENCODERS:
            _PROCESS_ENCODERS[spec] = _load_undisturbed(spec)
            ENCODER_LOADS[spec] = ENCODER_LOADS.get(spec, 0) + 1
        return _PROCESS_ENCODERS[spec]


def _load_undisturbed(spec: EncoderSpec) -> tuple:
    """``spec.load()``; on a Dask worker, run on the worker's event-loop thread.

    Random weights are drawn from seeds Keras takes from Python's global ``random``
    (``SeedGenerator`` defaults), after ``set_random_seed``. A Dask worker's event loop draws
    from the same generator meanwhile (tornado's periodic-callback jitter), so built from a
    task's thread the weights would depend on timing and differ from a one-machine run's. On
    the loop's own thread nothing else runs until the build is done.
    """
    import sys
    if "distributed" not in sys.modules:
        return spec.load()
    from distributed import get_worker
    from distributed.utils import sync
    try:
        worker = get_worker()
    except ValueError:  # not in a Dask worker
        return spec.load()

    async def build():
        return spec.load()
    return sync(worker.loop, build)


def extract_shard(jobs: list[Job], spec: EncoderSpec, out_root, *, batch_frames: int = 64,
                  workers: int = 1) -> list[dict]:
    """On a Dask worker: :func:`extract` of one shard with this process's encoders; returns
    the shard's report rows."""
    audio, visual = encoders_for(spec)
    report = extract(jobs, audio, visual, out_root, workers=workers, batch_frames=batch_frames,
                     progress=False)
    return report.to_dict("records")


def extract_on_dask(jobs: list[Job], spec: EncoderSpec, out_root, cluster, *,
                    shard_size: int = 16, batch_frames: int = 64, retries: int = 2,
                    progress: bool = True, check_workers: int = 4) -> pd.DataFrame:
    """:func:`extract` on a Dask cluster; the same TFRecords (byte for byte) and run report.

    Parameters
    ----------
    jobs
        From :func:`plan`.
    spec
        The encoders; each worker process builds them once (:func:`encoders_for`).
    out_root
        The TFRecord root, on a filesystem every worker sees under the same path.
    cluster
        ``"local:N"`` (N worker processes on this machine for the run), a scheduler address
        (``"tcp://HOST:8786"``) or a ``distributed.Client``; see :mod:`avmit_psych._cluster`.
    shard_size
        Videos per Dask task. Each shard runs :func:`extract` (one decoding thread; batched
        inference; every TFRecord written atomically) and returns its report rows.

    Videos whose TFRecord already reads back whole (:func:`check_done`) are reported skipped
    here and sent to no worker, so a finished run's rerun starts no cluster; the rest go out
    in shards. A shard that fails after its retries (or whose workers kept dying) has its
    videos reported failed with the reason; running the command again does them.
    """
    from dataclasses import replace

    from .. import _cluster

    out_root = Path(out_root).absolute()
    spec = spec.resolved()
    remove_stale_temporaries(out_root)
    done = check_done(jobs, out_root, sizes=spec.sizes, workers=check_workers)
    rows = [_report_row(j, "skipped", "already extracted (verified)") for j in jobs
            if j.row in done and done[j.row] is None]
    todo = [replace(j, video_path=Path(j.video_path).absolute()) for j in jobs
            if not (j.row in done and done[j.row] is None)]
    if todo:
        with _cluster.connect(cluster) as client:
            for _, shard, result, error in _cluster.run_shards(
                    client, extract_shard, _cluster.shards(todo, shard_size), spec,
                    str(out_root), batch_frames=batch_frames, retries=retries,
                    progress=progress, desc="extract", unit="video"):
                rows += result if error is None else [_report_row(j, "failed", error)
                                                      for j in shard]
    report = pd.DataFrame(rows).reindex(columns=REPORT_COLUMNS)
    given = {j.row: str(j.video_path) for j in jobs}  # as the user gave them, not absolute
    report["video_path"] = report["row"].map(given)
    return report.sort_values("row", kind="stable").reset_index(drop=True)


def _report_row(job: Job, status: str, reason: str) -> dict:
    return {"row": job.row, "filename": job.filename, "label": job.label,
            "video_path": str(job.video_path), "tfrecord_filename": job.tfrecord_filename,
            "status": status, "reason": reason, "manipulation": job.manipulation,
            "level": job.level}
