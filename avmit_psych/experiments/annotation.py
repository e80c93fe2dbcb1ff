"""The AVMIT annotation task as plain Python: trials, blocks and their data rows.

The paper's procedure (facts.md "Annotation screen", "Ratings"): the label at the top, the
video bottom-left, the bonus counter bottom-right; after the video the rater presses 1 (event
absent), 2 (present, not the most prominent), 3 (present and most prominent) or space to replay
(any number of times). A key pressed while the video plays brings up a full-screen warning and
is not taken as the answer. A rating that matches a ground-truth video's rating adds the bonus
to the counter, which carries over across sessions.

A trial talks to the screen only through an ``io`` object (``AnnotationIO`` protocol below):
the PsychoPy presenter implements it with a window, the tests with a fake. So the logic and the
data rows are tested without a display (jsPsych's plugin model).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from .assignment import Video
from .player import PLAYBACK_COLUMNS, TIMING_COLUMNS

RATING_KEYS = ("1", "2", "3")
REPLAY_KEY = "space"
QUIT_KEY = "escape"
#: The raw-ratings columns of the data contract, then our task's additions.
ROW_COLUMNS = ["filename", "AVMIT_label", "MIT_label", "video_location", "rating",
               "participant", "session", "trial", "timestamp", "rt", "replays", "ground_truth",
               "block", "early_presses", "bonus_match", "bonus_pence", "onset",
               "frames_shown", "dropped_frames", "av_onset_asynchrony_ms", "playback_s",
               "expected_rating", "correct", "error", *TIMING_COLUMNS]


class Aborted(Exception):
    """The participant pressed Escape: the session saves and ends cleanly."""


class AnnotationIO(Protocol):
    def play(self, video: Video, *, label: str, bonus_pence: int) -> dict:
        """Play the video with the label and counter shown; return the playback report row
        plus ``early_keys``: keys pressed while it played, and ``ended_at`` (clock time)."""

    def show_early_warning(self) -> None: ...

    def wait_key(self, keys) -> tuple[str, float]:
        """Wait for one of ``keys`` after the video; (key, clock time)."""

    def show_feedback(self, text: str) -> None: ...

    def show_message(self, text: str, *, wait: bool = True) -> None: ...


@dataclass
class BonusCounter:
    pence_per_match: int = 10
    matches: int = 0

    @property
    def pence(self) -> int:
        return self.matches * self.pence_per_match

    def text(self) -> str:
        return f"Bonus: £{self.pence / 100:.2f}"


@dataclass
class AnnotationTrial:
    """One video rated; returns the trial's data row."""

    video: Video
    block: str
    expected_rating: int | None = None   # training and screening: the author's rating
    reasoning: str = ""                  # training: shown after the answer

    def run(self, io: AnnotationIO, *, participant: str, session: int, trial: int,
            bonus: BonusCounter) -> dict:
        replays = early = 0
        while True:
            report = dict(io.play(self.video, label=self.video.label, bonus_pence=bonus.pence))
            early_keys = report.pop("early_keys", []) or []
            ended_at = report.pop("ended_at")
            if any(k == QUIT_KEY for k in early_keys):
                raise Aborted
            if early_keys:
                early += len(early_keys)
                io.show_early_warning()
            key, t = io.wait_key(RATING_KEYS + (REPLAY_KEY, QUIT_KEY))
            if key == QUIT_KEY:
                raise Aborted
            if key == REPLAY_KEY:
                replays += 1
                continue
            break
        rating = int(key)
        gt = self.video.ground_truth
        match = self.block == "main" and gt is not None and int(gt) == rating
        if match:
            bonus.matches += 1
        row = {
            "filename": self.video.filename, "AVMIT_label": self.video.label,
            "MIT_label": self.video.mit_label, "video_location": self.video.video_location,
            "rating": rating, "participant": participant, "session": session, "trial": trial,
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"), "rt": round(t - ended_at, 4),
            "replays": replays, "ground_truth": "" if gt is None else int(gt),
            "block": self.block, "early_presses": early, "bonus_match": match,
            "bonus_pence": bonus.pence, **{k: report.get(k, "") for k in PLAYBACK_COLUMNS},
            "expected_rating": "" if self.expected_rating is None else self.expected_rating,
            "correct": "" if self.expected_rating is None else rating == self.expected_rating,
            "error": "",
        }
        if self.block == "training" and self.expected_rating is not None:
            io.show_feedback(f"You rated {rating}; the expected rating is "
                             f"{self.expected_rating}. {self.reasoning}".strip())
        return row


@dataclass
class ScreeningResult:
    n_correct: int
    n_trials: int
    pass_mark: int

    @property
    def passed(self) -> bool:
        return self.n_correct >= self.pass_mark


def screening_result(rows: list[dict], pass_mark: int = 38) -> ScreeningResult:
    """Screening: one video per class rated; pass with ``pass_mark`` of them (paper: 38/41)
    matching the author's ratings."""
    n_correct = sum(1 for r in rows if str(r.get("correct")) == "True")
    return ScreeningResult(n_correct, len(rows), pass_mark)


# --------------------------------------------------------------------------------------------
# A simulated rater (tests, demo): decides what to press and when
# --------------------------------------------------------------------------------------------
@dataclass
class SimulatedRater:
    """A rater with an accuracy, an RT distribution and habits (early presses, replays).

    ``plan(true_rating)`` gives the plan for one trial: keys pressed during playback, then
    replays, then the rating, with delays in seconds after the video ends.

    ``accuracy`` is the probability that the rating equals ``true_rating``: a wrong rating is
    one of the other two, never by chance the true one. Without a true rating (``None``) the
    rater presses 1, 2 or 3 with equal probability.
    """

    seed: int
    accuracy: float = 0.85
    rt_median_s: float = 0.6
    rt_sigma: float = 0.3
    early_press_rate: float = 0.15
    replay_rate: float = 0.1
    rng: np.random.Generator = field(init=False)

    def __post_init__(self):
        if not 0 <= self.accuracy <= 1:
            raise ValueError(f"accuracy is the probability of giving the true rating: "
                             f"expected a value in [0, 1], got {self.accuracy}")
        self.rng = np.random.default_rng([int(self.seed), 59])

    def rating_for(self, true_rating: int | None) -> int:
        if true_rating is None:
            return int(self.rng.integers(1, 4))
        if self.rng.random() < self.accuracy:
            return int(true_rating)
        others = [int(k) for k in RATING_KEYS if int(k) != int(true_rating)]
        return others[int(self.rng.integers(len(others)))]

    def rt(self) -> float:
        return float(np.clip(self.rt_median_s * np.exp(self.rng.normal(0, self.rt_sigma)),
                             0.15, 5.0))

    def plan(self, true_rating: int | None) -> dict:
        """{'early': [key...], 'replays': n, 'rating': k, 'rts': [s...]}"""
        early = [str(self.rng.integers(1, 4))] if self.rng.random() < self.early_press_rate \
            else []
        replays = 1 if self.rng.random() < self.replay_rate else 0
        return {"early": early, "replays": replays, "rating": self.rating_for(true_rating),
                "rts": [self.rt() for _ in range(replays + 1)]}
