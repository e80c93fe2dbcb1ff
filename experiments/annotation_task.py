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

The assignment database is ``<data-dir>/annotation.sqlite`` unless ``--db`` (or the config's
``database``) names another: a SQLite path or URL, or ``postgresql://user@host/dbname`` for the
cubicles of a lab sharing one server. A video taken by a session is leased to it for
``--lease-minutes`` (config ``lease_minutes``, default 30): a crashed cubicle's video goes back
to the pool when its lease expires.

The trials, their data rows and the session are defined in ``avmit_psych.experiments.
annotation`` (``AnnotationTrial``, ``AnnotationSession``); this script reads the arguments and
the config, opens the window and runs the session with the PsychoPy screen.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import yaml  # noqa: E402

from avmit_psych._cli import run  # noqa: E402
from avmit_psych.dataset.schema import DatasetError  # noqa: E402
from avmit_psych.experiments import annotation as A  # noqa: E402
from avmit_psych.experiments.assignment import (DEFAULT_LEASE_S, AssignmentDB,  # noqa: E402
                                                 database_url)
from avmit_psych.experiments.datafile import check_participant, check_session  # noqa: E402


def positive_minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of minutes")
    return value


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
    p.add_argument("--db", metavar="URL",
                   help="assignment database: sqlite:///path (or a path), or "
                        "postgresql://user@host:port/dbname shared by several cubicles "
                        "(default: the config's database, else <data-dir>/annotation.sqlite)")
    p.add_argument("--lease-minutes", type=positive_minutes, metavar="MIN",
                   help="a taken video returns to the pool this long after its session last "
                        "renewed it, e.g. when the cubicle crashed (default: the config's "
                        f"lease_minutes, else {DEFAULT_LEASE_S / 60:g})")
    return p.parse_args(argv)


def load_config(path: Path) -> dict:
    try:
        cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError("config not found", path=path, fix="give experiments/annotation.yaml")
    from avmit_psych.experiments.audio import read_audio_config
    cfg["audio"] = read_audio_config(cfg.get("audio"), path=path)  # a bad audio.* stops here
    cfg["_dir"] = path.parent
    cfg["_path"] = path
    return cfg


def resolve(cfg: dict, key: str):
    value = cfg.get(key)
    return None if value in (None, "") else (cfg["_dir"] / value)


def store_settings(args, cfg: dict) -> tuple[str, float]:
    """The assignment database's URL and the lease in seconds: the flags, else the config's
    ``database`` and ``lease_minutes``, else ``<data-dir>/annotation.sqlite`` and 30 min."""
    config = cfg.get("_path", "the config")
    db = args.db or cfg.get("database") or Path(args.data_dir) / "annotation.sqlite"
    if not args.db and cfg.get("database") and "://" not in str(cfg["database"]):
        db = resolve(cfg, "database")   # a plain path in the config: relative to the config
    try:
        url = database_url(db)
    except DatasetError as err:
        raise DatasetError(err.problem, path="--db" if args.db else config,
                           column=None if args.db else "database", fix=err.fix) from None
    minutes = args.lease_minutes
    if minutes is None:
        minutes = cfg.get("lease_minutes")
        minutes = DEFAULT_LEASE_S / 60 if minutes in (None, "") else minutes
        try:
            minutes = float(minutes)
        except (TypeError, ValueError):
            minutes = float("nan")
        if not minutes > 0:
            raise DatasetError(f"lease_minutes {cfg.get('lease_minutes')!r} is not a positive "
                               "number", path=config, column="lease_minutes",
                               fix="give the minutes a taken video stays with its session, "
                                   "e.g. 30")
    return url.render_as_string(hide_password=False), float(minutes) * 60


def ask_participant(args):
    if args.participant and args.session:
        return args.participant, args.session
    from psychopy import gui
    info = {"participant": args.participant or "", "session": args.session or 1}
    dlg = gui.DlgFromDict(info, title="AVMIT annotation")
    if not dlg.OK:
        raise SystemExit(0)
    return info["participant"], info["session"]


def main(argv=None) -> int:
    args = parse_args(argv)
    cfg = load_config(args.config)
    db_url, lease_s = store_settings(args, cfg)   # a bad --db stops here, nothing touched
    settings = A.AnnotationSettings.from_config(cfg, path=args.config)
    participant, session = ask_participant(args)
    participant, session = check_participant(participant), check_session(session)
    data_dir = args.data_dir
    # the writers take the session's locks before anything is read or written: a second
    # launch for the same participant and session stops here, changing nothing
    writers = A.open_writers(data_dir, participant, session)
    tables = A.load_tables(data_dir, pool_csv=resolve(cfg, "pool_csv"),
                           training_csv=resolve(cfg, "training_csv"),
                           screening_csv=resolve(cfg, "screening_csv"),
                           videos_root=resolve(cfg, "videos_root"))
    db = AssignmentDB(db_url, raters_per_video=settings.raters_per_video, lease_s=lease_s)
    instructions = resolve(cfg, "instructions")
    annotation = A.AnnotationSession(
        writers, db=db, tables=tables, participant=participant, session=session,
        settings=settings, seed=args.simulate or 0, fast=args.fast,
        instructions=instructions.read_text(encoding="utf-8")
        if instructions and instructions.exists() else None)
    from avmit_psych.experiments import screens
    win = None
    try:
        output = screens.prepare_devices(cfg["audio"], null_device=args.simulate is not None)
        win = screens.open_window(cfg.get("window"), windowed=args.windowed,
                                  monitor=args.monitor)
        annotation.record(**output.facts())   # the videos' sound: its facts in the sidecar
        simulator = A.SimulatedRater(args.simulate) if args.simulate is not None else None
        screen = screens.AnnotationScreen(
            win, fast=args.fast, simulator=simulator, true_ratings=A.true_ratings(tables),
            screenshots=screens.Screenshots(win, args.screenshots),
            video_bottom_left=tuple(cfg.get("window", {}).get("video_bottom_left", (40, 40))))
        status = annotation.run(screen)
    finally:
        for writer in writers.values():   # closed by run(); here when the window never opened
            writer.close()
        screens.close_devices(win)
    print(f"{status}: data in {writers['annotation'].path}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
