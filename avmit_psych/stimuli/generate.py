"""Generating a stimulus suite: every (source video, condition) pair, encoded, journaled,
verified, and listed in ``manifest.csv``.

Each worker process takes one source video, decodes it once and makes all of its stimuli, so
the decoding cost is shared by the suite's conditions. A finished stimulus is fsynced, renamed
into place (the folder fsynced) and then appended (fsynced) to ``.journal.csv`` with its size
and SHA-256; a rerun skips a journaled stimulus only when its file still has that size and
SHA-256, and makes it again otherwise (a file cut short by a power cut, say), so a killed run
resumes and nothing broken is kept. ``manifest.csv`` is written last, atomically, and lists
only stimuli that are complete and (unless ``verify=False``) verified.

With ``cluster=`` (``--cluster local:N`` / ``--scheduler tcp://HOST:8786``) the sources still
to do go to Dask workers in shards of ``shard_size`` sources (:mod:`avmit_psych._cluster`);
each worker makes a shard's stimuli exactly as a local worker process would and sends the
journal rows back, and this process journals them and writes the manifest, so the files and
the manifest's checksums are the same as on one machine.
"""
from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from pathlib import Path

import pandas as pd

from .. import _atomic
from .._atomic import atomic_path, sha256_file
from ..dataset import schema
from ..dataset.schema import DatasetError
from ..media import MediaError
from . import effects as E
from . import manipulations as M
from .effects import SNR_CALIBRATION_DB, calibrated_audio_noise  # noqa: F401 (public here too)
from ..media import encode, read_clip
from .suite import NEEDS_SOURCE_AUDIO, Condition, Suite, load_suite, stimulus_id, stimulus_seed

MANIFEST_COLUMNS = list(schema.MANIFEST_COLUMNS)
JOURNAL = ".journal.csv"
JOURNAL_COLUMNS = list(schema.STIMULUS_JOURNAL_COLUMNS)


def sources_from_test_set(test_set_csv, videos_root) -> pd.DataFrame:
    """The source videos of a test-set CSV: ROOT/<new_filename>, ROOT/<filename> or
    ROOT/<video_location>/<filename>, whichever exists (missing ones keep the first)."""
    table = schema.read_csv(test_set_csv, schema.TEST_SET)
    root = Path(videos_root)
    paths = []
    for row in table.itertuples(index=False):
        candidates = [root / row.new_filename, root / row.filename,
                      root / row.video_location / row.filename]
        paths.append(str(next((c for c in candidates if c.exists()), candidates[0])))
    out = table.copy()
    out["source_path"] = paths
    return out.reset_index(drop=True)


def plan(suite: Suite, sources: pd.DataFrame, *, seed: int = 0) -> pd.DataFrame:
    """One row per stimulus: id, source index, condition, output path, seed, donor."""
    donors = None
    if any(c.manipulation == "semantic_swap" for c in suite.conditions):
        try:
            donors = M.assign_donors(sources["AVMIT_label"].to_numpy(), seed=seed)
        except ValueError as err:
            raise DatasetError(str(err), fix="use a test set with several balanced classes")
    rows = []
    for i, src in sources.iterrows():
        for cond in suite.conditions:
            sid = stimulus_id(src["new_filename"], cond)
            rows.append({"stimulus_id": sid, "source": i, "condition": cond,
                         "path": sid + suite.extension, "seed": stimulus_seed(seed, sid),
                         "donor": int(donors[i]) if cond.manipulation == "semantic_swap"
                         else -1})
    return pd.DataFrame(rows)


