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
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import pandas as pd  # noqa: E402
import yaml  # noqa: E402

from avmit_psych._cli import run  # noqa: E402
from avmit_psych.dataset.schema import TEST_CLASSES, DatasetError  # noqa: E402
from avmit_psych.experiments import human_vs_dnn as H  # noqa: E402
from avmit_psych.experiments.annotation import Aborted  # noqa: E402
from avmit_psych.experiments.datafile import TrialWriter, check_participant, check_session  # noqa: E402
from avmit_psych.experiments.player import PLAYBACK_COLUMNS  # noqa: E402


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
    p.add_argument("--task", choices=["classify", "correspondence"])
    p.add_argument("--simulate", type=int, metavar="SEED")
    p.add_argument("--fast", action="store_true",
                   help="shorter waits and stimuli cut to their first 0.5 s (logic unchanged)")
    p.add_argument("--windowed", action="store_true")
    p.add_argument("--screenshots", type=Path)
    p.add_argument("--skip-missing", action="store_true",
                   help="run without stimuli whose file is missing or unplayable")
    p.add_argument("--monitor")
    return p.parse_args(argv)


def load_manifest(cfg: dict, cfg_dir: Path, data_dir: Path) -> pd.DataFrame:
    path = cfg.get("manifest")
    path = (cfg_dir / path) if path else None
    if path is None or not path.exists():
        path = demo_suite(data_dir / "demo_suite")
        root = path.parent
    else:
        raise DatasetError(
            "a stimulus suite is run from a counterbalanced study plan, not stimulus by "
            "stimulus (every participant would see every source video up to 27 times)",
            path=path, fix=f"plan it once: python -m avmit_psych.experiments plan --manifest "
                           f"{path} --out study/, then run with --study study/")
    table = pd.read_csv(path, keep_default_na=False)
    for col in ("stimulus_id", "path", "label", "manipulation", "level"):
        if col not in table.columns:
            raise DatasetError(f"required column '{col}' is missing", path=path, column=col,
                               fix="give a manifest written by `avmit_psych.stimuli generate`")
    table["file"] = [str(p if Path(p).is_absolute() else root / p) for p in table["path"]]
    table.attrs["path"] = str(path)
    return table


def demo_suite(root: Path) -> Path:
    """A small suite of probe clips (once): original, +200 ms offset and a semantic swap."""
    manifest = root / "suite" / "manifest.csv"
    if manifest.exists():
        return manifest
    from avmit_psych.dataset import synthetic
    from avmit_psych.stimuli import generate
    csv = synthetic.write_probe_clips(root / "videos", root / "test_set.csv", per_class=1)
    suite = root / "demo.yaml"
    suite.write_text("name: demo\nconditions:\n  none: true\n  av_offset: {levels: [200]}\n"
                     "  semantic_swap: true\n")
    sources = generate.sources_from_test_set(csv, root / "videos")
    generate.generate(suite, sources, root / "suite", seed=0, workers=2, progress=False)
    return manifest


def check_files(table: pd.DataFrame, skip: bool) -> pd.DataFrame:
    """Every stimulus file must exist and be readable before the first trial."""
    from avmit_psych.features import media
    bad = []
    for row in table.drop_duplicates("stimulus_id").itertuples():
        try:
            media.probe(row.file)
        except media.MediaError as err:
            bad.append((row.stimulus_id, row.file, str(err)))
    if bad and not skip:
        listing = "; ".join(f"{s} ({e})" for s, _, e in bad[:5])
        raise DatasetError(f"{len(bad)} stimuli are missing or unplayable: {listing}",
                           path=table.attrs.get("path"), column="path",
                           fix="fix the files, or run with --skip-missing")
    for s, f, e in bad:
        print(f"skipping {s}: {e}", file=sys.stderr)
    return table[~table["stimulus_id"].isin({b[0] for b in bad})].reset_index(drop=True)


