"""Headphone screens as plain Python: stimuli, trial lists, scoring and the attempt rule.

Two 3-AFC tests, six trials each, both generated here (no sound files):

- **Woods** (antiphase): Woods, Siegel, Traer & McDermott (2017), Attention, Perception &
  Psychophysics 79:2064-2072. Three 1-s 200-Hz tones (0.5-s gaps), one 6 dB softer, one with
  the right channel in antiphase; "which tone is the softest?". Over headphones the -6 dB tone
  is; over loudspeakers the antiphase tone cancels and seems softest. Pass: 5 of 6, one attempt.
- **Huggins** (dichotic pitch): Milne, Bianco, Poole, Zhao, Oxenham, Billig & Chait (2021),
  Behavior Research Methods 53:1551-1562, and the authors' stimulus code
  (github.com/ChaitLabUCL/HeadphoneCheck_Test: ``generateStim_HugginsPitch/huggins_3AFC.m``,
  ``makeHPitch.m``; defaults of ``headphonesCheck.js``). Three 1-s intervals of Gaussian white
  noise with 1-s silent gaps: two diotic (the same noise in both ears), one (the target) with
  the right ear's noise inverted in phase (180 degrees) in the band 600 Hz +- 6 % (564-636 Hz).
  Over headphones the target carries a faint 600-Hz pitch; either ear alone, or the two mixed
  in the air, has none. "Which noise had the faint tone in it?" Pass: 6 of 6, at most 2
  attempts (a fresh set of six trials in the second).

``both`` (the default) runs Woods, then Huggins; a participant must pass both. Milne et al.
report that Huggins alone passes about 20 % of loudspeaker listeners and Huggins combined
with the antiphase test about 7 %; we found no order for the combination in the paper or their
code. Woods goes first (the screen this toolkit ran before, and the easier task), then Huggins.

Our choices where the sources leave one: the noise is generated in the frequency domain (the
band's rFFT bins times -1 in the right channel, as ``makeHPitch.m`` does with a full FFT) and
then gated with 10-ms raised-cosine ramps, the same in both ears (the authors' files have
none); each interval's noise is scaled to the RMS of the Woods -6 dB tone (0.106 of full scale,
-19.5 dBFS), 6 dB below the Woods reference tone because broadband noise sounds louder than a
200-Hz tone of the same RMS, with peaks (about 5 SD, 0.5) far below full scale. Target positions are balanced (each interval twice in six
trials) and seeded. Every Huggins stimulus is checked in the spectrum before it is returned
(:func:`check_huggins_audio`).

:class:`HeadphoneScreen` runs a configured screen (jsPsych style: ``next_trial()``, then
``record(response, rt)`` returns the trial's data row) so that scoring and the attempt rule are
testable without a window; :func:`read_headphone_config` reads the ``headphone_*`` keys of an
experiment config.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..dataset import schema
from ..dataset.schema import DatasetError

HEADPHONE_CHECKS = ("woods", "huggins", "both")
#: The tests each ``headphone_check`` value runs, in order.
HEADPHONE_TESTS = {"woods": ("woods",), "huggins": ("huggins",), "both": ("woods", "huggins")}
HEADPHONE_SAMPLE_RATE_HZ = 48_000
#: Columns of the ``headphonecheck`` data file, one row per trial.
HEADPHONE_COLUMNS = list(schema.HEADPHONE_CHECK_COLUMNS)

# -- Woods et al. (2017) ---------------------------------------------------------------------
WOODS_TONE_HZ = 200.0
WOODS_TONE_S = 1.0
WOODS_GAP_S = 0.5
WOODS_RAMP_S = 0.1
#: Peak amplitude of the reference tone (full scale 1).
WOODS_LEVEL = 0.3
WOODS_QUIET_DB = -6.0
WOODS_TRIALS = 6
WOODS_PASS = 5
WOODS_ATTEMPTS = 1

# -- Milne et al. (2021) ---------------------------------------------------------------------
HUGGINS_CENTRE_HZ = 600.0
#: Half-width of the phase-inverted band as a fraction of the centre: 600 Hz +- 6 %.
HUGGINS_HALF_WIDTH = 0.06
HUGGINS_INTERVAL_S = 1.0
HUGGINS_GAP_S = 1.0
HUGGINS_RAMP_S = 0.01
#: RMS of each noise interval (full scale 1): that of the Woods -6 dB tone.
HUGGINS_RMS = WOODS_LEVEL / np.sqrt(2) * 10 ** (WOODS_QUIET_DB / 20)
HUGGINS_TRIALS = 6
HUGGINS_PASS = 6
HUGGINS_ATTEMPTS = 2

TRIALS = {"woods": WOODS_TRIALS, "huggins": HUGGINS_TRIALS}
DEFAULT_PASS = {"woods": WOODS_PASS, "huggins": HUGGINS_PASS}
DEFAULT_ATTEMPTS = {"woods": WOODS_ATTEMPTS, "huggins": HUGGINS_ATTEMPTS}

#: What the participant is told before each test, asked on each trial, and told before a
#: second attempt.
INSTRUCTIONS = {
    "woods": "Please put on your headphones.\n\nYou will hear three tones. "
             "Say which one is the softest: 1, 2 or 3.",
    "huggins": "You will hear three noises. One of them has a faint tone hidden in it. "
               "Say which one: 1, 2 or 3.",
}
LISTEN = {"woods": "Listen: which of the three tones is the softest?",
          "huggins": "Listen: which of the three noises has a faint tone in it?"}
QUESTIONS = {"woods": "Which tone was the softest?  1, 2 or 3",
             "huggins": "Which noise had the faint tone in it?  1, 2 or 3"}
RETRY = ("That was not quite right. Please check that your headphones are on (left on the left "
         "ear), that you are somewhere quiet, and try again with new sounds.")
FAILED = "Please use headphones for this study. Thank you."


def _trial_rng(seed: int, salt: int, attempt: int) -> np.random.Generator:
    # attempt 1 keeps the stream the screen has always used
    return np.random.default_rng([int(seed), salt] if attempt == 1
                                 else [int(seed), salt, int(attempt)])


def raised_cosine_ramp(n_samples: int, ramp_samples: int) -> np.ndarray:
    """A gain of ``n_samples`` rising as sin^2 over ``ramp_samples`` and falling likewise,
    sampled at sample centres so that it is never exactly 0 (it can be divided out)."""
    gain = np.ones(n_samples)
    m = min(int(ramp_samples), n_samples // 2)
    if m:
        up = np.sin(np.pi / 2 * (np.arange(m) + 0.5) / m) ** 2
        gain[:m], gain[n_samples - m:] = up, up[::-1]
    return gain


# -- Woods -----------------------------------------------------------------------------------
def woods_trials(seed: int, n: int = WOODS_TRIALS, *, attempt: int = 1
                 ) -> list[tuple[str, str, str]]:
    """Tone orders: a permutation of ('reference', 'quiet', 'antiphase') per trial, each
    position of the quiet tone used equally often across the six trials."""
    rng = _trial_rng(seed, 71, attempt)
    orders = [("reference", "quiet", "antiphase"), ("reference", "antiphase", "quiet"),
              ("quiet", "reference", "antiphase"), ("quiet", "antiphase", "reference"),
              ("antiphase", "reference", "quiet"), ("antiphase", "quiet", "reference")]
    return [orders[i % 6] for i in rng.permutation(max(n, 6))[:n]]


def woods_audio(order, *, sample_rate_hz: int = HEADPHONE_SAMPLE_RATE_HZ,
                level: float = WOODS_LEVEL) -> np.ndarray:
    """Stereo audio (n, 2) of one Woods trial: the tones in ``order`` with gaps."""
    t = np.arange(int(WOODS_TONE_S * sample_rate_hz)) / sample_rate_hz
    ramp = np.minimum(1.0, np.minimum(t, t[::-1]) / WOODS_RAMP_S)
    tone = level * np.sin(2 * np.pi * WOODS_TONE_HZ * t) * ramp
    gap = np.zeros((int(WOODS_GAP_S * sample_rate_hz), 2))
    parts = []
    for kind in order:
        if kind == "reference":
            parts.append(np.stack([tone, tone], 1))
        elif kind == "quiet":
            q = tone * 10 ** (WOODS_QUIET_DB / 20)
            parts.append(np.stack([q, q], 1))
        elif kind == "antiphase":
            parts.append(np.stack([tone, -tone], 1))
        else:
            raise ValueError(f"unknown Woods tone '{kind}': expected reference, quiet or "
                             "antiphase")
        parts.append(gap)
    return np.concatenate(parts[:-1])


def woods_answer(order) -> str:
    """The correct key: the position (1-3) of the -6 dB tone."""
    return str(list(order).index("quiet") + 1)


# -- Huggins ---------------------------------------------------------------------------------
def huggins_band_hz(centre_hz: float = HUGGINS_CENTRE_HZ,
                    half_width: float = HUGGINS_HALF_WIDTH) -> tuple[float, float]:
    """The phase-inverted band (low, high) in Hz: 564-636 Hz by default."""
    return centre_hz * (1 - half_width), centre_hz * (1 + half_width)


def huggins_band_bins(n_samples: int, sample_rate_hz: int) -> np.ndarray:
    """Which rFFT bins of an ``n_samples`` interval lie in the band (edges included)."""
    low, high = huggins_band_hz()
    f = np.fft.rfftfreq(n_samples, 1 / sample_rate_hz)
    tol = 1e-9 * sample_rate_hz  # 600 * 0.94 is 563.99999...: keep the edge bins
    return (f >= low - tol) & (f <= high + tol)


def huggins_trials(seed: int, n: int = HUGGINS_TRIALS, *, attempt: int = 1) -> list[int]:
    """Target positions (1-3), one per trial: each position equally often (each twice in six
    trials; with ``n`` not a multiple of 3 the extra ones are distinct), in a seeded order."""
    rng = _trial_rng(seed, 89, attempt)
    extra = rng.choice(3, n % 3, replace=False) + 1
    positions = np.concatenate([np.tile([1, 2, 3], n // 3), extra])
    return [int(p) for p in rng.permutation(positions)]


def huggins_order(target_position: int) -> tuple[str, str, str]:
    """The intervals of a trial: 'huggins' at the target position, 'diotic' elsewhere."""
    _check_position(target_position)
    return tuple("huggins" if i == target_position else "diotic" for i in (1, 2, 3))


def huggins_answer(target_position: int) -> str:
    """The correct key: the position (1-3) of the interval with the phase-inverted band."""
    _check_position(target_position)
    return str(int(target_position))


def _check_position(target_position) -> None:
    if target_position not in (1, 2, 3) or isinstance(target_position, bool):
        raise ValueError(f"target position must be 1, 2 or 3, got {target_position!r}")


def huggins_audio(target_position: int, *, sample_rate_hz: int = HEADPHONE_SAMPLE_RATE_HZ,
                  seed: int = 0, rms: float = HUGGINS_RMS) -> np.ndarray:
    """Stereo audio (n, 2) of one Huggins trial: three noise intervals with silent gaps, the
    one at ``target_position`` (1-3) with the band 564-636 Hz inverted in the right channel.

    Each interval is fresh Gaussian noise from ``seed``, scaled to ``rms`` (full scale 1) in
    both channels (inverting a band keeps the magnitude spectrum, so the right channel's RMS
    is the left's: neither ear alone tells the target), then gated with 10-ms raised-cosine
    ramps, the same in both ears. The result is checked by :func:`check_huggins_audio`.
    """
    _check_position(target_position)
    n = int(round(HUGGINS_INTERVAL_S * sample_rate_hz))
    band = huggins_band_bins(n, sample_rate_hz)
    ramp = raised_cosine_ramp(n, round(HUGGINS_RAMP_S * sample_rate_hz))
    rng = np.random.default_rng([int(seed), 97])
    gap = np.zeros((int(round(HUGGINS_GAP_S * sample_rate_hz)), 2))
    parts = []
    for position in (1, 2, 3):
        left = rng.standard_normal(n)
        left *= rms / np.sqrt(np.mean(left ** 2))
        right = left
        if position == target_position:
            spectrum = np.fft.rfft(left)
            spectrum[band] *= -1
            right = np.fft.irfft(spectrum, n)
        parts += [np.stack([left * ramp, right * ramp], 1), gap]
    audio = np.concatenate(parts[:-1])
    check_huggins_audio(audio, target_position, sample_rate_hz=sample_rate_hz)
    return audio


def check_huggins_audio(audio: np.ndarray, target_position: int, *,
                        sample_rate_hz: int = HEADPHONE_SAMPLE_RATE_HZ,
                        tolerance: float = 1e-9) -> None:
    """Raise ValueError unless ``audio`` is a Huggins trial with its target at
    ``target_position``: silent gaps; below full scale; with the (shared) ramps divided out,
    the diotic intervals identical in both channels in every rFFT bin, and the target's
    channels identical outside the band and opposite (L = -R) inside it.
    ``tolerance`` is relative to the interval's RMS bin magnitude."""
    _check_position(target_position)
    n = int(round(HUGGINS_INTERVAL_S * sample_rate_hz))
    n_gap = int(round(HUGGINS_GAP_S * sample_rate_hz))
    audio = np.asarray(audio, dtype=float)
    if audio.shape != (3 * n + 2 * n_gap, 2):
        raise ValueError(f"a Huggins trial at {sample_rate_hz} Hz has shape "
                         f"{(3 * n + 2 * n_gap, 2)}, got {audio.shape}")
    peak = float(np.max(np.abs(audio)))
    if peak >= 1.0:
        raise ValueError(f"Huggins trial reaches {peak:.3f} of full scale: it would clip")
    band = huggins_band_bins(n, sample_rate_hz)
    band_text = "{:g}-{:g} Hz".format(*huggins_band_hz())
    ramp = raised_cosine_ramp(n, round(HUGGINS_RAMP_S * sample_rate_hz))
    for k, position in enumerate((1, 2, 3)):
        start = k * (n + n_gap)
        if k and np.any(audio[start - n_gap:start]):
            raise ValueError(f"the gap before interval {position} is not silent")
        left, right = (np.fft.rfft(audio[start:start + n, c] / ramp) for c in (0, 1))
        scale = np.sqrt(np.mean(np.abs(left) ** 2))
        same = np.abs(left - right) <= tolerance * scale
        opposite = np.abs(left + right) <= tolerance * scale
        if position != target_position:
            if not same.all():
                raise ValueError(f"interval {position} should be diotic but its channels "
                                 f"differ in {int((~same).sum())} frequency bins")
            continue
        if not same[~band].all():
            raise ValueError(f"interval {position} (the target) differs between channels "
                             f"outside {band_text}")
        if not opposite[band].all() or np.all(np.abs(left[band]) <= tolerance * scale):
            raise ValueError(f"interval {position} (the target) is not inverted between "
                             f"channels inside {band_text}")


# -- configuration ---------------------------------------------------------------------------
@dataclass(frozen=True)
class HeadphoneConfig:
    """Which tests a screen runs, in order, and each one's pass mark and attempts."""

    tests: tuple[str, ...] = HEADPHONE_TESTS["both"]
    passes: dict = field(default_factory=lambda: dict(DEFAULT_PASS))
    attempts: dict = field(default_factory=lambda: dict(DEFAULT_ATTEMPTS))

    @property
    def enabled(self) -> bool:
        return bool(self.tests)


_SKIP = {"false", "no", "off", "none", "null", ""}
_SEE = "see experiments/human_vs_dnn.yaml"


def read_headphone_config(cfg: dict | None, *, path=None) -> HeadphoneConfig:
    """The headphone screen of an experiment config (``headphone_*`` keys; the rest ignored).

    ``headphone_check``: woods | huggins | both (default) | false or none (no screen); ``true``
    means both (configs from before Huggins). ``headphone_pass`` and ``headphone_attempts``:
    a whole number for every test, or a mapping ``{woods: 5, huggins: 6}`` (missing tests keep
    their defaults: pass Woods 5, Huggins 6 of 6 trials; attempts Woods 1, Huggins 2).
    A bad value raises :class:`DatasetError` naming the key and what it accepts.
    """
    cfg = cfg or {}
    value = cfg.get("headphone_check", "both")
    if value is True:
        value = "both"
    elif value is False or value is None:
        value = "none"
    if not isinstance(value, str) or \
            (value.strip().lower() not in HEADPHONE_CHECKS and value.strip().lower() not in _SKIP):
        raise DatasetError(f"'headphone_check' must be one of {', '.join(HEADPHONE_CHECKS)} "
                           f"or false (no screen), got {value!r}", path=path,
                           column="headphone_check", fix=f"e.g. headphone_check: both ({_SEE})")
    value = value.strip().lower()
    tests = () if value in _SKIP else HEADPHONE_TESTS[value]
    passes = _per_test(cfg, "headphone_pass", DEFAULT_PASS, path=path,
                       limit=lambda test: TRIALS[test])
    attempts = _per_test(cfg, "headphone_attempts", DEFAULT_ATTEMPTS, path=path)
    return HeadphoneConfig(tests=tests, passes=passes, attempts=attempts)


def _per_test(cfg: dict, key: str, defaults: dict, *, path, limit=None) -> dict:
    value = cfg.get(key)
    out = dict(defaults)
    if value is None:
        return out
    names = tuple(defaults)
    if isinstance(value, dict):
        unknown = [k for k in value if k not in names]
        if unknown:
            raise DatasetError(f"unknown test '{unknown[0]}' in '{key}'", path=path,
                               column=f"{key}.{unknown[0]}",
                               fix=f"tests are {' and '.join(names)} ({_SEE})")
        items = {k: (f"{key}.{k}", v) for k, v in value.items()}
    else:
        items = {k: (key, value) for k in names}
    for test, (name, v) in items.items():
        top = limit(test) if limit else None
        ok = isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) and \
            v >= 1 and (top is None or v <= top)
        if not ok:
            expected = f"a whole number from 1 to {top}" if top else "a whole number >= 1"
            raise DatasetError(f"'{name}' must be {expected}, got {v!r}", path=path,
                               column=name, fix=f"e.g. {key}: {{woods: {defaults['woods']}, "
                                                f"huggins: {defaults['huggins']}}} ({_SEE})")
        out[test] = int(v)
    return out