def make_stimulus(clip, cond: Condition, seed: int, donor_clip=None, *, container: str = "mov",
                  audio_bitrate: str = "192k"):
    """(frames, audio) of one condition from a decoded clip: the condition's moviepy effect
    (:mod:`.effects`, a built-in or a suite's plug-in) applied to the clip, and the composed
    clip rendered at exact frame and sample times for :func:`avmit_psych.media.encode`
    (``container`` 'mp4' calibrates audio noise for AAC; 'mov' holds PCM, which needs no
    correction)."""
    source = E.from_decoded(clip)
    donor = E.from_decoded(donor_clip) if donor_clip is not None else None
    composed = E.apply(cond, source, seed=seed, donor=donor,
                       aac_bitrate=audio_bitrate if container == "mp4" else None)
    frames, audio = E.render(composed, clip.fps, len(clip.frames), clip.sample_rate_hz,
                             len(clip.audio))
    if frames.shape != clip.frames.shape:
        raise ValueError(f"the effect made frames of shape {frames.shape[1:]}, the source's "
                         f"are {clip.frames.shape[1:]}")
    return frames, audio


def _work_source(task: dict) -> list[dict]:
    """In a worker: make every pending stimulus of one source; rows for the journal."""
    out_dir = Path(task["out_dir"])
    results = []
    try:
        clip = read_clip(task["source_path"])
    except (MediaError, OSError) as err:
        return [{"stimulus_id": s["stimulus_id"], "error": f"source: {err}"} for s in task["stimuli"]]
    donor_cache = {}
    for s in task["stimuli"]:
        cond = s["condition"]
        try:
            donor_clip = None
            if cond.manipulation == "semantic_swap":
                donor_path = s["donor_path"]
                if donor_path not in donor_cache:
                    donor_cache[donor_path] = read_clip(donor_path)
                donor_clip = donor_cache[donor_path]
                if not donor_clip.has_audio:
                    raise MediaError("the donor video has no audio stream")
            if not clip.has_audio and cond.manipulation in NEEDS_SOURCE_AUDIO and \
                    task["silent_sources"] == "fail":
                raise MediaError("the source has no audio stream (suite: silent_sources: fail)")
            frames, audio = make_stimulus(clip, cond, s["seed"], donor_clip,
                                          container=task["container"],
                                          audio_bitrate=task["audio_bitrate"])
            target = out_dir / s["path"]
            encode(target, frames, clip.fps, audio, clip.sample_rate_hz,
                   container=task["container"], crf=task["crf"],
                   audio_bitrate=task["audio_bitrate"])
            results.append({
                "stimulus_id": s["stimulus_id"], "path": s["path"],
                "duration_s": round(len(frames) / float(clip.fps), 6),
                "fps": round(float(clip.fps), 6), "sample_rate": clip.sample_rate_hz,
                "sha256": sha256_file(target), "size": target.stat().st_size})
        except (MediaError, ValueError, RuntimeError, OSError) as err:
            results.append({"stimulus_id": s["stimulus_id"], "error": str(err)})
    return results


def _check_output_folder(out_dir: Path, suite: Suite, seed: int) -> None:
    stamp = out_dir / "suite.json"
    mine = {"suite": suite.name, "seed": int(seed), "suite_yaml": suite.text}
    if stamp.exists():
        theirs = json.loads(stamp.read_text())
        if theirs != mine:
            what = "seed" if theirs.get("suite_yaml") == suite.text else "suite"
            raise DatasetError(f"this folder holds stimuli of a different {what} "
                               f"('{theirs.get('suite')}', seed {theirs.get('seed')})",
                               path=out_dir, fix="use a new --out folder, or the same suite "
                                                 "and --seed to resume")
    else:
        out_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(stamp) as tmp:
            tmp.write_text(json.dumps(mine, indent=2))


def _read_journal(path: Path) -> pd.DataFrame:
    """The journal's rows; a line torn by a crash mid-append is left out (its stimulus is
    made again)."""
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame(columns=JOURNAL_COLUMNS)
    table = pd.read_csv(path, dtype={"stimulus_id": str, "path": str, "sha256": str},
                        on_bad_lines="skip")
    return table.reindex(columns=JOURNAL_COLUMNS)


def _append_journal(path: Path, rows: list[dict]) -> None:
    cols = JOURNAL_COLUMNS
    if path.exists() and path.stat().st_size:
        with open(path, encoding="utf-8", errors="replace") as fh:
            if "size" not in fh.readline().strip().split(","):
                cols = [c for c in JOURNAL_COLUMNS if c != "size"]  # a journal from before sizes
    with _atomic.appending(path) as (fh, new):
        pd.DataFrame(rows, columns=cols).to_csv(fh, header=new, index=False,
                                                lineterminator="\n")


