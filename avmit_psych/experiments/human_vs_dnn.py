"""The human-vs-DNN test as plain Python: trial lists, the trial, scoring, data rows, sessions.

Tasks: ``classify`` (which of the 16 actions; a 4x4 grid of labelled buttons, mouse or keys,
with confirmation) and ``correspondence`` (do sound and picture show the same action; two
keys). Rows follow the trials data contract (``participant, session, task, block, trial,
stimulus_id, label, manipulation, level, response, correct, rt``) plus timing columns, so
``compare`` can stack them with model predictions.

jsPsych's model: :class:`StimulusTrial` is one trial (what is shown: the stimulus, then the
task's prompt and answer options; how it is scored: :func:`score` against the answer key
:func:`correct_response`; what is recorded: :meth:`StimulusTrial.row`, the
``schema.TRIALS_COLUMNS`` layout), and :class:`HumanVsDnnSession` runs a session's planned
trials (headphone screen, instructions, breaks, practice feedback; resuming at the next
planned position; each row written and fsynced before the next trial) against a presenter
(:class:`HumanVsDnnPresenter`): the PsychoPy screen (:class:`.screens.HumanVsDnnScreen`) or a
test's scripted fake, so the whole session runs without a window. The script
``experiments/human_vs_dnn.py`` only parses its arguments, reads the config, opens the window
and calls :func:`open_session` and :meth:`HumanVsDnnSession.run`.

The headphone screen (Woods et al. 2017 antiphase, Milne et al. 2021 Huggins pitch) lives in
:mod:`.headphones`; ``headphone_trials``, ``headphone_audio``, ``headphone_answer`` and
``HEADPHONE_*`` here are its Woods test under the names earlier code imports.
"""
from __future__ import annotations

import hashlib
import math
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from ..dataset import schema
from ..dataset.schema import TEST_CLASSES, DatasetError
from . import headphones as _headphones
from .datafile import TrialWriter
from .session import Aborted, is_true, run_with_status

#: The columns of a trials file, in order (the trials layout of the schema module).
TRIAL_COLUMNS = list(schema.TRIALS_COLUMNS)
CORRESPONDENCE_KEYS = {"same": "f", "different": "j"}
#: keys of the 16 buttons, in TEST_CLASSES order (row by row in the 4x4 grid)
CLASS_KEYS = tuple("1234567890abcdef")

# the Woods screen under the names earlier code imports (see .headphones)
HEADPHONE_TONE_HZ, HEADPHONE_TONE_S = _headphones.WOODS_TONE_HZ, _headphones.WOODS_TONE_S
HEADPHONE_GAP_S = _headphones.WOODS_GAP_S
HEADPHONE_TRIALS, HEADPHONE_PASS = _headphones.WOODS_TRIALS, _headphones.WOODS_PASS
headphone_trials = _headphones.woods_trials
headphone_audio = _headphones.woods_audio
headphone_answer = _headphones.woods_answer


def participant_rng(seed: int, participant: str, salt: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(participant.encode()), salt])


def trial_list(manifest: pd.DataFrame, participant: str, *, seed: int = 0,
               repeat_fraction: float = 0.0, practice_n: int = 0) -> pd.DataFrame:
    """The participant's trials: practice first (condition 'none' when there is one), then
    every stimulus once in a seeded per-participant random order, with ``repeat_fraction`` of
    them shown a second time (``repeat`` True), spread through the second half."""
    rng = participant_rng(seed, participant, 73)
    main = manifest.iloc[rng.permutation(len(manifest))].copy()
    main["block"], main["repeat"] = "main", False
    n_rep = int(round(repeat_fraction * len(main)))
    if n_rep:
        reps = main.iloc[rng.choice(len(main), n_rep, replace=False)].copy()
        reps["repeat"] = True
        half = len(main) // 2
        slots = np.sort(rng.choice(np.arange(half, len(main) + n_rep), n_rep, replace=False))
        out = []
        it_main, it_rep = iter(main.to_dict("records")), iter(reps.to_dict("records"))
        for pos in range(len(main) + n_rep):
            out.append(next(it_rep) if pos in set(slots) else next(it_main))
        main = pd.DataFrame(out)
    parts = []
    if practice_n:
        pool = manifest[manifest["manipulation"] == "none"] if \
            (manifest["manipulation"] == "none").any() else manifest
        practice = pool.iloc[rng.choice(len(pool), min(practice_n, len(pool)),
                                        replace=False)].copy()
        practice["block"], practice["repeat"] = "practice", False
        parts.append(practice)
    parts.append(main)
    out = pd.concat(parts, ignore_index=True)
    out["trial"] = np.arange(1, len(out) + 1)
    return out


