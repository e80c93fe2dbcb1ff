"""The AVMIT annotation task (PsychoPy).

    python experiments/annotation_task.py --participant P01 --session 1
    python experiments/annotation_task.py --participant P01 --session 1 --simulate 1 --fast --windowed

Instructions, a training block (one video per class, the reasoning shown after each answer), a
screening block (pass mark 38 of 41 by default; a fail ends the participant's run and is
recorded), then main trials with breaks, taken from a shared assignment database so that every
video gets its raters. Every trial is appended (and fsynced) to
``<data-dir>/sub-<id>_ses-<n>_task-annotation_beh.csv`` (raw-ratings layout) before the next one;
training and screening go to ``..._task-annotationtraining`` / ``...screening``. Escape saves
and exits; running the same command again resumes. Headless: see the README (Xvfb + ALSA null).
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402

from avmit_psych._cli import run  # noqa: E402
from avmit_psych.dataset.schema import DatasetError  # noqa: E402
from avmit_psych.experiments import annotation as A  # noqa: E402
from avmit_psych.experiments.assignment import AssignmentDB, Video  # noqa: E402
from avmit_psych.experiments.datafile import TrialWriter, check_participant, check_session  # noqa: E402
from avmit_psych.features.media import MediaError  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--participant", help="participant id (a dialog asks when omitted)")
    p.add_argument("--session", type=int, help="session number, 1 for the first")
    p.add_argument("--config", type=Path, default=HERE / "annotation.yaml")
    p.add_argument("--data-dir", type=Path, default=Path("data"))
    p.add_argument("--simulate", type=int, metavar="SEED",
                   help="a simulated participant presses the keys (tests, demos)")
    p.add_argument("--fast", action="store_true",
                   help="shorter waits and videos cut to their first 0.5 s (logic unchanged)")
    p.add_argument("--windowed", action="store_true", help="not full screen")
    p.add_argument("--screenshots", type=Path, help="save screenshots of each screen here")
    p.add_argument("--monitor", help="PsychoPy monitor profile (overrides the config)")
    return p.parse_args(argv)


def load_config(path: Path) -> dict:
    try:
        cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError("config not found", path=path, fix="give experiments/annotation.yaml")
    from avmit_psych.experiments.audio import read_audio_config
    cfg["audio"] = read_audio_config(cfg.get("audio"), path=path)  # a bad audio.* stops here
    cfg["_dir"] = path.parent
    return cfg


def resolve(cfg: dict, key: str):
    value = cfg.get(key)
    return None if value in (None, "") else (cfg["_dir"] / value)


def pools(cfg: dict, data_dir: Path, seed: int) -> dict[str, pd.DataFrame]:
    """The pool, training and screening tables with absolute video paths (demo pool if the
    config names none or its files are absent)."""
    from avmit_psych.experiments.demo_pool import ensure_demo_pool
    names = {"pool": "pool_csv", "training": "training_csv", "screening": "screening_csv"}
    given = {k: resolve(cfg, v) for k, v in names.items()}
    if given["pool"] is None or not given["pool"].exists():
        given = ensure_demo_pool(data_dir / "demo_pool", seed=0)
        root = data_dir / "demo_pool"
    else:
        root = resolve(cfg, "videos_root") or given["pool"].parent
    out = {}
    for key, path in given.items():
        if path is None or not Path(path).exists():
            out[key] = pd.DataFrame()
            continue
        table = pd.read_csv(path, keep_default_na=False)
        table["path"] = [str(p if Path(p).is_absolute() else Path(root) / p)
                         for p in table["path"]]
        missing = [p for p in table["path"] if not Path(p).exists()]
        if missing:
            raise DatasetError(f"{len(missing)} video files are missing (first: {missing[0]})",
                               path=path, column="path", fix="check videos_root in the config")
        out[key] = table
    return out


def as_video(row) -> Video:
    gt = row.get("ground_truth", "")
    return Video(str(row["filename"]), str(row["AVMIT_label"]), str(row["MIT_label"]),
                 str(row["video_location"]), str(row["path"]),
                 None if gt in ("", None) or pd.isna(gt) else int(gt))


def ask_participant(args):
    if args.participant and args.session:
        return args.participant, args.session
    from psychopy import gui
    info = {"participant": args.participant or "", "session": args.session or 1}
    dlg = gui.DlgFromDict(info, title="AVMIT annotation")
    if not dlg.OK:
        raise SystemExit(0)
    return info["participant"], info["session"]


def open_window(cfg: dict, args):
    from avmit_psych.experiments import headless
    headless.prepare_audio(null_device=args.simulate is not None)
    if not headless.display_available():
        raise DatasetError(headless.headless_error_message())
    from avmit_psych.experiments import audio
    audio.session_output(cfg["audio"])  # the videos' sound: the configured backend
    from psychopy import visual
    w = cfg.get("window", {})
    return visual.Window(size=w.get("size", [1280, 800]), fullscr=w.get("fullscr", True) and
                         not args.windowed, monitor=args.monitor or w.get("monitor", "testMonitor"),
                         color=w.get("color", [-1, -1, -1]), units="pix", winType="pyglet",
                         allowGUI=args.windowed)


def log_failure(data_dir, participant, session, video, err) -> None:
    """Append a video that could not be played to the session's error log (fsynced)."""
    import csv
    import os
    import time
    path = Path(data_dir) / f"sub-{participant}_ses-{session}_annotation-errors.csv"
    new = not path.exists()
    with open(path, "a", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        if new:
            w.writerow(["timestamp", "filename", "path", "error"])
        w.writerow([time.strftime("%Y-%m-%dT%H:%M:%S"), video.filename, video.path,
                    f"{type(err).__name__}: {err}"])
        fh.flush()
        os.fsync(fh.fileno())


def block(name, table, screen, writer, participant, session, bonus, start_trial):
    """Training or screening: every video of the table once; rows already written skipped."""
    done = set(writer.completed["filename"]) if len(writer.completed) else set()
    rows = [dict(r) for r in writer.completed.to_dict("records")]
    trial = start_trial
    for row in table.to_dict("records"):
        trial += 1
        if row["filename"] in done:
            continue
        t = A.AnnotationTrial(as_video(row), name, expected_rating=int(row["expected_rating"]),
                              reasoning=str(row.get("reasoning", "")))
        out = t.run(screen, participant=participant, session=session, trial=trial, bonus=bonus)
        writer.write(out)
        rows.append(out)
    return rows


def main(argv=None) -> int:
    args = parse_args(argv)
    cfg = load_config(args.config)
    participant, session = ask_participant(args)
    participant, session = check_participant(participant), check_session(session)
    data_dir = args.data_dir
    cols = A.ROW_COLUMNS
    # the writers take the session's locks before anything is read or written: a second
    # launch for the same participant and session stops here, changing nothing
    main_writer = TrialWriter(data_dir, participant, session, "annotation", cols)
    training = TrialWriter(data_dir, participant, session, "annotationtraining", cols)
    screening = TrialWriter(data_dir, participant, session, "annotationscreening", cols)
    tables = pools(cfg, data_dir, args.simulate or 0)
    simulator = A.SimulatedRater(args.simulate) if args.simulate is not None else None
    true_ratings = {}
    for t in tables.values():
        if "true_rating" in t:
            true_ratings.update(zip(t["filename"], t["true_rating"].astype(int)))
    db = AssignmentDB(data_dir / "annotation.sqlite",
                      raters_per_video=int(cfg.get("raters_per_video", 3)))
    db.add_videos(tables["pool"], seed=0)
    # a crash between writing a row and recording it in the database is mended here
    if len(main_writer.completed):
        db.reconcile(participant, session, dict(zip(main_writer.completed["filename"],
                                                    main_writer.completed["rating"].astype(int))))
    bonus = A.BonusCounter(int(cfg.get("bonus_pence", 10)), db.matches(participant))
    win = open_window(cfg, args)
    from avmit_psych.experiments import audio
    from avmit_psych.experiments.study import update_sidecar
    update_sidecar(main_writer.path, participant=participant, session=session,
                   task="annotation", **audio.session_output().facts())
    from avmit_psych.experiments.screens import AnnotationScreen, Screenshots
    screen = AnnotationScreen(win, fast=args.fast, simulator=simulator,
                              true_ratings=true_ratings,
                              screenshots=Screenshots(win, args.screenshots),
                              video_bottom_left=tuple(cfg.get("window", {}).get(
                                  "video_bottom_left", (40, 40))))
    status = "complete"
    try:
        instructions = resolve(cfg, "instructions")
        if instructions and instructions.exists() and not len(main_writer.completed):
            screen.show_message(instructions.read_text(encoding="utf-8"))
        earlier_screen = list(Path(data_dir).glob(
            f"sub-{participant}_ses-*_task-annotationscreening*_beh.csv.done"))
        if not earlier_screen:
            if len(tables["training"]):
                block("training", tables["training"], screen, training, participant, session,
                      bonus, 0)
                training.finish()
            if len(tables["screening"]):
                rows = block("screening", tables["screening"], screen, screening, participant,
                             session, bonus, 0)
                n = len(tables["screening"])
                mark = math.ceil(int(cfg.get("screening_pass_mark", 38)) * n /
                                 int(cfg.get("screening_of", 41)) - 1e-9)
                result = A.screening_result(rows, pass_mark=mark)
                screening.finish()
                if not result.passed:
                    status = "screening_failed"
                    screen.show_message(f"Screening: {result.n_correct} of {result.n_trials} "
                                        "matched. Thank you for your time.")
                    return 0
        trial = len(main_writer.completed)
        per_block = int(cfg.get("trials_per_block", 50))
        max_trials = cfg.get("max_trials")
        rng = np.random.default_rng([args.simulate or 0, session, 67])
        failed: set[str] = set()
        while max_trials is None or trial < int(max_trials):
            want_gt = rng.random() < float(cfg.get("ground_truth_rate", 0.05))
            video = db.next_video(participant, session, ground_truth=want_gt, exclude=failed)
            if video is None:
                break
            try:
                row = A.AnnotationTrial(video, "main").run(screen, participant=participant,
                                                           session=session, trial=trial + 1,
                                                           bonus=bonus)
            except (MediaError, RuntimeError, OSError) as err:
                # a video that fails mid-session: logged, given back, the session goes on
                log_failure(data_dir, participant, session, video, err)
                db.release(video.filename, participant)
                failed.add(video.filename)
                continue
            trial += 1
            main_writer.write(row)
            db.complete(video.filename, participant, row["rating"])
            if trial % per_block == 0:
                screen.show_message(f"Time for a break. {trial} videos rated so far.")
        screen.show_message("Thank you! This session is complete.", wait=not args.fast)
        main_writer.finish()
    except A.Aborted:
        status = "aborted"
    finally:
        for w in (training, screening, main_writer):
            w.close()
        (Path(data_dir) / f"sub-{participant}_ses-{session}_annotation-status.txt").write_text(
            status + "\n")
        win.close()
        audio.close_session_output()
    print(f"{status}: data in {main_writer.path}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