def check_done(journal: pd.DataFrame, out_dir, *, workers: int = 4) -> tuple[set, dict]:
    """Which journaled stimuli a rerun may keep: (ids whose file has the journaled size and
    SHA-256, {id: problem} for those whose file is there but differs). Only the last journal
    row of each stimulus counts; stimuli whose file is missing are in neither."""
    out_dir = Path(out_dir)
    last = journal.dropna(subset=["stimulus_id", "path"]).drop_duplicates("stimulus_id",
                                                                         keep="last")

    def check(row):
        target = out_dir / row["path"]
        if not target.exists():
            return None
        size = row.get("size")
        if pd.notna(size) and target.stat().st_size != int(size):
            return f"{target.stat().st_size} bytes, the journal says {int(size)}"
        if not isinstance(row["sha256"], str) or sha256_file(target) != row["sha256"]:
            return "SHA-256 differs from the journal's"
        return ""

    rows = last.to_dict("records")
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = list(pool.map(check, rows))
    done = {r["stimulus_id"] for r, p in zip(rows, results) if p == ""}
    bad = {r["stimulus_id"]: p for r, p in zip(rows, results) if p}
    return done, bad


def generate(suite: Suite | str | Path, sources: pd.DataFrame, out_dir, *, seed: int = 0,
             workers: int = 2, progress: bool = True, verify: bool = True, cluster=None,
             shard_size: int = 2, retries: int = 2):
    """Make (or finish) a suite. Returns (manifest, failures, verification or None).

    ``cluster``: None (this machine, ``workers`` processes), or ``"local:N"``, a scheduler
    address (``"tcp://HOST:8786"``) or a ``distributed.Client``: the sources with stimuli still
    to make go to Dask workers in shards of ``shard_size`` sources, a shard that raised is run
    again up to ``retries`` times, and a shard that still fails has its stimuli listed in the
    failures (a rerun makes them). The suite's folder and sources must have the same paths on
    every worker.
    """
    from tqdm.auto import tqdm

    suite = load_suite(suite) if not isinstance(suite, Suite) else suite
    out_dir = Path(out_dir)
    _check_output_folder(out_dir, suite, seed)
    _atomic.remove_stale_temporaries(out_dir)  # what a killed run left half-written
    stimuli = plan(suite, sources, seed=seed)
    journal_path = out_dir / JOURNAL
    done, broken = check_done(_read_journal(journal_path), out_dir, workers=2 * workers)
    for sid, path in zip(stimuli["stimulus_id"], stimuli["path"]):
        if sid in broken:  # made again below; until then nothing claims it is finished
            _atomic.remove(out_dir / path)
    tasks = []
    for src_index, group in stimuli.groupby("source", sort=True):
        pending = [s for s in group.to_dict("records") if s["stimulus_id"] not in done]
        for s in pending:
            if s["donor"] >= 0:
                s["donor_path"] = sources.loc[s["donor"], "source_path"]
        if pending:
            tasks.append({"source_path": sources.loc[src_index, "source_path"],
                          "stimuli": pending, "out_dir": str(out_dir),
                          "container": suite.container, "crf": suite.crf,
                          "audio_bitrate": suite.audio_bitrate,
                          "silent_sources": suite.silent_sources})
    failures = []
    bar = tqdm(total=len(stimuli), initial=len(done), unit="stimulus", desc=suite.name,
               disable=not progress)
    if tasks:
        results = (_on_processes(tasks, workers) if cluster is None else
                   _on_dask(tasks, cluster, shard_size=shard_size, retries=retries))
        for rows in results:  # journaled as they come, so a killed run loses little
            ok = [r for r in rows if "error" not in r]
            failures += [r for r in rows if "error" in r]
            if ok:
                _append_journal(journal_path, ok)
            bar.update(len(rows))
    bar.close()
    journal = _read_journal(journal_path).dropna(subset=["stimulus_id", "path"])
    journal = journal.drop_duplicates("stimulus_id", keep="last")
    manifest = _manifest(stimuli, sources, journal, out_dir, suite)
    failures = pd.DataFrame(failures, columns=["stimulus_id", "error"])
    verification = None
    if verify:
        from .verify import verify_manifest
        verification = verify_manifest(manifest, out_dir)
        passed = set(verification.loc[verification["ok"], "stimulus_id"])
        manifest["verified"] = manifest["stimulus_id"].isin(passed)
        schema.write_csv(verification, out_dir / "verify.csv")
        manifest = manifest[manifest["verified"]]
    schema.write_csv(manifest.reset_index(drop=True), out_dir / "manifest.csv")
    schema.write_csv(failures, out_dir / "failures.csv")
    return manifest.reset_index(drop=True), failures, verification