def correct_response(task: str, stim: dict) -> str:
    """The answer key: the class (classify), or same/different (correspondence; the one
    definition the SAVC models' predictions use too). A one-modality stimulus (audio_only,
    visual_only) asks no correspondence question: ValueError."""
    if task == "classify":
        return str(stim["label"])
    from ..models.savc import correspondence_answer
    answer = correspondence_answer(stim.get("manipulation", "none"))
    if answer is None:
        raise ValueError(f"stimulus {stim.get('stimulus_id', '')} "
                         f"({stim.get('manipulation')}) has no correspondence question")
    return answer


def score(task: str, stim: dict, response: str) -> bool:
    return str(response) == correct_response(task, stim)


def grid_positions(width_px: float, height_px: float, *, top_px: float = 0.0):
    """Centres (x, y) of the 16 buttons, TEST_CLASSES row by row, in pixels from the centre."""
    xs = (np.arange(4) - 1.5) * width_px / 4
    ys = top_px - (np.arange(4) + 0.5) * height_px / 4
    return {c: (float(xs[i % 4]), float(ys[i // 4])) for i, c in enumerate(TEST_CLASSES)}


def wrong_response(task: str, right: str, rng: np.random.Generator) -> str:
    """A wrong answer drawn uniformly from the task's other answers (never ``right``), so an
    observer that errs with probability 1 - p is correct with probability exactly p."""
    if task != "classify":
        return "different" if right == "same" else "same"
    others = [c for c in TEST_CLASSES if c != right]
    return str(others[rng.integers(len(others))])


@dataclass
class SimulatedObserver:
    """A participant for tests and demos: correct with probability ``accuracy`` in every
    condition, RTs log-normal; answers the headphone screen correctly.

    ``accuracy`` is the probability of a correct answer itself, not of "knowing" the answer:
    a wrong answer comes from the other 15 classes (classify) or is the other key
    (correspondence), never by chance the right one. Chance is 1/16 and 1/2, so an
    ``accuracy`` below those is a below-chance observer. For accuracy that falls with a
    manipulation's level use :class:`PsychometricObserver`.
    """

    seed: int
    accuracy: float = 0.8
    rt_median_s: float = 0.8
    rng: np.random.Generator = field(init=False)

    def __post_init__(self):
        if not 0 <= self.accuracy <= 1:
            raise ValueError(f"accuracy is a probability of a correct answer: expected a "
                             f"value in [0, 1], got {self.accuracy}")
        self.rng = np.random.default_rng([int(self.seed), 79])

    def rt(self) -> float:
        return float(np.clip(self.rt_median_s * np.exp(self.rng.normal(0, 0.3)), 0.2, 5.0))

    def respond(self, task: str, stim: dict) -> str:
        right = correct_response(task, stim)
        if self.rng.random() < self.accuracy:
            return right
        return wrong_response(task, right, self.rng)


#: Which way each levelled manipulation makes a stimulus easier: +1 when a higher level is
#: easier (audio_noise SNR in dB, contrast factor), -1 when it is harder (visual_noise pixel SD,
#: blur sigma, av_offset, whose size ``|ms|`` is what counts).
PSYCHOMETRIC_DIRECTION = {"audio_noise": +1, "contrast": +1, "visual_noise": -1, "blur": -1,
                          "av_offset": -1}

#: Classes a simulated observer mistakes each class for: fixed, so that simulated confusion
#: matrices have structure. Chosen by hand for plausible likeness of sound or sight (animal and
#: vocal sounds, percussive contact, water and sizzling, motors); illustrative, not measured.
CONFUSABLE_CLASSES: dict[str, tuple[str, ...]] = {
    "barking": ("howling", "sneezing", "giggling"),
    "diving": ("pouring", "raining"),
    "drumming": ("tapping", "sanding"),
    "frying": ("raining", "pouring", "sanding"),
    "giggling": ("sneezing", "whistling", "barking"),
    "howling": ("barking", "whistling"),
    "inflating": ("vacuuming", "whistling", "pouring"),
    "mowing": ("vacuuming", "shredding", "sanding"),
    "pouring": ("raining", "diving", "frying"),
    "raining": ("frying", "pouring", "shredding"),
    "sanding": ("shredding", "tapping", "vacuuming"),
    "shredding": ("sanding", "mowing", "vacuuming"),
    "sneezing": ("giggling", "barking"),
    "tapping": ("drumming", "sanding"),
    "vacuuming": ("mowing", "shredding", "inflating"),
    "whistling": ("howling", "giggling", "inflating"),
}


def _level_value(level) -> float | None:
    """A numeric manifest level as a number; None when there is none (blank or NaN)."""
    if level is None or (isinstance(level, str) and not level.strip()):
        return None
    x = float(level)
    return None if math.isnan(x) else x


def _normal_cdf(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


@dataclass
class PsychometricObserver:
    """A simulated participant whose accuracy follows a psychometric function per manipulation.

    For a levelled manipulation with a function ``(threshold, sigma)`` (both in the level's
    unit, e.g. dB SNR or pixel SD) the probability of a correct answer at level ``x`` is::

        P(correct) = guess + (1 - guess - lapse) * Phi(direction * (x - threshold) / sigma)

    with ``Phi`` the standard normal CDF, ``guess`` the chance rate (1/16 for ``classify``,
    1/2 for ``correspondence``) and ``direction`` from :data:`PSYCHOMETRIC_DIRECTION`: at the
    threshold the observer is halfway between chance and their ceiling ``1 - lapse``.
    Conditions without levels (``none``, ``audio_only``, ``visual_only``, ...) are right with
    their ``base_accuracy``; anything else with ``base_accuracy['none']`` (else ``1 - lapse``).

    ``p_correct`` is the probability of a correct answer itself: the guess rate is inside the
    function already, so a wrong answer is never the right one (no second 1/16 on top).
    Wrong answers are not uniform: with probability ``confusable_share`` they come from the true
    class's :data:`CONFUSABLE_CLASSES`, otherwise from the remaining classes, so confusion
    matrices have the structure a real one has. Response times are log-normal around
    ``rt_median_s``, longer the less likely a correct answer (harder trials are slower).
    Everything is drawn from ``seed``: the same seed and trials give the same responses.
    """

    seed: int
    functions: dict = field(default_factory=dict)
    base_accuracy: dict = field(default_factory=dict)
    lapse: float = 0.03
    rt_median_s: float = 0.9
    confusable_share: float = 0.8
    confusable: dict = field(default_factory=lambda: dict(CONFUSABLE_CLASSES))
    rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self):
        if not 0 <= self.lapse < 1:
            raise ValueError(f"lapse must be in [0, 1), got {self.lapse}")
        unknown = set(self.functions) - set(PSYCHOMETRIC_DIRECTION)
        if unknown:
            raise ValueError(f"no psychometric direction for {sorted(unknown)}; "
                             f"manipulations with levels are {sorted(PSYCHOMETRIC_DIRECTION)}")
        self.rng = np.random.default_rng([int(self.seed), 83])

    def p_correct(self, manipulation: str, level=None, *, task: str = "classify") -> float:
        """The probability of a correct answer to a stimulus of this condition."""
        guess = 1.0 / len(TEST_CLASSES) if task == "classify" else 0.5
        x = _level_value(level) if manipulation in self.functions else None
        if x is not None:
            threshold, sigma = self.functions[manipulation]
            if manipulation == "av_offset":
                x = abs(x)
            z = PSYCHOMETRIC_DIRECTION[manipulation] * (x - threshold) / sigma
            return guess + (1.0 - guess - self.lapse) * _normal_cdf(z)
        if manipulation in self.base_accuracy:
            return float(self.base_accuracy[manipulation])
        return float(self.base_accuracy.get("none", 1.0 - self.lapse))

    def _p_stim(self, task: str, stim: dict) -> float:
        return self.p_correct(str(stim.get("manipulation", "none")), stim.get("level"),
                              task=task)

    def respond(self, task: str, stim: dict) -> str:
        """The observer's answer to one trial (a row of :func:`trial_list`)."""
        right = correct_response(task, stim)
        if self.rng.random() < self._p_stim(task, stim):
            return right
        if task != "classify":
            return wrong_response(task, right, self.rng)
        likely = [c for c in self.confusable.get(right, ()) if c != right]
        if likely and self.rng.random() < self.confusable_share:
            return str(likely[self.rng.integers(len(likely))])
        others = [c for c in TEST_CLASSES if c != right and c not in likely] or \
            [c for c in TEST_CLASSES if c != right]
        return str(others[self.rng.integers(len(others))])

    def rt(self, stim: dict | None = None, *, task: str = "classify") -> float:
        """A response time (s) to ``stim``: slower the less likely a correct answer is."""
        difficulty = 0.0 if stim is None else 1.0 - self._p_stim(task, stim)
        median = self.rt_median_s * (1.0 + 0.8 * difficulty)
        return float(np.clip(median * np.exp(self.rng.normal(0, 0.25)), 0.2, 10.0))


# --------------------------------------------------------------------------------------------
# The trial: what is shown, what is asked, how it is scored, what is recorded
# --------------------------------------------------------------------------------------------
TASKS = ("classify", "correspondence")
#: What the participant is told before the first trial, then asked after each video (the BIDS
#: sidecars quote these texts: experiments.bids.TASKS, checked by tests/test_bids.py).
INTRODUCTION = "Watch and listen to each short video, then answer."
QUESTIONS = {"classify": "Which action was it?",
             "correspondence": "Do sound and picture show the same action?"}
RESPONSE_PROMPTS = {
    "classify": "Which action was it? Click it (or press its key), then OK.",
    "correspondence": "Do sound and picture show the same action?\nF = same     J = different",
}
BREAK_MESSAGE = "Time for a short break."
CORRECT_FEEDBACK = "Correct!"
ANSWER_FEEDBACK = "The answer was: {answer}"
FINISHED_MESSAGE = "Thank you! You have finished."


def introduction(task: str) -> str:
    """The text shown before a session's first trial."""
    return f"{INTRODUCTION} {QUESTIONS[task]}"


def answer_options(task: str) -> tuple[tuple[str, str], ...]:
    """The answers a trial offers and their keys, in screen order: the 16 classes (the 4x4
    grid, row by row, keys :data:`CLASS_KEYS`) or ``same`` / ``different`` (F / J)."""
    if task == "classify":
        return tuple(zip(TEST_CLASSES, CLASS_KEYS))
    if task == "correspondence":
        return tuple(CORRESPONDENCE_KEYS.items())
    raise ValueError(f"unknown task '{task}': expected one of {', '.join(TASKS)}")


class HumanVsDnnPresenter(Protocol):
    """What a session needs of a screen (:class:`.screens.HumanVsDnnScreen`, or a fake).

    Times are on one clock, in seconds (PsychoPy's ``core.getTime()`` for the screen).
    Escape, wherever the participant presses it, raises :class:`~.session.Aborted`.
    """

    def show_message(self, text: str, *, wait: bool = True) -> None:
        """Show ``text``; with ``wait``, until the participant presses space."""

    def show_stimulus(self, trial: "StimulusTrial") -> dict:
        """Show the trial's stimulus (fixation, then the clip); return the playback columns
        (``schema.PLAYBACK_COLUMNS``: ``onset`` ...) plus ``ended_at``, when it ended."""

    def collect_response(self, trial: "StimulusTrial") -> tuple[str, float]:
        """Ask ``trial.prompt`` with ``trial.options``; return (the answer, its time)."""

    def play_headphone_trial(self, trial) -> tuple[str, float]:
        """Play one headphone-screen trial (:class:`.headphones.HeadphoneTrial`) and ask which
        interval; return (key '1'-'3', seconds from the question to the answer)."""

    def now(self) -> float:
        """The presenter's clock."""


@dataclass(frozen=True)
class StimulusTrial:
    """One trial of the test (a jsPsych-style plugin).

    ``stimulus`` is the trial's row of the session's trials (a study plan's or the demo
    list's): ``stimulus_id``, ``file``, ``label``, ``manipulation``, ``level``, ``block``,
    ``position``, ``repeat`` and optionally ``break_before``, ``audio_source``, ``list``.

    Shown: the stimulus (``file``), then :attr:`prompt` with :attr:`options`. Scored:
    :meth:`score` (the class for classify; same/different for correspondence, one definition
    with the SAVC models). Recorded: :meth:`row`. :meth:`run` does all three with a presenter.
    """

    task: str
    stimulus: dict

    @property
    def position(self) -> int:
        return int(self.stimulus["position"])

    @property
    def block(self) -> str:
        return str(self.stimulus["block"])

    @property
    def file(self) -> str:
        return str(self.stimulus["file"])

    @property
    def prompt(self) -> str:
        return RESPONSE_PROMPTS[self.task]

    @property
    def options(self) -> tuple[tuple[str, str], ...]:
        return answer_options(self.task)

    @property
    def answer(self) -> str:
        """The answer key (:func:`correct_response`)."""
        return correct_response(self.task, self.stimulus)

    @property
    def break_before(self) -> bool:
        """A planned break before this trial (main trials only)."""
        return is_true(self.stimulus.get("break_before")) and self.block == "main"

    def score(self, response: str):
        """Whether ``response`` is the answer key; '' when there was no response."""
        return score(self.task, self.stimulus, response) if response else ""

    def feedback(self, response: str) -> str | None:
        """What a practice trial tells the participant after the answer (None otherwise)."""
        if self.block != "practice" or not response:
            return None
        return CORRECT_FEEDBACK if self.score(response) else \
            ANSWER_FEEDBACK.format(answer=self.answer)

    def row(self, *, participant: str, session: int, response: str, responded_at: float,
            playback: dict, ended_at: float, error: str = "") -> dict:
        """The trial's data row (``schema.TRIALS_COLUMNS``).

        ``playback`` holds the player's columns (empty when the stimulus failed to play);
        ``ended_at`` and ``responded_at`` are times on the presenter's clock: ``rt`` is from
        the end of the stimulus, ``rt_from_onset`` from its first frame (s, 4 decimals).
        ``label`` is the answer key: the class, or same/different (as the SAVC models' rows).
        """
        s = self.stimulus
        return {
            "participant": participant, "session": session, "task": self.task,
            "block": s["block"], "trial": self.position, "stimulus_id": s["stimulus_id"],
            "label": self.answer, "manipulation": s["manipulation"], "level": s["level"],
            "response": response, "correct": self.score(response),
            "rt": round(responded_at - ended_at, 4),
            "rt_from_onset": round(responded_at - playback["onset"], 4) if playback else "",
            **{k: playback.get(k, "") for k in schema.PLAYBACK_COLUMNS},
            "repeat": is_true(s["repeat"]), "audio_source": s.get("audio_source", ""),
            "error": error, "list": s.get("list", ""), "position": self.position}

    def run(self, presenter: HumanVsDnnPresenter, *, participant: str, session: int) -> dict:
        """Show the stimulus, collect the answer and return the data row. A stimulus that
        fails to play is recorded (``error``, no response) and the session goes on."""
        try:
            playback = dict(presenter.show_stimulus(self))
            ended_at, error = playback.pop("ended_at"), ""
        except Aborted:
            raise
        except Exception as err:  # a stimulus that fails mid-session: logged, marked
            playback, ended_at, error = {}, presenter.now(), f"{type(err).__name__}: {err}"
        if error:
            response, responded_at = "", ended_at
        else:
            response, responded_at = presenter.collect_response(self)
        return self.row(participant=participant, session=session, response=response,
                        responded_at=responded_at, playback=playback, ended_at=ended_at,
                        error=error)


# --------------------------------------------------------------------------------------------
# A session: the planned trials in order, resumable
# --------------------------------------------------------------------------------------------
def check_answerable(trials: pd.DataFrame, task: str, *, path=None) -> None:
    """Every trial must have an answer key: a correspondence session cannot show a
    one-modality stimulus (``audio_only``, ``visual_only``), which the plan leaves out."""
    if task not in TASKS:
        raise DatasetError(f"unknown task '{task}'", path=path,
                           fix=f"give one of {', '.join(TASKS)}")
    if task != "correspondence" or not len(trials):
        return
    from ..models.savc import ONE_MODALITY
    bad = trials[trials["manipulation"].astype(str).str.strip().isin(ONE_MODALITY)]
    if len(bad):
        first = bad.iloc[0]
        raise DatasetError(
            f"{len(bad)} trials have no correspondence question (one modality only; first: "
            f"{first['stimulus_id']}, {first['manipulation']})", path=path,
            column="manipulation", fix="plan the study for the correspondence task (the plan "
                                       "leaves audio_only and visual_only out)")


@dataclass
class HumanVsDnnSession:
    """One participant's session: :meth:`run` shows the trials not yet done, in order.

    Made by :func:`open_session`. ``writer`` (a :class:`~.datafile.TrialWriter` of
    :data:`TRIAL_COLUMNS`) holds the session's lock; ``done`` the positions already in its
    file. ``headphones`` (a :class:`.headphones.HeadphoneConfig`) is run first on a fresh
    session, its trials in the ``headphonecheck`` file. With ``fast`` the practice feedback and
    the closing message do not wait for a key.
    """

    writer: TrialWriter
    trials: pd.DataFrame
    task: str
    participant: str
    session: int
    done: set = field(default_factory=set)
    headphones: _headphones.HeadphoneConfig | None = None
    headphone_seed: int = 0
    fast: bool = False
    status: str = ""

    @property
    def data_dir(self) -> Path:
        return Path(self.writer.path).parent

    def record(self, **facts) -> None:
        """Add facts known once the session is under way (the audio output) to the data
        file's sidecar."""
        from .study import update_sidecar
        update_sidecar(self.writer.path, **facts)

    def run(self, presenter: HumanVsDnnPresenter) -> str:
        """Run the session; returns its status (also in ``sub-<id>_ses-<n>_<task>-status.txt``):
        ``complete``, ``aborted`` (Escape; run again to resume), ``headphone_check_failed``,
        or ``error: ...`` (the exception is raised on). Closes the writer: each row was
        written (and fsynced) before the next trial began."""
        return run_with_status(self, lambda: self._run(presenter), self.writer.close,
                               self.task)

    def _run(self, presenter) -> str:
        """The loop of :meth:`run`; returns the status."""
        if self.headphones is not None and self.headphones.enabled and not self.done:
            if not run_headphone_screen(presenter, self.headphones, self.data_dir,
                                        self.participant, self.session,
                                        seed=self.headphone_seed):
                status = "headphone_check_failed"
                presenter.show_message(_headphones.FAILED)
                return status
        if not self.done:
            presenter.show_message(introduction(self.task))
        for stimulus in self.trials.to_dict("records"):
            trial = StimulusTrial(self.task, stimulus)
            if trial.position in self.done:
                continue
            if trial.break_before:
                presenter.show_message(BREAK_MESSAGE)
            row = trial.run(presenter, participant=self.participant, session=self.session)
            self.writer.write(row)
            self.done.add(trial.position)
            feedback = trial.feedback(row["response"])
            if feedback:
                presenter.show_message(feedback, wait=not self.fast)
        presenter.show_message(FINISHED_MESSAGE, wait=not self.fast)
        self.writer.finish()
        return "complete"


def open_session(data_dir, participant: str, session: int, task: str, trials: pd.DataFrame,
                 *, plan_file, plan_sha256: str, planned: bool = True, facts: dict | None = None,
                 **options) -> HumanVsDnnSession:
    """Open a session's data file and tie it to the trials it follows.

    Takes the session's lock (:class:`~.datafile.SessionBusy` while another launch runs it,
    changing nothing), records ``plan_file`` and ``plan_sha256`` (plus ``facts``) in the data
    file's sidecar or, on a resume, checks them (a changed plan is refused), and checks every
    row already written against the trials (:func:`.study.resume_positions`). ``planned``:
    the trials are a study's plan (a resumed file must then have its sidecar). ``options`` go
    to :class:`HumanVsDnnSession` (``headphones``, ``headphone_seed``, ``fast``).
    """
    from .study import bind_data_file, resume_positions
    check_answerable(trials, task, path=trials.attrs.get("path", plan_file))
    writer = TrialWriter(data_dir, participant, session, task, TRIAL_COLUMNS)
    try:
        bind_data_file(writer.path, plan_file=plan_file, plan_sha256=plan_sha256,
                       resuming=len(writer.completed) > 0 and planned,
                       participant=writer.participant, session=writer.session, task=task,
                       **(facts or {}))
        done = resume_positions(writer.completed, trials, path=writer.path)
    except BaseException:
        writer.close()
        raise
    return HumanVsDnnSession(writer, trials, task, writer.participant, writer.session,
                             done=done, **options)


def run_headphone_screen(presenter: HumanVsDnnPresenter, config, data_dir, participant: str,
                         session: int, *, seed: int) -> bool:
    """Run the configured headphone screen (``headphones.HeadphoneScreen``), each trial
    written to the ``headphonecheck`` data file; True when it passed. Rows already in an
    unfinished file (an interrupted launch) are replayed first: attempts used stay used."""
    hp = TrialWriter(data_dir, participant, session, "headphonecheck",
                     _headphones.HEADPHONE_COLUMNS)
    try:
        check = _headphones.HeadphoneScreen(config, seed=seed)
        check.replay(hp.completed.to_dict("records"), path=hp.path)
        resumed = len(hp.completed) > 0
        while (trial := check.next_trial()) is not None:
            if trial.trial == 1 or resumed:
                presenter.show_message(_headphones.RETRY if trial.attempt > 1 and trial.trial == 1
                                       else _headphones.INSTRUCTIONS[trial.test])
                resumed = False
            key, rt = presenter.play_headphone_trial(trial)
            hp.write({"participant": participant, "session": session,
                      **check.record(key, rt)})
        hp.finish()
    finally:
        hp.close()
    return check.status == "passed"


# --------------------------------------------------------------------------------------------
# Trials without a study: the built-in demo suite
# --------------------------------------------------------------------------------------------
def demo_manifest(configured, data_dir) -> pd.DataFrame:
    """The stimuli of a session run without ``--study``: the built-in demo suite, built once
    in ``<data_dir>/demo_suite`` (used as it is when its manifest is there), with each
    stimulus's absolute ``file``. A configured suite manifest that exists is refused: a real
    suite is run from a counterbalanced study plan."""
    path = Path(configured) if configured else None
    if path is not None and path.exists():
        raise DatasetError(
            "a stimulus suite is run from a counterbalanced study plan, not stimulus by "
            "stimulus (every participant would see every source video up to 27 times)",
            path=path, fix=f"plan it once: python -m avmit_psych.experiments plan --manifest "
                           f"{path} --out study/, then run with --study study/")
    path = demo_suite(Path(data_dir) / "demo_suite")
    root = path.parent
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
    from ..dataset.synthetic.clips import write_probe_clips
    from ..stimuli import generate
    csv = write_probe_clips(root / "videos", root / "test_set.csv", per_class=1)
    suite = root / "demo.yaml"
    suite.write_text("name: demo\nconditions:\n  none: true\n  av_offset: {levels: [200]}\n"
                     "  semantic_swap: true\n")
    sources = generate.sources_from_test_set(csv, root / "videos")
    generate.generate(suite, sources, root / "suite", seed=0, workers=2, progress=False)
    return manifest


def check_files(table: pd.DataFrame, skip: bool) -> pd.DataFrame:
    """Every stimulus file (``file``) must exist and be readable before the first trial;
    with ``skip`` the bad ones are left out (named on stderr)."""
    from .. import media
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


def demo_trials(table: pd.DataFrame, participant: str, *, task: str = "classify", seed: int = 0,
                repeat_fraction: float = 0.0, practice_n: int = 0,
                break_every: int = 60) -> tuple[pd.DataFrame, str]:
    """The demo suite's trials (every stimulus once, seeded per participant; see
    :func:`trial_list`) with a plan's columns (``position``, ``list``, ``break_before``: a
    break before every ``break_every``-th main trial); returns (trials, their SHA-256).
    For correspondence, one-modality stimuli are left out, as a plan leaves them out."""
    if task == "correspondence":
        from ..models.savc import ONE_MODALITY
        table = table[~table["manipulation"].astype(str).str.strip().isin(ONE_MODALITY)]
    trials = trial_list(table, participant, seed=seed, repeat_fraction=repeat_fraction,
                        practice_n=practice_n)
    trials["position"] = trials["trial"]
    trials["list"] = ""
    main_n = (trials["block"] == "main").cumsum()
    trials["break_before"] = (trials["block"] == "main") & (main_n > 1) & \
        ((main_n - 1) % int(break_every) == 0)
    order = "\n".join(f"{p},{sid}" for p, sid in zip(trials["position"],
                                                     trials["stimulus_id"]))
    return trials, hashlib.sha256(order.encode()).hexdigest()
