"""The human-vs-DNN test (PsychoPy): humans classify the stimuli of a planned study.

    python -m avmit_psych.experiments plan --manifest suite/manifest.csv --out study/
    python experiments/human_vs_dnn.py --study study/ --participant P01 --session 1
    python experiments/human_vs_dnn.py --study study/ --participant P01 --session 1 \\
        --simulate 1 --fast --windowed

With ``--study`` the participant gets a list of the study (the first time: the list with the
fewest participants so far, recorded in ``study/participants.csv``) and the session runs that
list's plan: a headphone screen first (``headphone_check`` in the config: Woods et al. 2017
antiphase, Milne et al. 2021 Huggins pitch, or both; trials in
``sub-<id>_ses-<n>_task-headphonecheck_beh.csv``), then the planned practice (with
feedback), then the main trials in the planned order with the planned breaks and repeats.
Every trial is appended and fsynced to ``<data-dir>/sub-<id>_ses-<n>_task-<task>_beh.csv``
(the trials contract, plus ``list`` and ``position``; default data folder ``study/data``)
before the next starts; Escape saves and exits; the same command resumes at the next planned
position, after checking that every recorded trial is the plan's and that the plan file is the
one the session started with (its SHA-256 is in the data file's ``.json``). A second launch
for the same participant and session while the first runs is refused.

Without ``--study`` the script runs only the built-in demo suite (every stimulus once, in a
seeded per-participant order): a real suite needs a counterbalanced plan.

The trials, their data rows and the session are defined in ``avmit_psych.experiments.
human_vs_dnn`` (``StimulusTrial``, ``HumanVsDnnSession``); this script reads the arguments and
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
from avmit_psych.experiments import human_vs_dnn as H  # noqa: E402
from avmit_psych.experiments.datafile import check_participant, check_session  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--study", type=Path, metavar="DIR",
                   help="a study folder from `python -m avmit_psych.experiments plan`")
    p.add_argument("--participant")
    p.add_argument("--session", type=int)
    p.add_argument("--config", type=Path, default=HERE / "human_vs_dnn.yaml")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="where data files go (default: STUDY/data with --study, else data/)")
    p.add_argument("--task", choices=list(H.TASKS))
    p.add_argument("--simulate", type=int, metavar="SEED")
    p.add_argument("--fast", action="store_true",
                   help="shorter waits and stimuli cut to their first 0.5 s (logic unchanged)")
    p.add_argument("--windowed", action="store_true")
    p.add_argument("--screenshots", type=Path)
    p.add_argument("--skip-missing", action="store_true",
                   help="run without stimuli whose file is missing or unplayable")
    p.add_argument("--monitor")
    return p.parse_args(argv)


def load_config(path: Path) -> dict:
    """The config, its headphone screen and audio output checked (a bad value stops here)."""
    try:
        cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError("config not found", path=path)
    from avmit_psych.experiments.audio import read_audio_config
    from avmit_psych.experiments.headphones import read_headphone_config
    cfg["headphones"] = read_headphone_config(cfg, path=path)
    cfg["audio"] = read_audio_config(cfg.get("audio"), path=path)
    return cfg


def main(argv=None) -> int:
    args = parse_args(argv)
    cfg = load_config(args.config)
    if args.data_dir is None:
        args.data_dir = args.study / "data" if args.study else Path("data")
    study = None
    if args.study:
        from avmit_psych.experiments.plan import load_study
        study = load_study(args.study)
        planned_task = str(study.design.get("task", "classify"))
        if args.task and args.task != planned_task:
            raise DatasetError(f"--task {args.task}, but the study was planned for "
                               f"{planned_task}", path=args.study / "design.json",
                               fix=f"leave out --task, or plan a {args.task} study")
        task = planned_task
    else:
        task = args.task or cfg.get("task", "classify")
    if args.participant is None or args.session is None:
        from psychopy import gui
        info = {"participant": args.participant or "", "session": args.session or 1}
        if not gui.DlgFromDict(info, title="AVMIT human-vs-DNN").OK:
            return 0
        args.participant, args.session = info["participant"], info["session"]
    participant, session = check_participant(args.participant), check_session(args.session)
    if study is not None:
        from avmit_psych.experiments.study import session_plan
        plan = session_plan(study, participant, session)
        plan.trials.attrs["path"] = str(plan.plan_path)
        trials = H.check_files(plan.trials, args.skip_missing)
        follows, plan_hash = plan.plan_path, plan.sha256
        facts = {"study": str(Path(args.study).resolve()), "list": plan.list_id}
    else:
        manifest = cfg.get("manifest") and args.config.parent / cfg["manifest"]
        table = H.check_files(H.demo_manifest(manifest, args.data_dir), args.skip_missing)
        trials, plan_hash = H.demo_trials(
            table, participant, task=task, seed=int(cfg.get("seed", 0)),
            repeat_fraction=float(cfg.get("repeat_fraction", 0.0)),
            practice_n=int(cfg.get("practice_trials", 0)),
            break_every=int(cfg.get("break_every", 60)))
        follows, facts = table.attrs.get("path", "demo suite"), {"study": "", "list": ""}
    # the session's lock comes first: a second launch stops here, changing nothing
    hvd = H.open_session(args.data_dir, participant, session, task, trials,
                          plan_file=follows, plan_sha256=plan_hash, planned=study is not None,
                          facts=facts, headphones=cfg["headphones"],
                          headphone_seed=int(cfg.get("seed", 0)) + session, fast=args.fast)
    from avmit_psych.experiments import screens
    win = None
    try:
        output = screens.prepare_devices(cfg["audio"], null_device=args.simulate is not None)
        hvd.record(**output.facts())   # the clips' sound: its facts in the data sidecar
        win = screens.open_window(cfg.get("window"), windowed=args.windowed,
                                  monitor=args.monitor)
        observer = H.SimulatedObserver(args.simulate) if args.simulate is not None else None
        screen = screens.HumanVsDnnScreen(win, task, fast=args.fast, observer=observer,
                                          screenshots=screens.Screenshots(win, args.screenshots))
        status = hvd.run(screen)
    finally:
        hvd.writer.close()   # already closed by run(); here when the window never opened
        screens.close_devices(win)
    print(f"{status}: data in {hvd.writer.path}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