def _on_processes(tasks: list[dict], workers: int):
    """Each source's journal rows from a pool of ``workers`` processes, as they finish."""
    with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [pool.submit(_work_source, t) for t in tasks]
        for fut in as_completed(futures):
            yield fut.result()


def _work_shard(tasks: list[dict]) -> list[dict]:
    """On a Dask worker: every pending stimulus of a shard of sources; rows for the journal."""
    return [row for task in tasks for row in _work_source(task)]


def _on_dask(tasks: list[dict], cluster, *, shard_size: int, retries: int):
    """Each shard's journal rows from the Dask cluster, as shards finish (a failed shard: an
    error row for each of its stimuli)."""
    from .. import _cluster

    def absolute(path) -> str:  # a worker's working folder is its own
        return str(Path(path).absolute())

    tasks = [{**t, "source_path": absolute(t["source_path"]), "out_dir": absolute(t["out_dir"]),
              "stimuli": [{**s, "donor_path": absolute(s["donor_path"])} if "donor_path" in s
                          else s for s in t["stimuli"]]} for t in tasks]
    with _cluster.connect(cluster) as client:
        for _, shard, rows, error in _cluster.run_shards(
                client, _work_shard, _cluster.shards(tasks, shard_size), retries=retries,
                progress=False, desc="stimuli", unit="video"):
            yield rows if error is None else [{"stimulus_id": s["stimulus_id"], "error": error}
                                              for t in shard for s in t["stimuli"]]


def _manifest(stimuli: pd.DataFrame, sources: pd.DataFrame, journal: pd.DataFrame,
              out_dir: Path, suite: Suite) -> pd.DataFrame:
    done = journal.set_index("stimulus_id")
    rows = []
    for s in stimuli.itertuples(index=False):
        if s.stimulus_id not in done.index or not (out_dir / s.path).exists():
            continue
        j = done.loc[s.stimulus_id]
        src = sources.loc[s.source]
        cond: Condition = s.condition
        if cond.manipulation == "semantic_swap":
            donor = sources.loc[s.donor]
            level, unit = donor["AVMIT_label"], "donor class"
            audio_source, audio_path = donor["filename"], donor["source_path"]
        else:
            level = "" if cond.level is None else cond.level
            unit = cond.unit
            audio_source = "" if cond.manipulation == "visual_only" else src["filename"]
            audio_path = "" if cond.manipulation == "visual_only" else src["source_path"]
        rows.append({
            "stimulus_id": s.stimulus_id, "path": s.path, "source_filename": src["filename"],
            "label": src["AVMIT_label"], "manipulation": cond.manipulation, "level": level,
            "level_unit": unit, "audio_source": audio_source, "seed": int(s.seed),
            "duration_s": float(j["duration_s"]), "fps": float(j["fps"]),
            "sample_rate": int(j["sample_rate"]), "sha256": j["sha256"],
            "source_new_filename": src["new_filename"], "source_path": src["source_path"],
            "audio_source_path": audio_path,
            "noise_color": cond.color if cond.manipulation == "audio_noise" else "",
            "container": suite.container, "verified": False})
    return pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