class Screen:
    """Draws, plays and listens for the test; the simulated observer answers through
    PsychoPy's input path (key and mouse events dispatched to the window)."""

    def __init__(self, win, task, *, fast, observer, shots):
        from psychopy import core, event, visual
        from avmit_psych.experiments.screens import Screenshots
        self.win, self.core, self.event = win, core, event
        self.task, self.fast, self.observer = task, fast, observer
        self.shots = shots or Screenshots(win)
        w, h = win.size
        self.fixation = visual.TextStim(win, text="+", height=50, units="pix", color="white")
        self.text = visual.TextStim(win, text="", height=30, units="pix", color="white",
                                    wrapWidth=w * 0.8)
        self.mouse = event.Mouse(win=win)
        bw, bh = min(w * 0.8, 900), min(h * 0.6, 420)
        self.positions = H.grid_positions(bw, bh, top_px=bh / 2 + 20)
        self.buttons = {}
        for i, c in enumerate(TEST_CLASSES):
            x, y = self.positions[c]
            rect = visual.Rect(win, width=bw / 4 - 12, height=bh / 4 - 12, pos=(x, y),
                               units="pix", fillColor=[-0.6, -0.6, -0.4], lineColor="white")
            label = visual.TextStim(win, text=f"{c}\n({H.CLASS_KEYS[i]})", pos=(x, y),
                                    height=20, units="pix", color="white")
            self.buttons[c] = (rect, label)
        self.ok = visual.Rect(win, width=160, height=50, pos=(0, -h / 2 + 60), units="pix",
                              fillColor=[-0.2, 0.4, -0.2], lineColor="white")
        self.ok_label = visual.TextStim(win, text="OK (return)", pos=(0, -h / 2 + 60),
                                        height=22, units="pix", color="white")
        self.prompt = visual.TextStim(win, text="", pos=(0, h / 2 - 50), height=30,
                                      units="pix", color="white", wrapWidth=w * 0.9)

    def wait(self, seconds):
        end = self.core.getTime() + (min(seconds, 0.05) if self.fast else seconds)
        while self.core.getTime() < end:
            yield

    def message(self, text, wait=True):
        from avmit_psych.experiments.screens import press
        self.text.text = text + ("\n\nPress space to continue." if wait else "")
        self.event.clearEvents()
        start = self.core.getTime()
        while True:
            self.text.draw()
            self.win.flip()
            if not wait:
                return
            if self.observer and self.core.getTime() - start > (0.05 if self.fast else 1.0):
                press(self.win, "space")
            keys = self.event.getKeys(keyList=["space", "escape"])
            if "escape" in keys:
                raise Aborted
            if keys:
                return

    def headphone_trial(self, trial) -> tuple[str, float]:
        """Play one headphone-screen trial (a ``headphones.HeadphoneTrial``: Woods or
        Huggins) and ask which interval; returns (key '1'-'3', time from the question)."""
        from psychopy import sound
        from avmit_psych.experiments import headphones as HP
        from avmit_psych.experiments.screens import press
        rate = HP.HEADPHONE_SAMPLE_RATE_HZ
        audio = trial.audio(rate)
        tone = sound.Sound(value=audio, sampleRate=rate, stereo=True)
        self.text.text = HP.LISTEN[trial.test]
        self.text.draw()
        self.win.callOnFlip(tone.play)
        self.win.flip()
        for _ in self.wait(len(audio) / rate):
            self.text.draw()
            self.win.flip()
        tone.stop()
        self.text.text = HP.QUESTIONS[trial.test]
        self.event.clearEvents()
        start = self.core.getTime()
        due = start + (0.05 if self.fast else 0.8)
        while True:
            if self.observer and due and self.core.getTime() >= due:
                press(self.win, trial.answer)  # the simulated observer wears headphones
                due = None
            self.text.draw()
            self.shots.take("headphone_check" if trial.test == "woods" else "headphone_huggins")
            self.win.flip()
            keys = self.event.getKeys(keyList=["1", "2", "3", "escape"], timeStamped=True)
            if keys:
                if keys[0][0] == "escape":
                    raise Aborted
                return keys[0][0], keys[0][1] - start

    def play(self, stim, max_s):
        from avmit_psych.experiments.player import AVPlayer
        for _ in self.wait(0.5):
            self.fixation.draw()
            self.win.flip()
        player = AVPlayer.load(self.win, stim["file"], max_duration_s=max_s)
        report = player.play()
        self.win.flip()
        return report.to_row(), self.core.getTime()

    def respond(self, stim) -> tuple[str, float]:
        """Response screen; returns (response, time of the response)."""
        from avmit_psych.experiments.screens import mouse_down, mouse_up, press
        self.event.clearEvents()
        self.mouse.clickReset()
        start = self.core.getTime()
        planned = None
        if self.observer:
            planned = (self.observer.respond(self.task, stim),
                       start + (0.05 if self.fast else self.observer.rt()))
        if self.task == "correspondence":
            self.prompt.text = "Do sound and picture show the same action?\n" \
                               "F = same     J = different"
            keymap = {v: k for k, v in H.CORRESPONDENCE_KEYS.items()}
            while True:
                if planned and self.core.getTime() >= planned[1]:
                    press(self.win, H.CORRESPONDENCE_KEYS[planned[0]])
                    planned = None
                self.prompt.draw()
                self.shots.take("correspondence_response")
                self.win.flip()
                keys = self.event.getKeys(keyList=list(keymap) + ["escape"], timeStamped=True)
                if keys:
                    if keys[0][0] == "escape":
                        raise Aborted
                    return keymap[keys[0][0]], keys[0][1]
        self.prompt.text = "Which action was it? Click it (or press its key), then OK."
        chosen, step = None, 0
        key_to_class = dict(zip(H.CLASS_KEYS, TEST_CLASSES))
        while True:
            if planned and self.core.getTime() >= planned[1]:
                # the simulated observer answers with the mouse on even trials and with the
                # button's key on odd ones, then confirms (OK button / return)
                use_mouse = int(stim["trial"]) % 2 == 0
                if step == 0:
                    if use_mouse:
                        mouse_down(self.win, *self.positions[planned[0]])
                    else:
                        press(self.win, H.CLASS_KEYS[TEST_CLASSES.index(planned[0])])
                    step, planned = 1, (planned[0], self.core.getTime() + 0.05)
                else:
                    if use_mouse:
                        mouse_down(self.win, *self.ok.pos)
                    else:
                        press(self.win, "return")
                    planned = None
            self.prompt.draw()
            for c, (rect, label) in self.buttons.items():
                rect.fillColor = [0.2, 0.2, 0.8] if c == chosen else [-0.6, -0.6, -0.4]
                rect.draw()
                label.draw()
            if chosen:
                self.ok.draw()
                self.ok_label.draw()
            self.shots.take("classify_response" if chosen is None else "classify_confirm")
            self.win.flip()
            for key, t in self.event.getKeys(keyList=list(H.CLASS_KEYS) + ["return", "escape"],
                                             timeStamped=True):
                if key == "escape":
                    raise Aborted
                if key == "return" and chosen:
                    return chosen, t
                if key in key_to_class:
                    chosen = key_to_class[key]
            if self.mouse.getPressed()[0]:
                for c, (rect, _) in self.buttons.items():
                    if self.mouse.isPressedIn(rect):
                        chosen = c
                if chosen and self.mouse.isPressedIn(self.ok):
                    if self.observer:
                        mouse_up(self.win)
                    return chosen, self.core.getTime()
                self.mouse.clickReset()
                while any(self.mouse.getPressed()):
                    if self.observer:
                        mouse_up(self.win)
                    self.win.flip()


