"""The human-vs-DNN test as plain Python: trial lists, responses, data rows.

Tasks: ``classify`` (which of the 16 actions; a 4x4 grid of labelled buttons, mouse or keys,
with confirmation) and ``correspondence`` (do sound and picture show the same action; two
keys). Rows follow the trials data contract (``participant, session, task, block, trial,
stimulus_id, label, manipulation, level, response, correct, rt``) plus timing columns, so
``compare`` can stack them with model predictions.

The headphone screen (Woods et al. 2017 antiphase, Milne et al. 2021 Huggins pitch) lives in
:mod:`.headphones`; ``headphone_trials``, ``headphone_audio``, ``headphone_answer`` and
``HEADPHONE_*`` here are its Woods test under the names earlier code imports.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..dataset.schema import TEST_CLASSES
from .player import TIMING_COLUMNS
from . import headphones as _headphones

TRIAL_COLUMNS = ["participant", "session", "task", "block", "trial", "stimulus_id", "label",
                 "manipulation", "level", "response", "correct", "rt", "rt_from_onset",
                 "onset", "frames_shown", "dropped_frames", "av_onset_asynchrony_ms",
                 "playback_s", "repeat", "audio_source", "error", "list", "position",
                 *TIMING_COLUMNS]
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
