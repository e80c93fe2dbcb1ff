"""Trial-by-trial error consistency (Geirhos, Meding & Wichmann 2020, NeurIPS).

For two observers, trials are matched by stimulus (never by trial order). On the matched
trials, with p1 and p2 the two accuracies:

- observed consistency c_obs = share of trials both got right or both got wrong;
- expected consistency c_exp = p1 p2 + (1 - p1)(1 - p2) (independent observers);
- error consistency kappa = (c_obs - c_exp) / (1 - c_exp), and 1 when c_obs is 1.

Kappa is computed within a condition (a manipulation at one level) and averaged over
conditions: pooling levels of different difficulty inflates it, because both observers err on
the hard levels. Each observer has at most one measured trial per stimulus and condition.

The confidence interval is a percentile bootstrap over stimuli (seeded): the stimulus is the
unit shared by every pair, so resampling stimuli keeps each pair's matched trials together.
Pairs of observers who both saw every stimulus of a condition (the usual design) share one set
of resamples and are computed together with matrix products; other pairs are resampled on
their own shared stimuli. Tested against a hand computation, model-vs-human's definition
(``modelvshuman/plotting/analyses.py``: observed consistency, expected consistency from both
accuracies, Cohen's kappa) on its raw-data layout, a direct per-pair computation, and the
properties above (an observer with itself: 1; independent observers: about 0; shuffled trial
order: unchanged).
"""
from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

from ..dataset.schema import DatasetError

PAIR_COLUMNS = ["observer_a", "observer_b", "pair_type", "condition", "n_trials", "n_unmatched",
                "observed", "expected", "kappa", "ci_low", "ci_high"]
PAIR_TYPES = ("human-human", "human-model", "model-model")