def demo_trials(cfg: dict, config: Path, data_dir: Path, participant: str,
                skip: bool) -> tuple[pd.DataFrame, str, str]:
    """The demo suite's trials (every stimulus once, seeded per participant), with the
    plan's columns; returns (trials, what they follow, its hash)."""
    import hashlib
    table = check_files(load_manifest(cfg, config.parent, data_dir), skip)
    trials = H.trial_list(table, participant, seed=int(cfg.get("seed", 0)),
                          repeat_fraction=float(cfg.get("repeat_fraction", 0.0)),
                          practice_n=int(cfg.get("practice_trials", 0)))
    trials["position"] = trials["trial"]
    trials["list"] = ""
    every = int(cfg.get("break_every", 60))
    main_n = (trials["block"] == "main").cumsum()
    trials["break_before"] = (trials["block"] == "main") & (main_n > 1) & \
        ((main_n - 1) % every == 0)
    order = "\n".join(f"{p},{sid}" for p, sid in zip(trials["position"],
                                                     trials["stimulus_id"]))
    return trials, table.attrs.get("path", "demo suite"), \
        hashlib.sha256(order.encode()).hexdigest()


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        cfg = yaml.safe_load(args.config.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError("config not found", path=args.config)
    from avmit_psych.experiments.headphones import read_headphone_config
    read_headphone_config(cfg, path=args.config)  # a bad headphone_* value stops here
    from avmit_psych.experiments.audio import read_audio_config
    read_audio_config(cfg.get("audio"), path=args.config)  # a bad audio.* value stops here
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
        trials = check_files(plan.trials, args.skip_missing)
        follows, plan_hash = plan.plan_path, plan.sha256
        facts = {"study": str(Path(args.study).resolve()), "list": plan.list_id}
    else:
        trials, follows, plan_hash = demo_trials(cfg, args.config, args.data_dir, participant,
                                                 args.skip_missing)
        facts = {"study": "", "list": ""}
    from avmit_psych.experiments.study import bind_data_file, resume_positions
    # the writer takes the session's lock first: a second launch stops here, changing nothing
    writer = TrialWriter(args.data_dir, participant, session, task, H.TRIAL_COLUMNS)
    try:
        bind_data_file(writer.path, plan_file=follows, plan_sha256=plan_hash,
                       resuming=len(writer.completed) > 0 and study is not None,
                       participant=participant,
                       session=session, task=task, **facts)
        done = resume_positions(writer.completed, trials, path=writer.path)
    except Exception:
        writer.close()
        raise
    return run_session(args, cfg, task, participant, session, trials, writer, done)


def run_session(args, cfg, task, participant, session, trials, writer, done) -> int:
    from avmit_psych.experiments import headless
    headless.prepare_audio(null_device=args.simulate is not None)
    if not headless.display_available():
        writer.close()
        raise DatasetError(headless.headless_error_message())
    from avmit_psych.experiments import audio
    from avmit_psych.experiments.study import update_sidecar
    try:  # the clips' sound: the configured backend, its facts in the data file's sidecar
        output = audio.session_output(audio.read_audio_config(cfg.get("audio"), args.config))
        update_sidecar(writer.path, **output.facts())
    except BaseException:
        writer.close()
        raise
    from psychopy import visual
    from avmit_psych.experiments.screens import Screenshots
    w = cfg.get("window", {})
    win = visual.Window(size=w.get("size", [1280, 800]), units="pix", winType="pyglet",
                        fullscr=w.get("fullscr", True) and not args.windowed,
                        monitor=args.monitor or w.get("monitor", "testMonitor"),
                        color=w.get("color", [-1, -1, -1]), allowGUI=args.windowed)
    observer = H.SimulatedObserver(args.simulate) if args.simulate is not None else None
    screen = Screen(win, task, fast=args.fast, observer=observer,
                    shots=Screenshots(win, args.screenshots))
    status = "complete"
    try:
        from avmit_psych.experiments import headphones as HP
        headphones = HP.read_headphone_config(cfg, path=args.config)
        if headphones.enabled and not done:
            if not run_headphone_screen(screen, headphones, args.data_dir, participant,
                                        session, seed=int(cfg.get("seed", 0)) + session):
                status = "headphone_check_failed"
                screen.message(HP.FAILED)
                return 0
        if not done:
            screen.message("Watch and listen to each short video, then answer." +
                           (" Which action was it?" if task == "classify"
                            else " Do sound and picture show the same action?"))
        max_s = 0.5 if args.fast else None
        for stim in trials.to_dict("records"):
            position = int(stim["position"])
            if position in done:
                continue
            if _flag(stim.get("break_before")) and stim["block"] == "main":
                screen.message("Time for a short break.")
            stim["trial"] = position
            try:
                timing, ended = screen.play(stim, max_s)
                error = ""
            except Exception as err:  # a stimulus that fails mid-session: logged, marked
                timing, ended, error = {}, screen.core.getTime(), f"{type(err).__name__}: {err}"
            if error:
                response, t = "", ended
            else:
                response, t = screen.respond(stim)
            correct = H.score(task, stim, response) if response else ""
            writer.write({
                "participant": participant, "session": session, "task": task,
                "block": stim["block"], "trial": position,
                "stimulus_id": stim["stimulus_id"],
                # the answer key: the class, or same/different (as the SAVC models' rows)
                "label": H.correct_response(task, stim),
                "manipulation": stim["manipulation"], "level": stim["level"],
                "response": response, "correct": correct, "rt": round(t - ended, 4),
                "rt_from_onset": round(t - timing["onset"], 4) if timing else "",
                **{k: timing.get(k, "") for k in PLAYBACK_COLUMNS},
                "repeat": _flag(stim["repeat"]), "audio_source": stim.get("audio_source", ""),
                "error": error, "list": stim.get("list", ""), "position": position})
            if stim["block"] == "practice" and response:
                screen.message("Correct!" if correct else
                               f"The answer was: {H.correct_response(task, stim)}",
                               wait=not args.fast)
        screen.message("Thank you! You have finished.", wait=not args.fast)
        writer.finish()
    except Aborted:
        status = "aborted"
    except BaseException as err:   # the data so far are kept; the status says it broke off
        status = f"error: {type(err).__name__}: {err}"
        raise
    finally:
        writer.close()
        (Path(args.data_dir) / f"sub-{participant}_ses-{session}_{task}-status.txt").write_text(
            status + "\n")
        win.close()
        audio.close_session_output()
    print(f"{status}: data in {writer.path}")
    return 0


def run_headphone_screen(screen, config, data_dir, participant, session, *, seed) -> bool:
    """Run the configured headphone screen (``headphones.HeadphoneScreen``), each trial
    written to the ``headphonecheck`` data file; True when it passed. Rows already in an
    unfinished file (an interrupted launch) are replayed first: attempts used stay used."""
    from avmit_psych.experiments import headphones as HP
    hp = TrialWriter(data_dir, participant, session, "headphonecheck", HP.HEADPHONE_COLUMNS)
    try:
        check = HP.HeadphoneScreen(config, seed=seed)
        check.replay(hp.completed.to_dict("records"), path=hp.path)
        resumed = len(hp.completed) > 0
        while (trial := check.next_trial()) is not None:
            if trial.trial == 1 or resumed:
                screen.message(HP.RETRY if trial.attempt > 1 and trial.trial == 1
                               else HP.INSTRUCTIONS[trial.test])
                resumed = False
            key, rt = screen.headphone_trial(trial)
            hp.write({"participant": participant, "session": session, **check.record(key, rt)})
        hp.finish()
    finally:
        hp.close()
    return check.status == "passed"


def _flag(value) -> bool:
    return str(value).strip().lower() in ("true", "1", "yes")


if __name__ == "__main__":
    sys.exit(run(main))