# -- the screen ------------------------------------------------------------------------------
@dataclass(frozen=True)
class HeadphoneTrial:
    """One trial of a screen: what is played, and the correct answer."""

    test: str
    attempt: int
    trial: int
    order: tuple[str, str, str]
    stimulus_seed: int | None = None  # the Huggins noise; None for Woods

    @property
    def target(self) -> int:
        """The position (1-3) of the interval to pick."""
        return int(self.answer)

    @property
    def answer(self) -> str:
        return woods_answer(self.order) if self.test == "woods" else \
            huggins_answer(self.order.index("huggins") + 1)

    def audio(self, sample_rate_hz: int = HEADPHONE_SAMPLE_RATE_HZ) -> np.ndarray:
        if self.test == "woods":
            return woods_audio(self.order, sample_rate_hz=sample_rate_hz)
        return huggins_audio(self.target, sample_rate_hz=sample_rate_hz,
                             seed=self.stimulus_seed)


class HeadphoneScreen:
    """A configured screen as a state machine, without a window.

    ``next_trial()`` gives the trial to run (None once the screen has passed or failed);
    ``record(response, rt)`` scores it and returns its data row (:data:`HEADPHONE_COLUMNS`
    without participant and session). A test's attempt is its six trials; with at least the
    pass mark correct the test is passed and the next test starts, otherwise a fresh attempt
    starts while attempts are left, else the screen has failed (later tests are not run).
    ``status`` is 'running', 'passed' or 'failed'; ``scores`` holds, per test, the number
    correct in each attempt. A screen with no tests has passed.
    """

    def __init__(self, config: HeadphoneConfig | None = None, *, seed: int = 0):
        self.config = config or HeadphoneConfig()
        self.seed = int(seed)
        self.scores: dict[str, list[int]] = {t: [] for t in self.config.tests}
        self.status = "running" if self.config.tests else "passed"
        self._test_index, self._attempt, self._trials, self._position = 0, 0, [], 0
        if self.config.tests:
            self._start_attempt()

    @property
    def test(self) -> str | None:
        return self.config.tests[self._test_index] if self.status == "running" else None

    def _start_attempt(self) -> None:
        test = self.config.tests[self._test_index]
        self._attempt += 1
        self.scores[test].append(0)
        self._position = 0
        if test == "woods":
            self._trials = [HeadphoneTrial("woods", self._attempt, i + 1, order)
                            for i, order in enumerate(woods_trials(self.seed, TRIALS[test],
                                                                   attempt=self._attempt))]
        else:
            self._trials = [
                HeadphoneTrial("huggins", self._attempt, i + 1, huggins_order(target),
                               _stimulus_seed(self.seed, self._attempt, i + 1))
                for i, target in enumerate(huggins_trials(self.seed, TRIALS[test],
                                                          attempt=self._attempt))]

    def next_trial(self) -> HeadphoneTrial | None:
        if self.status != "running":
            return None
        return self._trials[self._position]

    def record(self, response, rt: float | None = None) -> dict:
        trial = self.next_trial()
        if trial is None:
            raise RuntimeError(f"the headphone screen has {self.status}: no trial to record")
        response = "" if response is None else str(response)
        correct = response == trial.answer
        test = trial.test
        self.scores[test][-1] += correct
        row = {"test": test, "attempt": trial.attempt, "trial": trial.trial,
               "order": "-".join(trial.order), "target": trial.target, "response": response,
               "correct": correct, "rt": "" if rt is None else round(float(rt), 4),
               "stimulus_seed": "" if trial.stimulus_seed is None else trial.stimulus_seed}
        self._position += 1
        if self._position == len(self._trials):
            if self.scores[test][-1] >= self.config.passes[test]:
                self._test_index += 1
                self._attempt = 0
                if self._test_index == len(self.config.tests):
                    self.status = "passed"
                else:
                    self._start_attempt()
            elif self._attempt < self.config.attempts[test]:
                self._start_attempt()
            else:
                self.status = "failed"
        return row

    def replay(self, rows, *, path=None) -> None:
        """Record the rows already in a data file (a resumed session), checking that each is
        the trial the screen expects next; attempts already used stay used."""
        for i, row in enumerate(rows):
            trial = self.next_trial()
            got = (str(row.get("test")), str(row.get("attempt")), str(row.get("trial")))
            if trial is None or got != (trial.test, str(trial.attempt), str(trial.trial)):
                expected = "no more trials" if trial is None else \
                    f"{trial.test} attempt {trial.attempt} trial {trial.trial}"
                raise DatasetError(
                    f"headphone check row is {got[0]} attempt {got[1]} trial {got[2]}, but "
                    f"the configured screen expects {expected}", path=path, row=i + 1,
                    fix="resume with the config the session started with, or use another "
                        "--data-dir")
            rt = row.get("rt")
            self.record(row.get("response"), float(rt) if rt not in (None, "") else None)


def _stimulus_seed(seed: int, attempt: int, trial: int) -> int:
    """The noise seed of one Huggins trial (recorded in the data, so the sound can be
    regenerated exactly)."""
    return int(np.random.SeedSequence([int(seed), 101, attempt, trial]).generate_state(1)[0])