def kappa(observed, expected):
    """Error consistency from observed and expected consistency (arrays broadcast)."""
    observed, expected = np.asarray(observed, float), np.asarray(expected, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        k = (observed - expected) / (1.0 - expected)
    return np.where(observed >= 1.0, 1.0, k)


def from_counts(n, both_right, right_a, right_b):
    """(observed, expected, kappa) from matched-trial counts (arrays broadcast)."""
    n = np.asarray(n, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p1, p2 = np.asarray(right_a) / n, np.asarray(right_b) / n
        both_wrong = n - right_a - right_b + both_right
        observed = (np.asarray(both_right) + both_wrong) / n
    expected = p1 * p2 + (1 - p1) * (1 - p2)
    return observed, expected, kappa(observed, expected)


def pair_consistency(correct_a, correct_b) -> dict:
    """Error consistency of two observers' correctness on the same, matched trials."""
    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    if a.shape != b.shape:
        raise ValueError("the two observers need the same matched trials")
    obs, exp, k = from_counts(len(a), np.sum(a & b), np.sum(a), np.sum(b))
    return {"n_trials": int(len(a)), "observed": float(obs), "expected": float(exp),
            "kappa": float(k)}


def _bootstrap_kappa(n, both, right_a, right_b) -> np.ndarray:
    """Kappa of many resamples at once, in float32 with few temporaries:
    kappa = 2 (both/n - p1 p2) / (p1 + p2 - 2 p1 p2), which is :func:`from_counts` rearranged
    (and 1 when the denominator is 0, i.e. both always right or both always wrong)."""
    inv = np.float32(1.0 / n)
    p1 = right_a * inv
    p2 = right_b * inv
    prod = p1 * p2
    num = both * inv
    num -= prod
    den = p1
    den += p2
    den -= 2 * prod
    with np.errstate(invalid="ignore", divide="ignore"):
        num *= 2
        num /= den
    num[den <= 0] = 1.0
    return num


def _seed(*parts) -> list[int]:
    return [p if isinstance(p, int) else zlib.crc32(str(p).encode()) for p in parts]


def _resample_counts(rng: np.random.Generator, n: int, n_boot: int) -> np.ndarray:
    """(n_boot, n) how often each stimulus is drawn in each bootstrap resample."""
    idx = rng.integers(0, n, size=(n_boot, n))
    flat = (idx + n * np.arange(n_boot)[:, None]).ravel()
    return np.bincount(flat, minlength=n_boot * n).reshape(n_boot, n).astype(np.float32)


def _pair_type(type_a: str, type_b: str) -> str:
    if type_a == type_b:
        return f"{type_a}-{type_b}"
    return "human-model"


def condition_consistency(correct: np.ndarray, seen: np.ndarray, observers: list[str],
                          types: list[str], condition: str, *, n_boot: int = 1000,
                          seed: int = 0, confidence: float = 0.95) -> pd.DataFrame:
    """Every pair of ``observers`` in one condition.

    ``correct`` and ``seen`` are (observers, stimuli) booleans over the condition's stimuli in
    a fixed (sorted) order; ``correct`` is False where not seen.
    """
    C, M = correct.astype(np.float32), seen.astype(np.float32)
    n_obs, n_stim = C.shape
    a_idx, b_idx = np.triu_indices(n_obs, k=1)
    NN, CC, CM = M @ M.T, C @ C.T, C @ M.T
    n_ab = NN[a_idx, b_idx]
    right_a, right_b, both = CM[a_idx, b_idx], CM[b_idx, a_idx], CC[a_idx, b_idx]
    observed, expected, k = from_counts(n_ab, both, right_a, right_b)
    n_each = M.sum(axis=1)
    out = pd.DataFrame({
        "observer_a": np.asarray(observers, dtype=object)[a_idx],
        "observer_b": np.asarray(observers, dtype=object)[b_idx],
        "pair_type": [_pair_type(types[a], types[b]) for a, b in zip(a_idx, b_idx)],
        "condition": condition, "n_trials": n_ab.astype(int),
        "n_unmatched": (n_each[a_idx] + n_each[b_idx] - 2 * n_ab).astype(int),
        "observed": observed, "expected": expected, "kappa": k})
    lo_q, hi_q = 50 * (1 - confidence), 50 * (1 + confidence)
    ci_low, ci_high = np.full(len(out), np.nan), np.full(len(out), np.nan)
    if n_boot > 0 and len(out):
        full = M.sum(axis=1) == n_stim
        fast = full[a_idx] & full[b_idx]
        if fast.any():
            W = _resample_counts(np.random.default_rng(_seed(seed, condition)), n_stim,
                                 n_boot)
            right_boot = C @ W.T                         # (observers, n_boot)
            both_boot = (C[a_idx[fast]] * C[b_idx[fast]]) @ W.T
            kb = _bootstrap_kappa(n_stim, both_boot, right_boot[a_idx[fast]],
                                  right_boot[b_idx[fast]])
            ci_low[fast], ci_high[fast] = np.percentile(kb, [lo_q, hi_q], axis=1)
        for i in np.flatnonzero(~fast):
            a, b = a_idx[i], b_idx[i]
            shared = np.flatnonzero(seen[a] & seen[b])
            if not len(shared):
                continue
            rng = np.random.default_rng(_seed(seed, condition, observers[a], observers[b]))
            draw = shared[rng.integers(0, len(shared), size=(n_boot, len(shared)))]
            ca, cb = correct[a][draw], correct[b][draw]
            _, _, kb = from_counts(len(shared), (ca & cb).sum(1), ca.sum(1), cb.sum(1))
            ci_low[i], ci_high[i] = np.percentile(kb, [lo_q, hi_q])
    out["ci_low"], out["ci_high"] = ci_low, ci_high
    return out


#: how the confidence intervals are made (written into every row of the output)
CI_METHOD = "percentile bootstrap over stimuli ({n_boot} resamples, {level:g}%)"
ALL_TRIALS = "(all trials)"


def _as_correct(values: pd.Series, column: str) -> np.ndarray:
    if values.dtype == bool:
        return values.to_numpy()
    text = values.astype(str).str.strip().str.lower()
    ok = text.isin({"true", "false", "1", "0", "1.0", "0.0"})
    if not ok.all():
        i = int(np.flatnonzero(~ok.to_numpy())[0])
        raise DatasetError(f"'{values.iloc[i]}' is not true/false", row=i + 1, column=column,
                           fix="give correctness as booleans (or 1/0)")
    return text.isin({"true", "1", "1.0"}).to_numpy()


def _matched_trials(data: pd.DataFrame, observer: str, stimulus: str, correct: str,
                    condition: str | None, observer_type: str | None,
                    repeat: str | None) -> pd.DataFrame:
    """The columns error consistency needs, one row per observer x stimulus x condition."""
    wanted = [c for c in (observer, stimulus, correct, condition, observer_type, repeat)
              if c is not None]
    missing = [c for c in wanted if c not in data.columns]
    if missing:
        raise DatasetError(f"no column '{missing[0]}' in the trials", column=missing[0],
                           fix=f"name the columns with observer=, stimulus=, correct=, "
                               f"condition= (have: {', '.join(map(str, data.columns[:12]))})")
    t = pd.DataFrame({"observer": data[observer].astype(str).to_numpy(),
                      "stimulus_id": data[stimulus].astype(str).to_numpy(),
                      "correct": _as_correct(data[correct], correct),
                      "condition": data[condition].astype(str).to_numpy() if condition
                      else ALL_TRIALS,
                      "observer_type": data[observer_type].astype(str).to_numpy()
                      if observer_type else "",
                      "row": np.arange(1, len(data) + 1)})
    if repeat is not None:
        t = t[~_as_correct(data[repeat], repeat)]
    keys = ["observer", "stimulus_id", "condition"]
    dup = t.duplicated(keys, keep=False)
    if dup.any():
        first = t[dup].iloc[0]
        rows = t[dup & (t["observer"] == first["observer"]) &
                 (t["stimulus_id"] == first["stimulus_id"]) &
                 (t["condition"] == first["condition"])]["row"].tolist()
        raise DatasetError(
            f"observer '{first['observer']}' has {len(rows)} trials of stimulus "
            f"'{first['stimulus_id']}' (rows {', '.join(map(str, rows[:5]))}); error "
            f"consistency needs one trial per observer and stimulus",
            row=int(rows[0]), column=stimulus,
            fix="remove re-runs, or mark second showings in a column and pass it as repeat=")
    return t


def error_consistency(data: pd.DataFrame, observer: str = "observer",
                      stimulus: str = "stimulus_id", correct: str = "correct",
                      condition: str | None = "condition", observer_type: str | None = None,
                      repeat: str | None = None, *, n_boot: int = 1000, seed: int = 0,
                      confidence: float = 0.95) -> pd.DataFrame:
    """Error consistency (Geirhos, Meding & Wichmann 2020) of every pair of observers.

    Parameters
    ----------
    data : DataFrame
        Tidy trials, one row per observer and trial.
    observer, stimulus, correct : str
        Columns naming the observer, the stimulus shown and whether the answer was right
        (booleans or 1/0). Trials of two observers are matched by stimulus, never by order.
    condition : str or None
        Column of conditions (default ``condition``): kappa is computed within each condition
        (pooling conditions of different difficulty inflates it). ``None`` on purpose: all
        trials are one condition.
    observer_type : str, optional
        Column with ``human`` / ``model``: gives each pair its ``pair_type``.
    repeat : str, optional
        Column marking second showings of a stimulus (true/false): those rows are left out
        and the first showing is the measured trial. Any other second trial of one observer,
        stimulus and condition raises :class:`DatasetError`.
    n_boot : int
        Bootstrap resamples for the CI (0: no CI).
    seed : int
        Seeds the resampling; results do not depend on the order of the rows.
    confidence : float
        Level of the CI.

    Returns
    -------
    DataFrame of :data:`PAIR_COLUMNS` plus ``ci_method``: per condition and pair the matched
    trials ``n_trials``, trials without a partner ``n_unmatched``, observed and expected
    consistency, kappa and its CI (percentile bootstrap over the stimuli the two observers
    share: the stimuli, not the trial cells, are the sampling unit). Conditions in sorted
    order, humans before models, pairs with no shared stimulus have n_trials 0 and NaNs.

    See Also
    --------
    pair_consistency : kappa of two aligned correctness vectors.
    consistency_summary : mean over conditions and over pairs of each type.

    Examples
    --------
    >>> import pandas as pd
    >>> trials = pd.DataFrame({"observer": ["a"] * 4 + ["b"] * 4,
    ...                        "stimulus_id": ["s1", "s2", "s3", "s4"] * 2,
    ...                        "correct": [1, 1, 0, 0, 1, 0, 0, 0]})
    >>> error_consistency(trials, condition=None, n_boot=0)[["observer_a", "observer_b",
    ...                                                     "kappa"]]
      observer_a observer_b  kappa
    0          a          b    0.5

    Tested against a hand computation (c_obs 3/4, c_exp 1/2: kappa 1/2), model-vs-human's own
    definition on its raw-data layout, and a direct per-pair computation of the bootstrap.
    """
    t = _matched_trials(data, observer, stimulus, correct, condition, observer_type, repeat)
    first_type = t.drop_duplicates("observer").set_index("observer")["observer_type"]
    observers = sorted(first_type.index, key=lambda o: (first_type[o] not in ("human", ""),
                                                        str(o)))
    obs_code = pd.Index(observers).get_indexer(t["observer"])
    stim_code, stim_names = pd.factorize(t["stimulus_id"])
    stim_rank = np.argsort(np.argsort(np.asarray(stim_names, dtype=str)))  # sorted order
    correct_all = t["correct"].to_numpy(bool)
    frames = []
    for cond, rows in sorted(t.groupby("condition").indices.items(), key=lambda kv: kv[0]):
        o = obs_code[rows]
        present = np.unique(o)                      # observers in their global order
        if len(present) < 2:
            continue
        ranks = stim_rank[stim_code[rows]]
        stimuli = np.unique(ranks)                  # the condition's stimuli, sorted by id
        o_i, s_i = np.searchsorted(present, o), np.searchsorted(stimuli, ranks)
        seen = np.zeros((len(present), len(stimuli)), bool)
        correct_m = np.zeros_like(seen)
        seen[o_i, s_i] = True
        correct_m[o_i, s_i] = correct_all[rows]
        names = [observers[i] for i in present]
        frames.append(condition_consistency(correct_m, seen, names,
                                            [first_type[o] for o in names], cond,
                                            n_boot=n_boot, seed=seed, confidence=confidence))
    columns = PAIR_COLUMNS + ["ci_method"]
    if not frames:
        return pd.DataFrame(columns=columns)
    out = pd.concat(frames, ignore_index=True)
    if not observer_type:
        out["pair_type"] = ""
    out["ci_method"] = CI_METHOD.format(n_boot=n_boot, level=100 * confidence) \
        if n_boot > 0 else "none"
    return out[columns]


SELF_COLUMNS = ["observer", "observer_type", "n_repeated", "accuracy_first",
                "accuracy_repeat", "response_agreement", "observed", "expected", "kappa"]


def self_consistency(repeats: pd.DataFrame) -> pd.DataFrame:
    """How consistent each observer is with itself on stimuli shown twice.

    ``repeats`` has one row per second showing with the first showing's answer beside it
    (``first_response, first_correct, response, correct``, as
    :attr:`~avmit_psych.analysis.observers.Observations.repeats`). Per observer: the repeated
    stimuli, accuracy at the first and the second showing, the share of identical responses,
    and error consistency between the two showings (the same kappa as between two observers:
    1 = the same stimuli wrong both times, 0 = no more than chance). The first showing is the
    measured trial everywhere else; this is its test-retest reliability.
    """
    if repeats is None or not len(repeats):
        return pd.DataFrame(columns=SELF_COLUMNS)
    rows = []
    for (observer, kind), r in repeats.groupby(["observer", "observer_type"], sort=True):
        a = r["first_correct"].astype(bool).to_numpy()
        b = r["correct"].astype(bool).to_numpy()
        pc = pair_consistency(a, b)
        rows.append({"observer": observer, "observer_type": kind, "n_repeated": len(r),
                     "accuracy_first": float(a.mean()), "accuracy_repeat": float(b.mean()),
                     "response_agreement": float((r["first_response"].astype(str) ==
                                                  r["response"].astype(str)).mean()),
                     "observed": pc["observed"], "expected": pc["expected"],
                     "kappa": pc["kappa"]})
    return pd.DataFrame(rows, columns=SELF_COLUMNS)


def consistency_summary(pairs: pd.DataFrame) -> pd.DataFrame:
    """Mean kappa per pair type in each condition, and over conditions (``all``): each pair's
    kappa averaged over its conditions first, then over pairs (``n_pairs`` = pairs), so that
    every pair counts once and kappa is never computed on pooled conditions."""
    ok = pairs[pairs["n_trials"] > 0]
    per_pair = ok.groupby(["observer_a", "observer_b", "pair_type"], sort=False)[
        ["kappa", "observed", "expected"]].mean().reset_index()
    parts = [ok, per_pair.assign(condition="all")]
    g = pd.concat(parts).groupby(["condition", "pair_type"], sort=False)
    out = g.agg(n_pairs=("kappa", "size"), mean_kappa=("kappa", "mean"),
                sd_kappa=("kappa", "std"), mean_observed=("observed", "mean"),
                mean_expected=("expected", "mean")).reset_index()
    out["sem_kappa"] = out["sd_kappa"] / np.sqrt(out["n_pairs"])
    return out[["condition", "pair_type", "n_pairs", "mean_kappa", "sd_kappa", "sem_kappa",
                "mean_observed", "mean_expected"]]


def consistency_matrix(pairs: pd.DataFrame, observers: list[str]) -> pd.DataFrame:
    """Observers x observers: kappa averaged over conditions (diagonal 1)."""
    mean = pairs[pairs["n_trials"] > 0].groupby(["observer_a", "observer_b"])["kappa"].mean()
    m = pd.DataFrame(np.nan, index=observers, columns=observers)
    for (a, b), v in mean.items():
        m.loc[a, b] = m.loc[b, a] = v
    for o in observers:
        m.loc[o, o] = 1.0
    return m
