"""A cue-integrating simulated observer: auditory and visual evidence combined as independent cues.

For demos, pilots and tests, in place of one psychometric curve per condition
(:class:`~avmit_psych.experiments.human_vs_dnn.PsychometricObserver`), which ignores the clean
modality of a degraded stimulus. Here every stimulus gives the observer *auditory* evidence of
sensitivity ``d'_A`` and *visual* evidence of sensitivity ``d'_V`` (equal-variance Gaussian
signal detection, each d' in units of the noise SD); the manipulations change them, and the
answer follows from the combined evidence. Nothing here is fitted to people: the parameters are
set so that the default suite spans the model's range (see "Parameters"). The model is a
convenience for seeing analyses work on data of the right shape, not a claim about people.

Sensitivity per modality (levels in the suite's units)
------------------------------------------------------
::

    d'_A(snr_db)   = d'_A,max * Phi((snr_db - audio_snr50_db) / audio_snr_slope_db)
    d'_V(noise_sd) = d'_V,max * Phi((visual_noise_sd50 - noise_sd) / visual_noise_slope_sd)
                              / Phi(visual_noise_sd50 / visual_noise_slope_sd)

``Phi`` is the standard normal CDF; auditory noise is the SNR in dB, visual noise the pixel SD
on the 0-255 scale (normalised so that SD 0 is the clean picture). ``audio_only`` gives
``d'_V = 0`` (a grey picture carries no evidence), ``visual_only`` ``d'_A = 0`` (silence);
``none``, ``av_offset`` and ``semantic_swap`` leave both at their maxima.

Integration (Ernst & Banks 2002)
--------------------------------
Within the temporal binding window the observer combines the cues as a maximum-likelihood
observer combines independent Gaussian cues: each cue is weighted by its reliability, so the
combined sensitivity is ``d'_AV = sqrt(d'_A**2 + d'_V**2)`` (Ernst & Banks 2002, Nature
415:429-433: the combined variance is ``1 / (1/sigma_A**2 + 1/sigma_V**2)``; with d' = signal /
sigma this is the sum of squared d'). For class ``c`` the combined decision variable is
``(d'_A * A_c + d'_V * V_c) / d'_AV`` with ``A_c ~ N(d'_A [c = audio class], 1)`` and
``V_c ~ N(d'_V [c = visual class], 1)``, so its mean is::

    mu_c = (d'_A**2 [c = audio class] + d'_V**2 [c = visual class]) / d'_AV

which is ``d'_AV`` for the true class of a congruent stimulus.

Temporal binding window. ``av_offset_ms`` > 0 means the audio lags the video. Inside
``[-binding_lead_ms, +binding_lag_ms]`` (default ``[-100, +200]`` ms) the cues are bound; beyond
an edge the probability of binding falls as a half-Gaussian of the distance past it::

    p_bind = exp(-0.5 * (distance_ms / binding_falloff_ms)**2)    (1 inside the window)

and an unbound observer uses the single more reliable cue (``d' = max(d'_A, d'_V)``, the
picture on a tie), so accuracy falls from the clean-AV level toward the better unimodal
level. The window is asymmetric, wider for audio lagging, as measured windows are: fusion of
McGurk stimuli from about -30 ms (audio leading) to +170 ms (audio lagging) (van Wassenhove,
Grant & Poeppel 2007, Neuropsychologia 45:598-607); desynchrony of a hammer hitting a peg
noticed only beyond about 75 ms audio lead and 188 ms audio lag (Dixon & Spitz 1980,
Perception 9:719-721, as reviewed by Vroomen & Keetels 2010, Attention, Perception &
Psychophysics 72:871-884, who describe such a wide window of temporal integration as one of
the ways the brain deals with intersensory lags). Windows differ between people and are wider
and more symmetric for speech than for non-speech events (Stevenson & Wallace 2013,
Experimental Brain Research 227:249-261), hence the per-person draws below. Gating
integration by binding follows the causal-inference idea that cues are combined only when
they seem to share a cause (Koerding et al. 2007, PLoS ONE 2:e943), here simplified to
all-or-none binding with a probability.

Semantic swap. The sound comes from a *donor* video of another class (the manifest's
``level``, else the first folder of ``audio_source``; if neither names a test class the donor
is drawn at random from the other 15 classes). Audio evidence points at the donor, visual
evidence at the picture's class, and the same ML combination gives the picture's class mean
``d'_V**2 / d'_AV`` and the donor's ``d'_A**2 / d'_AV``: the answer follows the more reliable
cue, in proportion to its reliability. The key is the manifest label, the picture's class
(:func:`~avmit_psych.experiments.human_vs_dnn.correct_response`), so swap accuracy is the
probability of answering with the picture's class (0.55 with the group means, against 0.24
for the donor's class).

Classification (16-AFC; Green & Swets 1966; Macmillan & Creelman 2005, ch. 7)
-----------------------------------------------------------------------------
An observer picks the largest of 16 decision variables. The probability that an alternative
with mean ``mu_t`` beats one rival with mean ``mu_r`` and ``m - 2`` others with mean 0::

    P(mu_t, mu_r, m) = integral phi(x - mu_t) Phi(x - mu_r) Phi(x)**(m - 2) dx

so with ``mu_r = 0`` it is the standard ``Pc(d', m) = integral phi(x - d') Phi(x)**(m-1) dx``
(:func:`pc_mafc`; inverse :func:`d_prime_mafc`). Integrals use the trapezoidal rule on
``x = mu_t + t``, ``t`` in [-12, 12] in steps of 0.1, which converges geometrically for such
smooth, Gaussian-weighted integrands (Trefethen & Weideman 2014, SIAM Review 56:385-458) and
agrees with ``scipy.integrate.quad`` to 1e-15. Tested against ``Pc(d', 2) = Phi(d'/sqrt 2)``
(0.7602 at d' = 1, as tabulated by Hacker & Ratcliff 1979, Perception & Psychophysics
26:168-170, and Macmillan & Creelman 2005), ``Pc(0, m) = 1/m``, ``scipy.integrate.quad`` and
Monte Carlo for m = 4 and 16 (tests/test_cue_integration.py).

With lapse rate ``lambda`` (a random guess), an answer is the picture's class with probability
exactly ``(1 - lambda) P_label + lambda / 16``, where ``P_label`` mixes bound and unbound::

    P_label = p_bind P(mu_label | bound) + (1 - p_bind) P(mu_label | single cue)

and the donor (swaps) with the corresponding ``P_donor``. The answer is drawn from these
probabilities; any other answer is, with probability ``confusable_share``, one of the class's
:data:`~avmit_psych.experiments.human_vs_dnn.CONFUSABLE_CLASSES` (the donor excluded), else one
of the remaining classes, never the right one by accident (as ``PsychometricObserver`` does).

Correspondence (same / different)
---------------------------------
An ideal observer of the same evidence: it draws ``A_c`` and ``V_c`` for the 16 classes as
above (audio class = donor for swaps, else the label) and compares "the sound and the picture
show the same class" (any of 16, equally likely) with "they show different classes" (any of
the 240 ordered pairs). With ``p_A = softmax(d'_A A)`` and ``p_V = softmax(d'_V V)`` (the
posteriors over classes from each cue) and ``s = sum_c p_A(c) p_V(c)``, the likelihood ratio
is ``15 s / (1 - s)``; the answer is "same" when its log exceeds the person's
``correspondence_criterion`` (0 = unbiased) plus trial-to-trial criterion noise (normal, SD
:data:`CRITERION_NOISE_SD` = 1 in log-LR units; on criterion noise see Benjamin, Diaz & Wee
2009, Psychological Review 116:84-115), so that without evidence the answer is "same"
with probability ``Phi(-criterion)`` rather than always the same key. It is thus at chance
(0.5 for an unbiased person) when either cue is absent (``audio_only``, ``visual_only``:
``s = 1/16`` exactly), falls with noise in either modality, and swaps are called "different"
the more often the more reliable both cues are.
The offset of the sound does not enter (comparing two identities needs no binding). Its
accuracy has no closed form: :func:`correspondence_p_same` estimates it by simulation.

Parameters (:class:`CuePopulation`, one draw per person by :func:`draw_observers`)
----------------------------------------------------------------------------------
Normal across people (mean, SD) unless said otherwise; set, not measured:

- ``audio_d_prime_max`` (2.58, 0.3), ``visual_d_prime_max`` (3.05, 0.3): at lapse 0.03 the
  means give audio-only accuracy 0.75 and visual-only 0.85 (``0.97 Pc(d', 16) + 0.03/16``)
  and clean AV 0.95 (a group's averages come out a little lower, about 0.73 / 0.85 / 0.94,
  as accuracy is concave in d');
- ``audio_snr50_db`` (-8, 2) dB, ``audio_snr_slope_db`` (4, 0.6): d'_A is half its maximum
  at -8 dB SNR and 0.1 % of it at -20 dB, the default suite's worst level;
- ``visual_noise_sd50`` (64, 8), ``visual_noise_slope_sd`` (16, 2.5) pixel SD: d'_V is
  essentially 0 at 128 SD;
- ``binding_lead_ms`` (100, 20), ``binding_lag_ms`` (200, 40), ``binding_falloff_ms`` 25;
- ``correspondence_criterion`` (0, 0.2) in log likelihood ratio;
- ``lapse`` uniform in [0.01, 0.05]; ``rt_median_s`` uniform in [0.7, 1.2] s, RTs log-normal
  (SD 0.25) around ``rt_median_s (1 + 0.8 (1 - P_label))``, as ``PsychometricObserver``'s;
  ``confusable_share`` 0.8.

Correspondence with the group means: 0.87 correct on congruent stimuli, 0.87 of swaps called
"different", 0.5 on unimodal stimuli, 0.59 at -10 dB SNR, 0.69 at 64 pixel SD.

These levels suit ``stimuli/suites/avmit_test_960.yaml``. For a suite whose SNRs run from 30
to 0 dB (``demo_small.yaml``) pass ``CuePopulation(audio_snr50_db=(13.0, 2.5))`` so that its
levels span the curve (at 0 dB d'_A is then 0.1 % of its maximum).

Randomness: identical answers from the class and the vectorised simulation
---------------------------------------------------------------------------
Every random number is a function of (the observer's ``seed``, the trial's position in that
observer's sequence, the draw): a SplitMix64 hash (Steele, Lea & Flood 2014, OOPSLA) mapped to
(0, 1), normal deviates by the inverse normal CDF. So :meth:`CueIntegrationObserver.respond`
called on stimuli in a given order and :func:`simulate_trials` given the same stimuli in that
order give the same answers and RTs, bit for bit, and the same seed gives the same answers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import numpy as np
import pandas as pd
from scipy import optimize, special

from ..dataset.schema import DatasetError, TEST_CLASSES
from .human_vs_dnn import CONFUSABLE_CLASSES, correct_response

N_CLASSES = len(TEST_CLASSES)
#: SD of the trial-to-trial noise of the same/different criterion, in log likelihood ratio.
CRITERION_NOISE_SD = 1.0
#: Manipulations the observer has a model for; anything else is an error, not a guess.
MODELLED_MANIPULATIONS = ("none", "audio_noise", "visual_noise", "av_offset", "semantic_swap",
                          "audio_only", "visual_only")

# ---------------------------------------------------------------------------------------------
# m-alternative forced choice
# ---------------------------------------------------------------------------------------------
_STEP = 0.1
_T = np.arange(-120, 121) * _STEP  # t in [-12, 12]: the integrand is below 1e-31 beyond
_W = _STEP * np.exp(-0.5 * _T ** 2) / math.sqrt(2.0 * math.pi)


def mafc_choice_probability(mu_target, mu_rival, n_alternatives: int) -> np.ndarray:
    """P(the target alternative's value is the largest) among ``n_alternatives`` independent
    unit-variance Gaussians: the target with mean ``mu_target``, one rival with mean
    ``mu_rival`` and ``n_alternatives - 2`` others with mean 0 (all means in d' units)::

        integral phi(x - mu_target) Phi(x - mu_rival) Phi(x)**(n_alternatives - 2) dx

    Arrays broadcast; ``mu_rival = 0`` gives :func:`pc_mafc`. Trapezoidal rule (see the
    module docstring); tested against ``scipy.integrate.quad``.
    """
    m = int(n_alternatives)
    if m < 2:
        raise ValueError(f"a forced choice needs at least 2 alternatives, got {n_alternatives}")
    mu_t, mu_r = np.broadcast_arrays(np.asarray(mu_target, float), np.asarray(mu_rival, float))
    shape = mu_t.shape
    mu_t, mu_r = mu_t.reshape(-1, 1), mu_r.reshape(-1, 1)
    x = mu_t + _T
    integrand = special.ndtr(x - mu_r) * special.ndtr(x) ** (m - 2)
    return np.sum(integrand * _W, axis=1).reshape(shape)


def pc_mafc(d_prime, n_alternatives: int) -> np.ndarray:
    """Proportion correct of an unbiased observer in an m-AFC task with sensitivity ``d_prime``:
    ``integral phi(x - d') Phi(x)**(m - 1) dx`` (Green & Swets 1966; Macmillan & Creelman
    2005, ch. 7; Hacker & Ratcliff 1979 tabulate it).

    Examples
    --------
    >>> round(float(pc_mafc(1.0, 2)), 4)   # Phi(1 / sqrt(2))
    0.7602
    """
    return mafc_choice_probability(d_prime, 0.0, n_alternatives)


def d_prime_mafc(pc, n_alternatives: int) -> np.ndarray:
    """The d' at which :func:`pc_mafc` equals ``pc`` (root finding; below-chance ``pc`` gives a
    negative d'). ``pc`` must lie strictly between 0 and 1."""
    pc_arr = np.asarray(pc, float)
    if np.any((pc_arr <= 0) | (pc_arr >= 1) | np.isnan(pc_arr)):
        raise ValueError(f"a proportion correct strictly between 0 and 1 has a finite d'; "
                         f"got {pc}")
    out = np.array([optimize.brentq(lambda d: float(pc_mafc(d, n_alternatives)) - p,
                                    -15.0, 40.0, xtol=1e-12) for p in pc_arr.ravel()])
    return out.reshape(pc_arr.shape)


# ---------------------------------------------------------------------------------------------
# Sensitivity per modality, binding window
# ---------------------------------------------------------------------------------------------
def audio_d_prime(snr_db, d_prime_max, snr50_db=-8.0, slope_db=4.0) -> np.ndarray:
    """Auditory sensitivity at ``snr_db`` (dB SNR): ``d'_max Phi((snr - snr50) / slope)``."""
    return np.asarray(d_prime_max, float) * special.ndtr(
        (np.asarray(snr_db, float) - snr50_db) / slope_db)


def visual_d_prime(noise_sd, d_prime_max, noise_sd50=64.0, slope_sd=16.0) -> np.ndarray:
    """Visual sensitivity at pixel-noise SD ``noise_sd`` (0-255 scale):
    ``d'_max Phi((sd50 - sd) / slope) / Phi(sd50 / slope)`` (``d'_max`` at SD 0)."""
    return (np.asarray(d_prime_max, float)
            * special.ndtr((noise_sd50 - np.asarray(noise_sd, float)) / slope_sd)
            / special.ndtr(np.asarray(noise_sd50, float) / slope_sd))


def binding_probability(av_offset_ms, binding_lead_ms=100.0, binding_lag_ms=200.0,
                        binding_falloff_ms=25.0) -> np.ndarray:
    """P(auditory and visual evidence are bound) at ``av_offset_ms`` (+ = audio lags): 1 in
    ``[-binding_lead_ms, binding_lag_ms]``, a half-Gaussian of SD ``binding_falloff_ms``
    beyond (a step when the fall-off is 0)."""
    off = np.asarray(av_offset_ms, float)
    past = np.maximum(-np.asarray(binding_lead_ms, float) - off, 0.0) + \
        np.maximum(off - np.asarray(binding_lag_ms, float), 0.0)
    falloff = np.asarray(binding_falloff_ms, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        smooth = np.exp(-0.5 * (past / falloff) ** 2)
    return np.where(falloff > 0, smooth, (past == 0).astype(float))


def combined_means(d_prime_audio, d_prime_visual, swap):
    """Means (label, donor) of the 16-AFC decision variables of the picture's class and of the
    sound's donor class, bound (ML combination) and unbound (the more reliable cue alone):
    ``(label_bound, donor_bound, label_single, donor_single)``. For a congruent stimulus the
    "donor" is just one of the other classes, mean 0."""
    d_a, d_v, swap = np.broadcast_arrays(np.asarray(d_prime_audio, float),
                                         np.asarray(d_prime_visual, float),
                                         np.asarray(swap, bool))
    d_av = np.hypot(d_a, d_v)
    with np.errstate(divide="ignore", invalid="ignore"):
        label_swap = np.where(d_av > 0, d_v ** 2 / d_av, 0.0)
        donor_swap = np.where(d_av > 0, d_a ** 2 / d_av, 0.0)
    label_bound = np.where(swap, label_swap, d_av)
    donor_bound = np.where(swap, donor_swap, 0.0)
    audio_wins = d_a > d_v
    label_single = np.where(audio_wins, np.where(swap, 0.0, d_a), d_v)
    donor_single = np.where(audio_wins & swap, d_a, 0.0)
    return label_bound, donor_bound, label_single, donor_single


def classification_probabilities(d_prime_audio, d_prime_visual, p_bind, swap, lapse,
                                 n_classes: int = N_CLASSES):
    """(P(answer = label), P(answer = donor)) of one classification trial, lapses included
    (a lapse is a uniform guess). For congruent stimuli the second is 0."""
    lb, db, ls, ds = combined_means(d_prime_audio, d_prime_visual, swap)
    lb, db, ls, ds, p_bind, lapse, swap = np.broadcast_arrays(
        lb, db, ls, ds, np.asarray(p_bind, float), np.asarray(lapse, float),
        np.asarray(swap, bool))
    p_label = p_bind * mafc_choice_probability(lb, db, n_classes) + \
        (1 - p_bind) * mafc_choice_probability(ls, ds, n_classes)
    p_donor = p_bind * mafc_choice_probability(db, lb, n_classes) + \
        (1 - p_bind) * mafc_choice_probability(ds, ls, n_classes)
    guess = lapse / n_classes
    return (1 - lapse) * p_label + guess, np.where(swap, (1 - lapse) * p_donor + guess, 0.0)


# ---------------------------------------------------------------------------------------------
# Population and observers
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CuePopulation:
    """Group means and SDs of the observer's parameters: each a ``(mean, SD)`` of a normal
    distribution across people, except ``lapse`` and ``rt_median_s`` (uniform ranges).

    The defaults are explained in the module docstring (audio-only 0.75, visual-only 0.85,
    d'_A half its maximum at -8 dB SNR, d'_V near 0 at 128 pixel SD, binding window
    -100 / +200 ms). Set, not measured.
    """

    audio_d_prime_max: tuple = (2.58, 0.3)
    visual_d_prime_max: tuple = (3.05, 0.3)
    audio_snr50_db: tuple = (-8.0, 2.0)
    audio_snr_slope_db: tuple = (4.0, 0.6)
    visual_noise_sd50: tuple = (64.0, 8.0)
    visual_noise_slope_sd: tuple = (16.0, 2.5)
    binding_lead_ms: tuple = (100.0, 20.0)
    binding_lag_ms: tuple = (200.0, 40.0)
    binding_falloff_ms: tuple = (25.0, 0.0)
    correspondence_criterion: tuple = (0.0, 0.2)
    lapse: tuple = (0.01, 0.05)
    rt_median_s: tuple = (0.7, 1.2)
    confusable_share: float = 0.8


#: Lowest value a drawn parameter may take (a normal draw is clipped here).
_FLOORS = {"audio_d_prime_max": 0.05, "visual_d_prime_max": 0.05, "audio_snr_slope_db": 0.5,
           "visual_noise_slope_sd": 1.0, "visual_noise_sd50": 1.0, "binding_lead_ms": 0.0,
           "binding_lag_ms": 0.0, "binding_falloff_ms": 0.0}


@dataclass
class CueIntegrationObserver:
    """A simulated participant that integrates auditory and visual evidence (module docstring).

    Same interface as :class:`~avmit_psych.experiments.human_vs_dnn.PsychometricObserver`:
    ``respond(task, stim)`` with ``task`` ``classify`` or ``correspondence`` and ``stim`` a
    trial row (``label``, ``manipulation``, ``level``, ``audio_source`` for swaps), and
    ``rt(stim, task=)``. The n-th call of each depends only on ``seed``, n and the stimulus,
    so ``dataclasses.replace(observer)`` starts the same sequence again, and
    :func:`simulate_trials` gives the same answers. Defaults are the group means.
    """

    seed: int
    audio_d_prime_max: float = CuePopulation.audio_d_prime_max[0]
    visual_d_prime_max: float = CuePopulation.visual_d_prime_max[0]
    audio_snr50_db: float = CuePopulation.audio_snr50_db[0]
    audio_snr_slope_db: float = CuePopulation.audio_snr_slope_db[0]
    visual_noise_sd50: float = CuePopulation.visual_noise_sd50[0]
    visual_noise_slope_sd: float = CuePopulation.visual_noise_slope_sd[0]
    binding_lead_ms: float = CuePopulation.binding_lead_ms[0]
    binding_lag_ms: float = CuePopulation.binding_lag_ms[0]
    binding_falloff_ms: float = CuePopulation.binding_falloff_ms[0]
    correspondence_criterion: float = CuePopulation.correspondence_criterion[0]
    lapse: float = 0.03
    rt_median_s: float = 0.95
    confusable_share: float = CuePopulation.confusable_share
    n_responses: int = field(default=0, init=False)
    n_rts: int = field(default=0, init=False)
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self):
        if not 0 <= self.lapse < 1:
            raise ValueError(f"lapse must be in [0, 1), got {self.lapse}")
        if not 0 <= self.confusable_share <= 1:
            raise ValueError(f"confusable_share must be in [0, 1], got {self.confusable_share}")

    @classmethod
    def from_row(cls, row) -> "CueIntegrationObserver":
        """The observer of one row of :func:`draw_observers` (a mapping or a namedtuple)."""
        get = row.get if hasattr(row, "get") else lambda k, d=None: getattr(row, k, d)
        kwargs = {f.name: get(f.name) for f in fields(cls) if f.init and
                  get(f.name) is not None}
        kwargs["seed"] = int(kwargs["seed"])
        return cls(**kwargs)

    def _params(self) -> dict:
        return {name: np.array([float(getattr(self, name))]) for name in PARAMETER_COLUMNS
                if name != "seed"}

    def _parsed_evidence(self, stim: dict) -> tuple[dict, dict, dict]:
        """(parsed stimulus, parameters, evidence), one-row arrays; cached per stimulus and
        parameter values (a trial list repeats few conditions)."""
        params = self._params()
        key = (tuple(str(stim.get(k)) for k in ("label", "manipulation", "level",
                                                "audio_source")),
               tuple(float(v[0]) for v in params.values()))
        if key not in self._cache:
            parsed = _parse_stimuli(*_stim_columns([stim]), where=_stim_name(stim))
            self._cache[key] = (parsed, _evidence(parsed, params))
        parsed, evidence = self._cache[key]
        return parsed, params, evidence

    def cues(self, stim: dict) -> dict:
        """``audio_d_prime``, ``visual_d_prime``, ``binding_probability`` and ``p_label`` /
        ``p_donor`` (classification, lapses included) for one stimulus."""
        return {k: float(v[0]) for k, v in self._parsed_evidence(stim)[2].items()}

    def p_correct(self, stim, level=None, *, task: str = "classify") -> float:
        """The probability of a correct classification of ``stim`` (exact); for
        ``correspondence`` an estimate by simulation (:func:`correspondence_p_same`).
        ``p_correct(manipulation, level)`` as ``PsychometricObserver`` has it also works
        (for a swap the donor is then unknown, which does not change the probability)."""
        if isinstance(stim, str):
            stim = {"label": TEST_CLASSES[0], "manipulation": stim, "level": level}
        cues = self.cues(stim)
        if task == "classify":
            return cues["p_label"]
        _check_task(task)
        swap = stim.get("manipulation") == "semantic_swap"
        p_same = float(correspondence_p_same(cues["audio_d_prime"], cues["visual_d_prime"],
                                             swap, criterion=self.correspondence_criterion))
        p_same = (1 - self.lapse) * p_same + self.lapse / 2
        return 1 - p_same if swap else p_same

    def respond(self, task: str, stim: dict) -> str:
        """The observer's answer to one trial (a row of
        :func:`~avmit_psych.experiments.human_vs_dnn.trial_list`)."""
        _check_task(task)
        parsed, params, evidence = self._parsed_evidence(stim)
        answer = _respond(task, parsed, params, _seed_array([self.seed]),
                          np.array([self.n_responses], np.uint64), evidence=evidence)
        self.n_responses += 1
        return str(answer[0])

    def rt(self, stim: dict | None = None, *, task: str = "classify") -> float:
        """A response time (s): log-normal around ``rt_median_s``, slower the lower the
        probability of naming the picture's class (``task`` is accepted for the common
        interface; the difficulty is the classification one in both tasks)."""
        if stim is None:
            p_label = np.array([1.0])
        else:
            p_label = self._parsed_evidence(stim)[2]["p_label"]
        out = _response_time(p_label, np.array([self.rt_median_s]), _seed_array([self.seed]),
                             np.array([self.n_rts], np.uint64))
        self.n_rts += 1
        return float(out[0])


#: The per-person parameters: the columns of :func:`draw_observers` after ``participant``.
PARAMETER_COLUMNS = tuple(f.name for f in fields(CueIntegrationObserver) if f.init)


def draw_observers(n: int, seed: int = 0, *,
                   population: CuePopulation = CuePopulation()) -> pd.DataFrame:
    """``n`` simulated people drawn from ``population``: one row each with ``participant``
    (``P01``...), ``seed`` (for the person's answers) and :data:`PARAMETER_COLUMNS`.
    Make the observer with :meth:`CueIntegrationObserver.from_row`."""
    rng = np.random.default_rng([int(seed), 103])
    normal = [f.name for f in fields(CuePopulation) if f.name not in
              ("lapse", "rt_median_s", "confusable_share")]
    rows = []
    for i in range(int(n)):
        row = {"participant": f"P{i + 1:02d}", "seed": int(rng.integers(0, 2 ** 31))}
        for name in normal:
            mean, sd = getattr(population, name)
            value = float(rng.normal(mean, sd)) if sd > 0 else float(mean)
            row[name] = max(value, _FLOORS[name]) if name in _FLOORS else value
        row["lapse"] = float(rng.uniform(*population.lapse))
        row["rt_median_s"] = float(rng.uniform(*population.rt_median_s))
        row["confusable_share"] = float(population.confusable_share)
        rows.append(row)
    return pd.DataFrame(rows, columns=["participant", *PARAMETER_COLUMNS])


# ---------------------------------------------------------------------------------------------
# Vectorised simulation
# ---------------------------------------------------------------------------------------------
def simulate_trials(stimuli: pd.DataFrame, observers: pd.DataFrame,
                    task: str = "classify") -> pd.DataFrame:
    """Every observer answers every stimulus, in the row order of ``stimuli``.

    ``stimuli``: ``label``, ``manipulation``, ``level`` (``audio_source`` optional), e.g. a
    stimulus manifest or one observer's trial list; ``observers``: rows of
    :func:`draw_observers` (``participant``, ``seed`` and the parameters). Returns the stimulus
    columns once per observer plus ``participant``, ``trial`` (1-based position, replacing
    any ``trial`` column of ``stimuli``), ``task``,
    ``response``, ``correct`` (as :func:`~avmit_psych.experiments.human_vs_dnn.score`; NA
    for a stimulus that asks no correspondence question, e.g. one modality only),
    ``rt``, ``audio_d_prime``, ``visual_d_prime``, ``binding_probability``, ``p_label``
    (the exact probability of naming the picture's class) and ``p_donor``.

    The answers and RTs are those of ``CueIntegrationObserver.from_row(row)`` asked about the
    same stimuli in the same order (``respond`` then ``rt`` per trial), bit for bit.
    """
    _check_task(task)
    missing = [c for c in ("participant", *PARAMETER_COLUMNS) if c not in observers.columns]
    if missing:
        raise DatasetError(f"observer table lacks {missing}", column=missing[0],
                           fix="make it with cue_integration.draw_observers")
    stimuli = stimuli.reset_index(drop=True)
    n_stim, n_obs = len(stimuli), len(observers)
    parsed = _parse_stimuli(*_frame_columns(stimuli))
    tiled = {k: np.tile(v, n_obs) for k, v in parsed.items()}
    params = {name: np.repeat(observers[name].to_numpy(float), n_stim)
              for name in PARAMETER_COLUMNS if name != "seed"}
    seeds = np.repeat(_seed_array(observers["seed"]), n_stim)
    trial = np.tile(np.arange(n_stim, dtype=np.uint64), n_obs)
    evidence = _evidence(tiled, params)
    response = np.empty(len(seeds), dtype=object)
    for start in range(0, len(seeds), _CHUNK_ROWS):  # rows are independent: bounds memory
        part = slice(start, start + _CHUNK_ROWS)
        response[part] = _respond(task, {k: v[part] for k, v in tiled.items()},
                                  {k: v[part] for k, v in params.items()}, seeds[part],
                                  trial[part], evidence={k: v[part] for k, v in evidence.items()})
    rt = _response_time(evidence["p_label"], params["rt_median_s"], seeds, trial)
    if task == "classify":
        correct = response == np.asarray(TEST_CLASSES, dtype=object)[tiled["label"]]
    else:
        keys = pd.Series(tiled["manipulation"]).map(
            {m: _correspondence_key(m) for m in set(tiled["manipulation"])})
        correct = pd.array(np.where(keys.isna(), False, response == keys.to_numpy()),
                           dtype="boolean")
        correct[keys.isna().to_numpy()] = pd.NA
    out = stimuli.iloc[np.tile(np.arange(n_stim), n_obs)].reset_index(drop=True)
    out = out.drop(columns=[c for c in ("participant", "trial") if c in out.columns])
    out.insert(0, "participant", np.repeat(observers["participant"].to_numpy(), n_stim))
    out.insert(1, "trial", np.tile(np.arange(1, n_stim + 1), n_obs))
    return out.assign(task=task, response=response, correct=correct, rt=rt,
                      audio_d_prime=evidence["audio_d_prime"],
                      visual_d_prime=evidence["visual_d_prime"],
                      binding_probability=evidence["binding_probability"],
                      p_label=evidence["p_label"], p_donor=evidence["p_donor"])


def correspondence_p_same(d_prime_audio, d_prime_visual, swap, *, criterion: float = 0.0,
                          n_samples: int = 100_000, seed: int = 0) -> float:
    """P("same") of the ideal same/different observer without lapses, by simulating
    ``n_samples`` trials (its standard error is at most ``0.5 / sqrt(n_samples)``)."""
    rng = np.random.default_rng([int(seed), 107])
    z = rng.standard_normal((int(n_samples), 2 * N_CLASSES))
    same = _judge_same(z, np.full(len(z), float(d_prime_audio)),
                       np.full(len(z), float(d_prime_visual)),
                       np.full(len(z), 1 if swap else 0), np.zeros(len(z), int),
                       np.full(len(z), float(criterion)), rng.standard_normal(len(z)))
    return float(np.mean(same))


# ---------------------------------------------------------------------------------------------
# Shared core: the class calls these with one row, simulate_trials with many
# ---------------------------------------------------------------------------------------------
_STREAM_RESPONSE, _STREAM_RT = 1, 2
_D_OUTCOME, _D_CONFUSABLE, _D_WRONG, _D_DONOR, _D_LAPSE, _D_LAPSE_KEY, _D_CRITERION = range(7)
_D_EVIDENCE = 8  # 2 x 16 normal deviates from here
_N_DRAWS = _D_EVIDENCE + 2 * N_CLASSES
_MASK64 = (1 << 64) - 1
_CHUNK_ROWS = 1 << 16


def _splitmix64(z: np.ndarray) -> np.ndarray:
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _seed_array(seeds) -> np.ndarray:
    return np.asarray([int(s) & _MASK64 for s in seeds], dtype=np.uint64)


def _uniforms(seeds: np.ndarray, trial: np.ndarray, stream: int, n_draws: int) -> np.ndarray:
    """(len(seeds), n_draws) numbers in (0, 1), each a hash of (seed, stream, trial, draw)."""
    with np.errstate(over="ignore"):
        h = _splitmix64(_splitmix64(seeds) ^ np.uint64(stream))
        h = _splitmix64(h ^ trial.astype(np.uint64))[:, None]
        h = _splitmix64(h ^ np.arange(n_draws, dtype=np.uint64)[None, :])
    return ((h >> np.uint64(11)).astype(float) + 0.5) * 2.0 ** -53


def _correspondence_key(manipulation: str) -> str | None:
    """The correspondence answer key of a manipulation, by the toolkit's one definition
    (:func:`~avmit_psych.experiments.human_vs_dnn.correct_response`); None when the stimulus
    asks no correspondence question (one modality only)."""
    try:
        return correct_response("correspondence", {"manipulation": manipulation, "label": ""})
    except ValueError:
        return None


def _check_task(task: str) -> None:
    if task not in ("classify", "correspondence"):
        raise ValueError(f"task must be 'classify' or 'correspondence', got {task!r}")


def _stim_name(stim: dict) -> str:
    return f"stimulus {stim.get('stimulus_id', stim)}"


def _stim_columns(stims: list[dict]):
    return ([s.get("label") for s in stims], [s.get("manipulation", "none") for s in stims],
            [s.get("level") for s in stims], [s.get("audio_source") for s in stims])


def _frame_columns(frame: pd.DataFrame):
    for col in ("label", "manipulation"):
        if col not in frame.columns:
            raise DatasetError(f"no '{col}' column", column=col,
                               fix="pass a stimulus manifest or a trial list")
    n = len(frame)
    return (frame["label"].tolist(), frame["manipulation"].tolist(),
            frame["level"].tolist() if "level" in frame.columns else [None] * n,
            frame["audio_source"].tolist() if "audio_source" in frame.columns else [None] * n)


_CLASS_INDEX = {c: i for i, c in enumerate(TEST_CLASSES)}
_NEEDS_LEVEL = {"audio_noise": "dB SNR", "visual_noise": "pixel SD", "av_offset": "ms"}


def _class_of(value) -> int:
    if isinstance(value, str):
        text = value.strip()
        if text in _CLASS_INDEX:
            return _CLASS_INDEX[text]
        head = text.replace("\\", "/").split("/")[0]
        return _CLASS_INDEX.get(head, -1)
    return -1


def _numeric_levels(levels) -> np.ndarray:
    """Levels as numbers; NaN where there is none (blank, None, a class name)."""
    if len(levels) > 64:
        return pd.to_numeric(pd.Series(list(levels), dtype=object),
                             errors="coerce").to_numpy(float)
    out = np.full(len(levels), np.nan)
    for i, x in enumerate(levels):
        try:
            out[i] = float(x)
        except (TypeError, ValueError):
            pass
    return out


def _parse_stimuli(labels, manipulations, levels, audio_sources, where: str | None = None):
    """Arrays: label index, manipulation (object), numeric level, swap flag, donor index (-1:
    unknown). Errors name the row (``where`` for a single stimulus)."""
    n = len(labels)
    manip = np.asarray(["none" if m is None or (isinstance(m, float) and math.isnan(m))
                        else str(m) for m in manipulations], dtype=object)
    label = np.fromiter((_CLASS_INDEX.get(str(x), -1) for x in labels), int, n)
    numeric = _numeric_levels(levels)

    def fail(i, problem, column, fix):
        raise DatasetError(f"{where + ': ' if where else ''}{problem}", row=None if where else i,
                           column=column, fix=fix)

    bad = np.flatnonzero(label < 0)
    if len(bad):
        fail(bad[0], f"label {labels[bad[0]]!r} is not one of the 16 test classes", "label",
             "use the manifest's label (the source video's AVMIT class)")
    unknown = np.flatnonzero(~np.isin(manip, MODELLED_MANIPULATIONS))
    if len(unknown):
        fail(unknown[0], f"no sensitivity model for manipulation {manip[unknown[0]]!r}; "
             f"modelled: {', '.join(MODELLED_MANIPULATIONS)}", "manipulation",
             "leave it out of the simulated suite, or add its effect on d'_A / d'_V to "
             "avmit_psych.experiments.cue_integration._evidence")
    for m, unit in _NEEDS_LEVEL.items():
        no_level = np.flatnonzero((manip == m) & np.isnan(numeric))
        if len(no_level):
            fail(no_level[0], f"{m} needs a numeric level in {unit}, got "
                 f"{levels[no_level[0]]!r}", "level", "give the level in the suite's units")
    swap = manip == "semantic_swap"
    donor = np.full(n, -1)
    for i in np.flatnonzero(swap):
        d = _class_of(levels[i])
        donor[i] = d if d >= 0 else _class_of(audio_sources[i])
        if donor[i] == label[i]:
            fail(i, f"semantic_swap's donor class {TEST_CLASSES[donor[i]]!r} is its own label",
                 "level", "a swap's sound must come from another class")
    return {"label": label, "manipulation": manip, "level": numeric, "swap": swap,
            "donor": donor}


def _evidence(parsed: dict, params: dict) -> dict:
    """d'_A, d'_V, binding probability, P(label), P(donor) per row."""
    manip, level = parsed["manipulation"], parsed["level"]
    d_a = params["audio_d_prime_max"].astype(float).copy()
    d_v = params["visual_d_prime_max"].astype(float).copy()
    sel = manip == "audio_noise"
    d_a[sel] = audio_d_prime(level[sel], d_a[sel], params["audio_snr50_db"][sel],
                             params["audio_snr_slope_db"][sel])
    sel = manip == "visual_noise"
    d_v[sel] = visual_d_prime(level[sel], d_v[sel], params["visual_noise_sd50"][sel],
                              params["visual_noise_slope_sd"][sel])
    d_v[manip == "audio_only"] = 0.0
    d_a[manip == "visual_only"] = 0.0
    p_bind = np.ones(len(manip))
    sel = manip == "av_offset"
    p_bind[sel] = binding_probability(level[sel], params["binding_lead_ms"][sel],
                                      params["binding_lag_ms"][sel],
                                      params["binding_falloff_ms"][sel])
    p_label, p_donor = _classification_unique(d_a, d_v, p_bind, parsed["swap"],
                                              params["lapse"])
    return {"audio_d_prime": d_a, "visual_d_prime": d_v, "binding_probability": p_bind,
            "p_label": p_label, "p_donor": p_donor}


def _classification_unique(d_a, d_v, p_bind, swap, lapse):
    """:func:`classification_probabilities` computed once per distinct row (rows are
    computed independently, so a batch gives the same numbers as one row at a time)."""
    columns = [d_a, d_v, p_bind, swap.astype(float), lapse]
    if len(d_a) <= 64:
        return classification_probabilities(*columns[:3], swap, lapse)
    code = np.zeros(len(d_a), np.int64)
    for values in columns:
        codes, uniques = pd.factorize(values)
        code = code * len(uniques) + codes
    inverse, firsts = pd.factorize(code)
    first = np.zeros(len(firsts), int)
    first[inverse[::-1]] = np.arange(len(code))[::-1]  # a row of each distinct key
    p_label, p_donor = classification_probabilities(*(c[first] for c in columns[:3]),
                                                    swap[first], lapse[first])
    return p_label[inverse], p_donor[inverse]


def _wrong_answer_tables():
    """Per [label, donor + 1] (donor -1: none): the classes a confused observer names (the
    label's confusable classes) and the rest, never the label or the donor; padded with -1,
    with their lengths."""
    likely = np.full((N_CLASSES, N_CLASSES + 1, N_CLASSES), -1)
    rest = np.full((N_CLASSES, N_CLASSES + 1, N_CLASSES), -1)
    n_likely = np.zeros((N_CLASSES, N_CLASSES + 1), int)
    n_rest = np.zeros((N_CLASSES, N_CLASSES + 1), int)
    for li, label in enumerate(TEST_CLASSES):
        for di in range(-1, N_CLASSES):
            if di == li:
                continue
            excluded = {label} | ({TEST_CLASSES[di]} if di >= 0 else set())
            lk = [_CLASS_INDEX[c] for c in CONFUSABLE_CLASSES.get(label, ()) if c not in excluded]
            rs = [i for i, c in enumerate(TEST_CLASSES) if c not in excluded and i not in lk]
            rs = rs or [i for i, c in enumerate(TEST_CLASSES) if c not in excluded]
            likely[li, di + 1, :len(lk)], n_likely[li, di + 1] = lk, len(lk)
            rest[li, di + 1, :len(rs)], n_rest[li, di + 1] = rs, len(rs)
    return likely, n_likely, rest, n_rest


_LIKELY, _N_LIKELY, _REST, _N_REST = _wrong_answer_tables()


def _respond(task, parsed, params, seeds, trial, evidence=None) -> np.ndarray:
    u = _uniforms(seeds, trial, _STREAM_RESPONSE,
                  _N_DRAWS if task == "correspondence" else _D_EVIDENCE)
    label, swap = parsed["label"], parsed["swap"]
    donor = parsed["donor"].copy()
    unknown = np.flatnonzero(swap & (donor < 0))
    for i in unknown:  # a swap without a named donor: any other class, equally likely
        others = [j for j in range(N_CLASSES) if j != label[i]]
        donor[i] = others[int(u[i, _D_DONOR] * len(others))]
    evidence = _evidence(parsed, params) if evidence is None else evidence
    if task == "correspondence":
        audio_class = np.where(swap, donor, label)
        same = _judge_same(special.ndtri(u[:, _D_EVIDENCE:]), evidence["audio_d_prime"],
                           evidence["visual_d_prime"], audio_class, label,
                           params["correspondence_criterion"],
                           special.ndtri(u[:, _D_CRITERION]))
        lapsed = u[:, _D_LAPSE] < params["lapse"]
        same = np.where(lapsed, u[:, _D_LAPSE_KEY] < 0.5, same)
        return np.where(same, "same", "different").astype(object)
    p_label, p_donor = evidence["p_label"], evidence["p_donor"]
    outcome = u[:, _D_OUTCOME]
    answer = np.empty(len(label), int)
    right = outcome < p_label
    to_donor = ~right & swap & (outcome < p_label + p_donor)
    answer[right] = label[right]
    answer[to_donor] = donor[to_donor]
    wrong = ~right & ~to_donor
    column = np.where(swap, donor, -1)[wrong] + 1
    n_likely = _N_LIKELY[label[wrong], column]
    confused = (n_likely > 0) & (u[wrong, _D_CONFUSABLE] < params["confusable_share"][wrong])
    n_pool = np.where(confused, n_likely, _N_REST[label[wrong], column])
    pick = (u[wrong, _D_WRONG] * n_pool).astype(int)
    answer[wrong] = np.where(confused, _LIKELY[label[wrong], column, pick],
                             _REST[label[wrong], column, pick])
    return np.asarray(TEST_CLASSES, dtype=object)[answer]


def _logsumexp_rows(x: np.ndarray) -> np.ndarray:
    top = np.max(x, axis=1)
    return top + np.log(np.sum(np.exp(x - top[:, None]), axis=1))


def _judge_same(z, d_a, d_v, audio_class, visual_class, criterion, criterion_z) -> np.ndarray:
    """The ideal same/different decision from 2 x 16 standard normal deviates ``z``."""
    rows = np.arange(len(z))
    a = z[:, :N_CLASSES].copy()
    v = z[:, N_CLASSES:].copy()
    a[rows, audio_class] += d_a
    v[rows, visual_class] += d_v
    la, lv = d_a[:, None] * a, d_v[:, None] * v
    log_s = _logsumexp_rows(la + lv) - _logsumexp_rows(la) - _logsumexp_rows(lv)
    with np.errstate(divide="ignore"):
        log_lr = math.log(N_CLASSES - 1) + log_s - np.log1p(-np.minimum(np.exp(log_s), 1.0))
    return log_lr > criterion + CRITERION_NOISE_SD * criterion_z


def _response_time(p_label, rt_median_s, seeds, trial) -> np.ndarray:
    z = special.ndtri(_uniforms(seeds, trial, _STREAM_RT, 1)[:, 0])
    median = np.asarray(rt_median_s, float) * (1.0 + 0.8 * (1.0 - np.asarray(p_label, float)))
    return np.clip(median * np.exp(0.25 * z), 0.2, 10.0)
