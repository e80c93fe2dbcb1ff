"""The demo study: a small human-vs-DNN study built once from the toolkit's own parts, and cached.

``python -m avmit_psych.analysis compare`` with no inputs compares this study (and
``python -m avmit_psych demo`` ends with it), so that every
table and figure of a comparison can be seen, on data of the right shape, before anyone is
tested. It is made the way a real study is, stage by stage, with the toolkit's own code:

1. clips: synthetic audiovisual probe clips of the 16 test classes
   (:func:`~avmit_psych.dataset.synthetic.clips.write_probe_clips`: a class-coloured square moving
   over a class background, a class tone), five per class for training, one for validation
   and two as the sources of the test stimuli;
2. stimuli: the test sources under every condition of ``stimuli/suites/demo_small.yaml``
   (auditory noise, visual noise, semantic swaps, unimodal versions), made and verified by the
   stimulus generator, which writes the stimulus manifest;
3. embeddings: YAMNet and EfficientNetB0 (:mod:`avmit_psych.features`) with *random* weights,
   since the pretrained ones cannot be downloaded everywhere the demo must run, written as
   released-layout TFRecords for the training clips and every stimulus (see
   :func:`~avmit_psych.demo.encoders.embedding_standardisation` for the one change made to
   the random encoders'
   embeddings: centred and scaled, without which the SAVC models cannot learn);
4. models: two recognition baselines (the GRU and LSTM configurations of
   ``analysis/configs/recognition``) and two SAVC models (the same of ``analysis/configs/savc``)
   trained on the training clips (SAVC: on their congruent and incongruent audio-visual
   pairs) for a few dozen epochs with
   :func:`avmit_psych.models.training.train`, then predictions for every stimulus the way the
   ``predict`` command makes them (:func:`~avmit_psych.models.evaluation.predict_stimuli`:
   classes into ``models/``, same/different into ``models_correspondence/``; predictions
   contract, one CSV per model);
5. humans: *simulated* participants, cue-integration observers
   (:class:`~avmit_psych.experiments.cue_integration.CueIntegrationObserver`, drawn from
   :data:`~avmit_psych.demo.participants.DEMO_POPULATION`) with their own sensitivities,
   noise thresholds, binding window and
   lapse rate, doing both tasks: every stimulus in their own order
   (:func:`~avmit_psych.experiments.human_vs_dnn.trial_list`) into ``humans/``, and every
   stimulus with both a sound and a picture into ``humans_correspondence/`` (the semantic
   swaps are its "different" trials), written trial by trial with the experiment's
   :class:`~avmit_psych.experiments.datafile.TrialWriter` (trials contract with the
   presentation-timing columns, simulated; one file per participant and task).

Everything is a function of the seed. Each stage skips work already done (as the stages do on
their own), so a build that was killed resumes; ``study.json``, written atomically once every
stage has finished, marks a finished study, and only a folder with a matching one is reused.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import _atomic, _tf
from .._atomic import atomic_path, fsync_file, sha256_file
from ..dataset import schema
from ..dataset.schema import DatasetError, TEST_CLASSES
from ..models.config import REPO_CONFIGS
from .encoders import demo_encoders
from .participants import (N_OBSERVERS, asked_in_classification, asked_in_correspondence,
                           simulate_observers, simulate_participants)

#: Bumped whenever the demo would come out differently; a cached study of another version is
#: rebuilt from scratch.
STUDY_VERSION = 3
DEMO_SUITE = Path(__file__).resolve().parents[2] / "stimuli" / "suites" / "demo_small.yaml"
MARKER = "study.json"
BUILD_STAMP = ".build.json"
#: Every entry a build writes under its root; clearing a root removes these and nothing else.
OWNED = ("clips", "suite", "embeddings", "training", "models", "humans",
         "models_correspondence", "humans_correspondence", "observers.csv", MARKER, BUILD_STAMP)
#: The two tasks of the demo, and the folders of their humans' trials and models' predictions.
TASK_FOLDERS = {"classify": ("humans", "models"),
                "correspondence": ("humans_correspondence", "models_correspondence")}

#: Probe clips per class: k = 1-5 train the models, k = 6 validates, k = 7-8 are the sources
#: of the test stimuli (distinct clips: the square's speed and start depend on k).
TRAIN_CLIPS = range(1, 6)
VALIDATION_CLIPS = range(6, 7)
SOURCE_CLIPS = range(7, 9)
#: 1.5-s clips: 4 frames (every 480 ms) and 2 YAMNet examples each, so that embedding about
#: 500 clips with EfficientNetB0 on a CPU takes well under a minute.
CLIP_SECONDS = 1.5
CLIP_SIZE = (64, 48)
CLIP_FPS = 30
CLIP_SAMPLE_RATE_HZ = 16_000

FEATURE_SET = "yamnet_effnetb0"
#: The recognition configurations trained. Everything else is the config's, but the learning
#: rate: the paper's ~7e-5 needs hundreds of epochs, and here the 16 classes are learnt in
#: ``TRAIN_EPOCHS`` epochs of 80 clips. (The FRNN configuration, tried too, learnt them less
#: reliably.)
MODEL_CONFIGS = ("yamnet_effnetb0_gru_avmit", "yamnet_effnetb0_lstm_avmit")
TRAIN_LEARNING_RATE = 5e-3
TRAIN_EPOCHS = 60
#: The SAVC (correspondence) configurations trained, from ``analysis/configs/savc``, on every
#: training clip (the configs' per-class subsets are for AVMIT's 405 videos a class), for
#: ``SAVC_EPOCHS`` epochs of freshly drawn pairs (each clip's sound once with a picture of its
#: class, once with one of another class: 160 pairs an epoch). Everything else is the
#: config's (dropout 0.1, weight decay 1e-5, the checkpoint of the best validation accuracy)
#: but the learning rate, ``SAVC_LEARNING_RATE``: the configs' 1e-4 is for 6,480 videos and
#: 200 epochs; 5e-3 made the models stall at about 0.75 of the pairs right. They learn only on
#: centred embeddings (:func:`~avmit_psych.demo.encoders.embedding_standardisation`). With
#: seed 0, on the clean stimuli
#: and the semantic swaps of the suite, the GRU and LSTM models are right on 0.81 and 0.75
#: (d' 1.9 and 1.8; their p_same ranks a congruent stimulus above a swap 95 % of the time),
#: with a bias toward "different" (a fifth to half of the clean stimuli called different).
SAVC_CONFIGS = ("yamnet_effnetb0_gru_avmit", "yamnet_effnetb0_lstm_avmit")
SAVC_EPOCHS = 60
SAVC_LEARNING_RATE = 1e-3
#: Pairs per step: the configs' 512 would make one step an epoch here.
SAVC_BATCH_SIZE = 32




@dataclass
class DemoStudy:
    """A built demo study.

    root : the cache folder.
    humans_dir : classification trials CSVs (trials contract), one per simulated participant.
    models_dir : classification predictions CSVs (predictions contract), one per recognition
        model.
    correspondence_humans_dir, correspondence_models_dir : the same for the correspondence
        task (same/different; the SAVC models' predictions).
    manifest : the stimulus manifest of the demo suite.
    description : a few plain sentences for a report: what was built, and that the humans are
        simulated.
    info : the contents of ``study.json`` (counts, conditions, models, accuracies, timings).
    """

    root: Path
    humans_dir: Path
    models_dir: Path
    manifest: Path
    description: str
    info: dict = field(default_factory=dict)
    correspondence_humans_dir: Path | None = None
    correspondence_models_dir: Path | None = None

    def inputs(self, task: str = "classify") -> tuple[Path, Path]:
        """(humans folder, models folder) of ``task`` (``classify`` or ``correspondence``)."""
        if task not in TASK_FOLDERS:
            raise ValueError(f"the demo study has the tasks {', '.join(TASK_FOLDERS)}, "
                             f"not {task!r}")
        return tuple(self.root / name for name in TASK_FOLDERS[task])


def default_root(seed: int = 0) -> Path:
    """``$AVMIT_PSYCH_DATA/demo_study/seed-N`` when set, else
    ``$XDG_DATA_HOME/avmit_psych/demo_study/seed-N``, else
    ``~/.local/share/avmit_psych/demo_study/seed-N``."""
    tail = Path("demo_study") / f"seed-{int(seed)}"
    if os.environ.get("AVMIT_PSYCH_DATA"):
        return Path(os.environ["AVMIT_PSYCH_DATA"]).expanduser() / tail
    data_home = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return Path(data_home) / "avmit_psych" / tail


# --------------------------------------------------------------------------------------------
# The build
# --------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _locked(root: Path):
    """Hold an exclusive lock on ``root`` (two builds of one folder wait for each other)."""
    root.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; one build at a time is up to the user
        yield
        return
    with open(root / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _write_json(path: Path, obj) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=2)
        fsync_file(fh)


def _read_json(path: Path) -> dict | None:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def _stamp(seed: int) -> dict:
    """What a build depends on besides the code: its version, seed and suite file."""
    return {"version": STUDY_VERSION, "seed": int(seed),
            "suite_sha256": sha256_file(DEMO_SUITE)}


def read_marker(root, *, seed: int = 0) -> dict | None:
    """The contents of ``root/study.json`` if it marks a finished study of this version, seed
    and suite file whose files are all there; None otherwise."""
    root = Path(root)
    marker = _read_json(root / MARKER)
    if marker is None or any(marker.get(k) != v for k, v in _stamp(seed).items()):
        return None
    files = marker.get("files")
    if not isinstance(files, list) or not files or \
            not all((root / f).is_file() for f in files):
        return None
    return marker


def _study(root: Path, marker: dict) -> DemoStudy:
    return DemoStudy(root=root, humans_dir=root / "humans", models_dir=root / "models",
                     manifest=root / "suite" / "manifest.csv",
                     description=marker["description"], info=marker,
                     correspondence_humans_dir=root / "humans_correspondence",
                     correspondence_models_dir=root / "models_correspondence")


def _clear(root: Path) -> None:
    for name in OWNED:
        path = root / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    for stale in root.glob(".humans*.*"):
        shutil.rmtree(stale, ignore_errors=True)


def build_demo_study(root=None, *, seed: int = 0, force: bool = False, log=print,
                     progress: bool = True) -> DemoStudy:
    """Build the demo study under ``root`` (default :func:`default_root`), or reuse it.

    A folder whose ``study.json`` marks a finished study of this version and seed is returned
    as it is. Otherwise the study is built: from scratch with ``force=True`` or when the folder
    holds a build of another version or seed, else resuming whatever an interrupted build
    finished. Progress lines go to ``log``, and with ``progress`` each long step (clips,
    stimuli, embeddings, training, participants) shows a progress bar on stderr. A first
    build takes about 2 CPU-minutes (190-210 s
    on a busy 2-core machine, TensorFlow's import included), a reuse well under a second;
    TensorFlow is imported only when something must be computed.
    """
    seed = int(seed)
    root = Path(root if root is not None else default_root(seed)).expanduser().resolve()
    with _locked(root):
        marker = None if force else read_marker(root, seed=seed)
        if marker is not None:
            log(f"demo study: reusing {root}")
            return _study(root, marker)
        stamp = _stamp(seed)
        if force or _read_json(root / BUILD_STAMP) != stamp:
            _clear(root)
        else:
            log(f"demo study: finishing an interrupted build in {root}")
        _write_json(root / BUILD_STAMP, stamp)
        return _build(root, seed, log, progress=progress)


def _bar(progress: bool, total: int, desc: str, unit: str):
    """A progress bar on stderr for one step of the build (nothing when not ``progress``)."""
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=f"demo study: {desc}", unit=unit, disable=not progress,
                dynamic_ncols=True)


def _build(root: Path, seed: int, log, *, progress: bool = True) -> DemoStudy:
    from concurrent.futures import ThreadPoolExecutor
    missing = [name for name in ("tensorflow", "imageio_ffmpeg")
               if importlib.util.find_spec(name) is None]
    if missing:
        raise DatasetError(f"building the demo study needs {' and '.join(missing)}, which "
                           "is not installed", path=root,
                           fix="install the pinned stack: bash scripts/setup.sh (or pip install "
                               "-r requirements.txt)")
    start = time.perf_counter()
    timings = {}

    def stage(name, t0):
        timings[name] = round(time.perf_counter() - t0, 1)
        log(f"demo study: {name} done ({timings[name]:.0f} s)")

    t0 = time.perf_counter()
    splits = _make_clips(root, seed, log, progress)
    stage("clips", t0)

    manifest_path = root / "suite" / "manifest.csv"
    verifier = ThreadPoolExecutor(max_workers=2)
    try:
        t0 = time.perf_counter()
        made, checks = _make_stimuli(root, seed, splits["sources"], verifier, log, progress)
        stage("stimuli", t0)
        t0 = time.perf_counter()
        model_accuracy = _make_embeddings_and_models(root, seed, splits, manifest_path, log,
                                                     progress)
        _finish_stimuli(root, made, checks, log)
        stage("embeddings, models and stimulus verification", t0)
    finally:
        verifier.shutdown(wait=True, cancel_futures=True)

    t0 = time.perf_counter()
    manifest = schema.read_csv(manifest_path)
    observers = simulate_observers(N_OBSERVERS, seed=seed)
    human_accuracy = {}
    bar = _bar(progress, len(observers) * len(TASK_FOLDERS), "simulated participants",
               "session")
    for task, (humans, _) in TASK_FOLDERS.items():
        log(f"demo study: {len(observers)} simulated participants, {task} task")
        staging = root / f".{humans}.{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        simulate_participants(manifest, staging, observers, seed=seed, task=task,
                              on_done=bar.update)
        shutil.rmtree(root / humans, ignore_errors=True)
        _atomic.replace(staging, root / humans)
        human_accuracy[task] = _accuracy_by_condition(pd.concat(
            [pd.read_csv(p, dtype=str, keep_default_na=False)
             for p in sorted((root / humans).glob("*.csv"))]))
    bar.close()
    schema.write_csv(observers.drop(columns="observer"), root / "observers.csv")
    stage("humans", t0)

    conditions = _condition_names(manifest)
    models = sorted(model_accuracy["classify"])
    files = sorted([str(p.relative_to(root)) for folders in TASK_FOLDERS.values()
                    for folder in folders for p in (root / folder).glob("*.csv")] +
                   ["suite/manifest.csv", "observers.csv"])
    info = {
        **_stamp(seed), "n_observers": len(observers),
        "models": models, "savc_models": sorted(model_accuracy["correspondence"]),
        "n_stimuli": len(manifest),
        "n_classification_stimuli": len(asked_in_classification(manifest)),
        "n_correspondence_stimuli": len(asked_in_correspondence(manifest)),
        "n_semantic_swaps": int((manifest["manipulation"] == "semantic_swap").sum()),
        "conditions": conditions,
        "n_training_clips": len(TRAIN_CLIPS) * len(TEST_CLASSES),
        "training_epochs": TRAIN_EPOCHS, "savc_training_epochs": SAVC_EPOCHS,
        "accuracy": {"humans": human_accuracy, "models": model_accuracy},
        "build_seconds": round(time.perf_counter() - start, 1), "stage_seconds": timings,
        "files": files,
    }
    info["description"] = describe(info)
    _write_json(root / MARKER, info)
    log(f"demo study: built in {info['build_seconds']:.0f} s -> {root}")
    return _study(root, info)


def describe(info: dict) -> str:
    """The plain-language account of a built study that a report prints."""
    models = " and ".join(info["models"])
    return (
        f"This is the built-in demo study (seed {info['seed']}), not real data. Stimuli: "
        f"{info['n_stimuli']} synthetic audiovisual clips (a coloured square moving over a "
        f"background, a tone; one colour and tone per class) of the 16 AVMIT test classes in "
        f"{len(info['conditions'])} conditions ({', '.join(info['conditions'])}; auditory noise "
        "in dB SNR, visual noise in pixel SD on the 0-255 scale), made with the toolkit's "
        "stimulus generator. "
        f"The classification task asks about the {info['n_classification_stimuli']} "
        "stimuli other than the semantic swaps. "
        f"Models: {len(info['models'])} recognition RNNs ({models}) trained for "
        f"{info['training_epochs']} epochs on {info['n_training_clips']} other clips of the "
        "same kind, reading YAMNet and "
        "EfficientNetB0 embeddings computed with random weights (the pretrained weights are "
        "not downloaded for the demo; each encoder's embeddings were centred and multiplied "
        "by one constant, which keeps their distance ratios and brings them to a usable "
        "scale). "
        f"For the correspondence task (same or different action?), {len(info['savc_models'])} "
        f"SAVC models ({' and '.join(info['savc_models'])}) trained for "
        f"{info['savc_training_epochs']} epochs on pairs of the same clips' embeddings judged "
        f"the {info['n_correspondence_stimuli']} stimuli that have both a sound and a picture "
        f"(\"different\" for the {info['n_semantic_swaps']} semantic swaps, whose sound is "
        "that of a clip of another class, \"same\" for the others). "
        f"Humans: {info['n_observers']} SIMULATED observers, not people: cue-integration "
        "observers (auditory and visual evidence combined as independent cues, Ernst & Banks "
        "2002), each with their own sensitivities, noise thresholds, binding window and lapse "
        "rate, answering both tasks (classification chance 1/16, correspondence 1/2); their "
        "classification errors favour a fixed set of confusable classes.")


def _condition_keys(table: pd.DataFrame) -> pd.Series:
    """``manipulation level`` per row (``audio_noise 10``); the manipulation alone when it has
    no numeric level: a semantic swap is one condition, whatever its donor class (as the study
    plan counts it)."""
    value = pd.to_numeric(table["level"].astype(str).str.strip(), errors="coerce")
    manipulation = table["manipulation"].astype(str)
    return manipulation.where(value.isna(), manipulation + " " +
                              value.map(lambda v: f"{v:g}"))


def _condition_names(manifest: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(_condition_keys(manifest)))


def _accuracy_by_condition(table: pd.DataFrame) -> dict:
    correct = table["correct"].astype(str).str.lower().eq("true")
    return {k: round(float(v), 3)
            for k, v in correct.groupby(_condition_keys(table)).mean().items()}


# -- stages ------------------------------------------------------------------------------------
def _make_clips(root: Path, seed: int, log, progress: bool = False) -> dict[str, Path]:
    """Probe clips, and the test-set-layout CSVs of the three splits."""
    from concurrent.futures import ThreadPoolExecutor

    from ..dataset.synthetic.clips import write_probe_clips
    clips = root / "clips"
    n = max(SOURCE_CLIPS)
    log(f"demo study: {n * len(TEST_CLASSES)} probe clips ({CLIP_SECONDS:g} s)")

    bar = _bar(progress, n * len(TEST_CLASSES), "probe clips", "clip")

    def write(label: str) -> Path:
        # one class a task, two at once, so that two encoders run at once
        csv = write_probe_clips(
            clips / "videos", clips / f".clips-{label}.csv", per_class=n,
            classes=(label,), seed=seed, size=CLIP_SIZE, fps=CLIP_FPS,
            sample_rate_hz=CLIP_SAMPLE_RATE_HZ, duration_s=CLIP_SECONDS)
        bar.update(n)
        return csv

    with bar, ThreadPoolExecutor(max_workers=2) as pool:
        parts = list(pool.map(write, TEST_CLASSES))
    table = pd.concat([schema.read_csv(p) for p in parts], ignore_index=True)
    table = table.sort_values("AVMIT_label", key=lambda c: c.map(schema.LABEL_TO_INT),
                              kind="stable").reset_index(drop=True)
    schema.write_csv(table, clips / "clips.csv")
    for p in parts:
        p.unlink()
    k = table["new_filename"].str.extract(r"_(\d+)\.mp4$")[0].astype(int)
    out = {}
    for name, ks in (("train", TRAIN_CLIPS), ("validation", VALIDATION_CLIPS),
                     ("sources", SOURCE_CLIPS)):
        out[name] = schema.write_csv(table[k.isin(list(ks))].reset_index(drop=True),
                                     clips / f"{name}.csv")
    return out


def _make_stimuli(root: Path, seed: int, sources_csv: Path, verifier, log,
                  progress: bool = False):
    """Make the suite; start verifying it on ``verifier`` (a thread pool), one task per source.

    Verification decodes every stimulus in ffmpeg, which keeps a core busy while TensorFlow is
    imported and traced on the other; :func:`_finish_stimuli` collects it. Returns the manifest
    and the pending checks (None when an interrupted build had verified the suite already).
    """
    from ..stimuli import generate, suite
    from ..stimuli.verify import verify_manifest
    demo_suite = suite.load_suite(DEMO_SUITE)
    sources = generate.sources_from_test_set(sources_csv, root / "clips" / "videos")
    log(f"demo study: suite {demo_suite.name}: {len(sources)} sources x "
        f"{len(demo_suite.conditions)} conditions")
    out = root / "suite"
    if (out / "verify.csv").exists() and (out / "manifest.csv").exists():
        done = schema.read_csv(out / "manifest.csv")
        if len(done) == len(sources) * len(demo_suite.conditions) and \
                done["verified"].eq("True").all():
            return done, None
    manifest, failures, _ = generate.generate(demo_suite, sources, out, seed=seed, workers=2,
                                              progress=progress, verify=False)
    if len(failures):
        raise DatasetError(f"{len(failures)} demo stimuli could not be made (first: "
                           f"{failures['stimulus_id'].iloc[0]}: {failures['error'].iloc[0]})",
                           path=out / "failures.csv", fix="rebuild with force=True")
    checks = [verifier.submit(verify_manifest, part, out)
              for _, part in manifest.groupby("source_path", sort=False)]
    return manifest, checks


def _finish_stimuli(root: Path, manifest: pd.DataFrame, checks, log) -> None:
    """Write verify.csv and the manifest of verified stimuli, as ``generate(verify=True)``
    does; a stimulus out of tolerance stops the build."""
    if checks is None:
        return
    out = root / "suite"
    order = {sid: i for i, sid in enumerate(manifest["stimulus_id"])}
    verification = pd.concat([c.result() for c in checks]).sort_values(
        "stimulus_id", key=lambda c: c.map(order)).reset_index(drop=True)
    schema.write_csv(verification, out / "verify.csv")
    passed = set(verification.loc[verification["ok"], "stimulus_id"])
    manifest = manifest.assign(verified=manifest["stimulus_id"].isin(passed))
    schema.write_csv(manifest[manifest["verified"]].reset_index(drop=True),
                     out / "manifest.csv")
    bad = verification[~verification["ok"]]
    if len(bad):
        raise DatasetError(f"{len(bad)} demo stimuli failed verification (first: "
                           f"{bad['stimulus_id'].iloc[0]}: {bad['problems'].iloc[0]})",
                           path=out / "verify.csv", fix="rebuild with force=True")
    log(f"demo study: all {len(verification)} stimuli verified")


class _Embedder:
    """Extraction into ``root/embeddings`` (run report ``extract_report_<split>.csv`` there);
    the encoders are built on first use only, so a resumed build whose TFRecords are all there
    never loads them."""

    def __init__(self, root: Path, seed: int, splits: dict, log, progress: bool = False):
        self.root, self.seed, self.splits, self.log = root, seed, splits, log
        self.progress = progress
        self.out = root / "embeddings"
        self.encoders = None

    def _load(self):
        from ..features import encoders
        audio = encoders.AudioEncoder.load("yamnet", "random", seed=self.seed)
        visual = encoders.VisualEncoder.load("effnetb0", "random", seed=self.seed)
        first_of_class = schema.read_csv(self.splits["train"]).drop_duplicates("AVMIT_label")
        return demo_encoders(audio, visual, [self.root / "clips" / "videos" / f
                                             for f in first_of_class["new_filename"]])

    def missing(self, csv: Path, videos: Path) -> int:
        """How many videos of ``csv`` have no TFRecord yet."""
        from ..features import extract
        return sum(not (self.out / j.tfrecord_filename).exists()
                   for j in extract.plan(csv, videos))

    def load(self) -> None:
        """Build the encoders (once). Their random weights come from Keras' global random
        state, so this must not overlap a model being built in another thread."""
        self.encoders = self.encoders or self._load()

    def __call__(self, csv: Path, videos: Path, split: str) -> None:
        from ..features import extract
        jobs = extract.plan(csv, videos)
        todo = [j for j in jobs if not (self.out / j.tfrecord_filename).exists()]
        if not todo:
            return
        self.log(f"demo study: embedding {len(todo)} {split} videos (YAMNet + EfficientNetB0, "
                 "random weights)")
        self.load()
        report = extract.extract(jobs, *self.encoders, self.out, progress=self.progress)
        schema.write_csv(report, self.out / f"extract_report_{split}.csv")
        failed = report[report["status"] == "failed"]
        if len(failed):
            raise DatasetError(f"{len(failed)} demo videos could not be embedded (first: "
                               f"{failed['video_path'].iloc[0]}: {failed['reason'].iloc[0]})",
                               path=self.out / f"extract_report_{split}.csv",
                               fix="rebuild with force=True")


class _Interrupted(Exception):
    """Raised inside a training thread whose build was stopped."""


def _make_embeddings_and_models(root: Path, seed: int, splits: dict, manifest: Path,
                                log, progress: bool = False) -> dict:
    """Embed the training clips, then train the models while the stimuli are embedded (training
    runs on one core, EfficientNetB0 and ffmpeg fill the other), then predict every stimulus.
    Returns model -> condition -> accuracy."""
    import threading
    from concurrent.futures import ThreadPoolExecutor
    videos = root / "clips" / "videos"
    embed = _Embedder(root, seed, splits, log, progress)
    if any(embed.missing(csv, where) for csv, where in (
            (splits["train"], videos), (splits["validation"], videos), (manifest, root / "suite"))):
        embed.load()  # before the training thread seeds Keras and builds its models
    embed(splits["train"], videos, "training")
    embed(splits["validation"], videos, "validation")
    stop = threading.Event()
    with ThreadPoolExecutor(max_workers=1) as pool:
        trained = pool.submit(_train_models, root, seed, splits, stop, log, progress)
        try:
            embed(manifest, root / "suite", "stimulus")
            run_dirs = trained.result()
        except BaseException:  # an error or Ctrl-C here: the training stops at its epoch's end
            stop.set()
            raise
    return _predict(root, run_dirs, manifest, log)


def _demo_configs(seed: int) -> list:
    """The demo's model configurations: the recognition ones, then the SAVC ones."""
    from ..models import config
    out = []
    for name in MODEL_CONFIGS:
        cfg = config.load_config(REPO_CONFIGS / "recognition" / f"{name}.yaml")
        out.append(cfg.replace(name=name.replace("_avmit", "_demo"), epochs=TRAIN_EPOCHS,
                               learning_rate=TRAIN_LEARNING_RATE, seed=seed))
    for name in SAVC_CONFIGS:
        cfg = config.load_config(REPO_CONFIGS / "savc" / f"{name}.yaml")
        out.append(cfg.replace(name=f"savc_{name.replace('_avmit', '_demo')}",
                               epochs=SAVC_EPOCHS, learning_rate=SAVC_LEARNING_RATE,
                               batch_size=SAVC_BATCH_SIZE,
                               savc_train_per_class=None, savc_val_per_class=None, seed=seed))
    return out


def _train_models(root: Path, seed: int, splits: dict, stop, log,
                  progress: bool = False) -> list[Path]:
    """Train every model of :func:`_demo_configs` one after the other (or reuse finished
    runs); their folders. Setting ``stop`` ends a training at the end of its epoch,
    unfinished."""
    from ..dataset import tfrecords
    from ..models import training
    keras = _tf.keras()

    configs = _demo_configs(seed)
    bar = _bar(progress, sum(cfg.epochs for cfg in configs), "training", "epoch")

    class StopWhenAsked(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            bar.update()
            if stop.is_set():  # unfinished: no metrics.json, the checkpoint resumes later
                raise _Interrupted("the demo study build was stopped")

    def load(csv):
        return tfrecords.load_split(csv, root / "embeddings", feature_set=FEATURE_SET,
                                    cache=False)

    train_split, val_split = load(splits["train"]), load(splits["validation"])
    run_dirs, planned = [], 0
    with bar:
        for cfg in configs:
            log(f"demo study: training {cfg.name} ({len(train_split)} clips, {cfg.epochs} "
                "epochs)")
            bar.set_postfix_str(cfg.name)
            result = training.train(cfg, train_split, val_split, root / "training" / cfg.name,
                                    verbose=0, callbacks=[StopWhenAsked()])
            planned += cfg.epochs  # a reused run or an early stop: the bar moves on
            bar.update(max(0, planned - bar.n))
            log(f"demo study: {cfg.name}: best validation accuracy "
                f"{result.metrics['val_accuracy']:.2f} (epoch {result.metrics['best_epoch']})")
            run_dirs.append(result.out_dir)
    return run_dirs


def _predict(root: Path, run_dirs: list[Path], manifest: Path, log) -> dict:
    """Predictions for every stimulus as the ``predict`` command makes them (the trained
    folder, the manifest's split, :func:`~avmit_psych.models.evaluation.predict_stimuli`):
    recognition models classify every stimulus the humans classify (all but the semantic
    swaps, :func:`~avmit_psych.demo.participants.asked_in_classification`; into ``models``),
    SAVC models answer the correspondence trial of every stimulus with both modalities
    (``models_correspondence``).
    Returns task -> model -> condition -> accuracy."""
    from ..dataset import tfrecords
    from ..models import evaluation, training
    accuracy = {task: {} for task in TASK_FOLDERS}
    splits = {}
    for run_dir in run_dirs:
        cfg, model = training.load_trained(run_dir)
        key = (cfg.embeddings, cfg.timesteps)
        if key not in splits:
            splits[key] = tfrecords.load_split(manifest, root / "embeddings",
                                               feature_set=cfg.embeddings,
                                               timesteps=cfg.timesteps, cache=False)
        stimuli = splits[key]
        task = "classify" if cfg.task == "recognition" else "correspondence"
        if task == "classify":
            stimuli = stimuli.take(np.flatnonzero(
                stimuli.rows["manipulation"].astype(str).to_numpy() != "semantic_swap"))
        predictions, metrics = evaluation.predict_stimuli(cfg, model, stimuli)
        schema.write_csv(predictions, root / TASK_FOLDERS[task][1] / f"{cfg.name}.csv")
        accuracy[task][cfg.name] = _accuracy_by_condition(predictions)
        log(f"demo study: {cfg.name} ({task}): "
            f"{metrics['top1' if task == 'classify' else 'accuracy']:.2f} of the stimuli right")
    return accuracy
