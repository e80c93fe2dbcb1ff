"""Humans against DNNs, trial by trial: the comparison behind
``python -m avmit_psych.analysis compare`` (its command line: :mod:`.compare_cli`).

Reads humans' trials and models' predictions (or model-vs-human raw data), then writes into
one folder, all together or not at all:

- ``accuracy.csv``: per observer and condition, accuracy with its Wilson 95% CI;
- ``summary.csv``: per condition the humans' mean, SD, SEM and 95% CI, and each model as a
  single case against them (Crawford & Howell's modified t-test, Holm-corrected across
  conditions; the model's percentile among humans; the difference model - humans with a
  bootstrap CI over stimuli);
- ``anova.csv``: repeated-measures ANOVA of the humans over the levels of each manipulation;
- ``error_consistency.csv`` (every pair, every condition; kappa within a condition) and
  ``error_consistency_summary.csv`` (mean kappa per pair type, over conditions);
- ``confusions.csv`` and ``confusion_correlations.csv``;
- ``psychometric.csv``: psignifit fits per observer and per group;
- ``timing.csv`` (when the trials carry the player's timing): per participant, flagged trials,
  dropped frames, audio start error; flagged trials are left out unless
  ``--no-exclude-timing-failures``;
- ``self_consistency.csv`` (when stimuli were shown twice): per observer, first vs second
  showing (the first is the measured trial everywhere else);
- figures ``accuracy.png``, ``error_consistency.png``, ``confusions.png``,
  ``psychometric.png`` and ``report.md`` that embeds them and states the results in words.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..dataset.schema import OutputBatch
from . import accuracy as acc_mod
from . import confusions as conf_mod
from . import consistency as cons_mod
from . import figures
from . import psychometric as psy_mod
from . import sdt as sdt_mod
from . import single_case
from .observers import Observations, condition_table

ALPHA = 0.05


@dataclass
class Comparison:
    """Everything ``compare`` computed (the DataFrames written as CSV) and its notes."""

    observations: Observations
    accuracy: pd.DataFrame
    summary: pd.DataFrame
    anova: pd.DataFrame
    pairs: pd.DataFrame
    consistency_summary: pd.DataFrame
    confusions: dict = field(default_factory=dict)
    confusion_correlations: pd.DataFrame | None = None
    psychometric: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)
    self_consistency: pd.DataFrame | None = None
    timing: pd.DataFrame | None = None
    sdt: pd.DataFrame | None = None
    sdt_summary: pd.DataFrame | None = None
    files: dict = field(default_factory=dict)
    n_choices: int = psy_mod.N_CHOICES

    @property
    def chance(self) -> float:
        return psy_mod.guess_rate(self.observations.trials, self.n_choices)


def run_comparison(obs: Observations, *, n_boot: int = 1000, seed: int = 0,
                   confidence: float = 0.95, workers: int = 1, psychometric: bool = True,
                   n_choices: int = psy_mod.N_CHOICES, progress: bool = False) -> Comparison:
    """Every analysis on loaded observations (no files written); ``progress`` shows a bar on
    stderr for the psychometric fits, the step that takes longest."""
    trials = obs.trials
    notes = list(obs.warnings)
    # The psignifit fits start in worker processes while this process does the rest.
    fitting = psy_mod.PendingFits(trials, workers, n_choices) if psychometric else None
    conditions = condition_table(trials)
    accuracy = acc_mod.accuracy_table(trials, confidence=confidence)
    summary = single_case.model_vs_humans(trials, conditions, n_boot=n_boot, seed=seed,
                                          confidence=confidence) \
        if obs.humans else pd.DataFrame(columns=single_case.SINGLE_CASE_COLUMNS)
    anova, anova_notes = acc_mod.level_anovas(accuracy)
    notes += anova_notes
    pairs = cons_mod.error_consistency(trials, condition="condition",
                                       observer_type="observer_type", n_boot=n_boot,
                                       seed=seed, confidence=confidence)
    if len(pairs):   # conditions in reading order, as everywhere else
        rank = {c: i for i, c in enumerate(conditions["condition"])}
        pairs = pairs.assign(_c=pairs["condition"].map(rank)).sort_values(
            "_c", kind="stable").drop(columns="_c").reset_index(drop=True)
    unmatched = pairs["n_unmatched"].sum() if len(pairs) else 0
    if unmatched:
        n_pairs = int((pairs["n_unmatched"] > 0).sum())
        notes.append(f"error consistency: {int(unmatched):,} trials had no partner trial on the "
                     f"same stimulus ({n_pairs:,} pair x condition cells); they are counted in "
                     f"n_unmatched and left out of kappa")
    empty = pairs[pairs["n_trials"] == 0]
    if len(empty):
        notes.append(f"error consistency: {len(empty):,} pair x condition cells share no "
                     f"stimulus and have no kappa")
    cons_summary = cons_mod.consistency_summary(pairs) if len(pairs) else \
        pd.DataFrame(columns=["condition", "pair_type", "n_pairs", "mean_kappa"])
    matrices, correlations = {}, None
    if (trials["task"] != "correspondence").all():
        matrices = conf_mod.group_matrices(trials)
        correlations = conf_mod.matrix_correlations(matrices)
    fits = None
    if fitting is not None:
        fits, fit_notes = fitting.result(progress=progress)
        notes += fit_notes
    self_cons = cons_mod.self_consistency(obs.repeats) if len(obs.repeats) else None
    measured = obs.timing.drop(columns=["observer", "file", "stimulus_id", "condition"])
    timing = timing_table(obs.timing) if len(obs.timing) and \
        measured.map(lambda v: v is not None and v == v).any().any() else None
    sdt = sdt_summary = None
    if (trials["task"] == "correspondence").any():
        sdt = sdt_mod.sdt_table(trials, conditions)
        sdt_summary = sdt_mod.sdt_summary(sdt) if obs.humans and obs.models else None
    return Comparison(obs, accuracy, summary, anova, pairs, cons_summary, matrices,
                      correlations, fits, notes, self_consistency=self_cons, timing=timing,
                      sdt=sdt, sdt_summary=sdt_summary, n_choices=n_choices)


TIMING_SUMMARY_COLUMNS = ["observer", "n_trials", "n_flagged", "dropped_frame_rate",
                          "audio_error_median_ms", "audio_error_p95_ms", "audio_error_max_ms",
                          "frame_interval_sd_median_ms", "latency_ms"]


def timing_table(timing: pd.DataFrame) -> pd.DataFrame:
    """Per participant: trials, trials flagged ``timing_ok = False``, share of trials with a
    dropped frame, the distribution of |audio start error| (median, 95th percentile, max),
    the median frame-interval SD and the latency compensation used."""
    rows = []
    for observer, t in timing.groupby("observer", sort=True):
        err = t["audio_start_error_ms"].abs().dropna()
        dropped = t["dropped_frames"].dropna()
        sd = t["frame_interval_sd_ms"].dropna()
        lat = t["latency_ms"].dropna()
        rows.append({
            "observer": observer, "n_trials": len(t),
            "n_flagged": int(t["timing_ok"].map(lambda v: v is False).sum()),
            "dropped_frame_rate": float((dropped > 0).mean()) if len(dropped) else np.nan,
            "audio_error_median_ms": float(err.median()) if len(err) else np.nan,
            "audio_error_p95_ms": float(np.percentile(err, 95)) if len(err) else np.nan,
            "audio_error_max_ms": float(err.max()) if len(err) else np.nan,
            "frame_interval_sd_median_ms": float(sd.median()) if len(sd) else np.nan,
            "latency_ms": float(lat.median()) if len(lat) else np.nan})
    return pd.DataFrame(rows, columns=TIMING_SUMMARY_COLUMNS)


def write_comparison(result: Comparison, out_dir, *, study_note: str = "",
                     command: str = "") -> dict[str, Path]:
    """Write every CSV, figure and ``report.md`` into ``out_dir`` (all or nothing)."""
    from ..dataset.schema import write_csv
    out_dir = Path(out_dir)
    obs = result.observations
    chance = result.chance
    with OutputBatch(out_dir) as batch:
        files = {}

        def csv(name, df):
            files[name] = write_csv(df, batch.path(name))

        csv("accuracy.csv", result.accuracy)
        csv("summary.csv", result.summary)
        csv("anova.csv", result.anova)
        csv("error_consistency.csv", result.pairs)
        csv("error_consistency_summary.csv", result.consistency_summary)
        if result.confusions:
            csv("confusions.csv", conf_mod.long_table(result.confusions))
            csv("confusion_correlations.csv", result.confusion_correlations)
        if result.psychometric is not None:
            csv("psychometric.csv", result.psychometric)
        if result.self_consistency is not None:
            csv("self_consistency.csv", result.self_consistency)
        if result.timing is not None:
            csv("timing.csv", result.timing)
        if result.sdt is not None and len(result.sdt):
            csv("sdt.csv", result.sdt)
            figures.dprime_figure(result.sdt, batch.path("dprime.png"))
            files["dprime.png"] = batch.path("dprime.png")
        if result.sdt_summary is not None and len(result.sdt_summary):
            csv("sdt_summary.csv", result.sdt_summary)
        figures.accuracy_figure(result.accuracy, result.summary if len(result.summary) else
                                _no_human_summary(result.accuracy),
                                batch.path("accuracy.png"), chance=chance)
        files["accuracy.png"] = batch.path("accuracy.png")
        if len(result.pairs):
            matrix = cons_mod.consistency_matrix(result.pairs, obs.observers)
            figures.consistency_figure(matrix, result.consistency_summary,
                                       batch.path("error_consistency.png"))
            files["error_consistency.png"] = batch.path("error_consistency.png")
        if result.confusions:
            figures.confusion_figure(result.confusions, batch.path("confusions.png"))
            files["confusions.png"] = batch.path("confusions.png")
        if result.psychometric is not None and len(result.psychometric):
            figures.psychometric_figure(obs.trials, result.psychometric,
                                        batch.path("psychometric.png"))
            files["psychometric.png"] = batch.path("psychometric.png")
        report = batch.path("report.md")
        report.write_text(report_text(result, files, study_note=study_note, command=command),
                          encoding="utf-8")
        files["report.md"] = report
    return {name: out_dir / name for name in files}


def _no_human_summary(accuracy: pd.DataFrame) -> pd.DataFrame:
    conds = accuracy.drop_duplicates("condition")[["condition", "manipulation", "level",
                                                   "level_value"]]
    return conds.assign(n_humans=0, human_mean=np.nan, human_ci_low=np.nan,
                        human_ci_high=np.nan)



# --------------------------------------------------------------------------------------------
# Words
# --------------------------------------------------------------------------------------------
def _p(p) -> str:
    if p is None or not np.isfinite(p):
        return "p = n/a"
    return "p < .001" if p < 0.001 else f"p = {p:.3f}".replace("0.", ".", 1)


def _f(x, digits: int = 3) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def accuracy_markdown(summary: pd.DataFrame, accuracy: pd.DataFrame) -> str:
    models = sorted(accuracy.loc[accuracy["observer_type"] == "model", "observer"].unique())
    conds = condition_table_from_accuracy(accuracy)
    human = summary.drop_duplicates("condition").set_index("condition") if len(summary) \
        else None
    model_acc = accuracy[accuracy["observer_type"] == "model"].set_index(
        ["observer", "condition"])["accuracy"]
    head = ["condition"] + (["humans: mean [95% CI] (n)"] if human is not None else []) + models
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in conds:
        cells = [c]
        if human is not None:
            if c in human.index and human.loc[c, "n_humans"] > 0:
                h = human.loc[c]
                cells.append(f"{h['human_mean']:.3f} [{_f(h['human_ci_low'])}, "
                             f"{_f(h['human_ci_high'])}] ({int(h['n_humans'])})")
            else:
                cells.append("")
        for m in models:
            v = model_acc.get((m, c), np.nan)
            cells.append(_f(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def condition_table_from_accuracy(accuracy: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(accuracy["condition"]))


def single_case_words(summary: pd.DataFrame) -> list[str]:
    """Each model against the humans in words: Crawford-Howell tests across conditions."""
    out = []
    tested = summary[summary["model"].fillna("") != ""]
    for model, rows in tested.groupby("model", sort=True):
        rows = rows.dropna(subset=["p_holm"])
        if rows.empty:
            out.append(f"- **{model}**: no condition could be tested (fewer than 2 humans, or "
                       f"no spread among them).")
            continue
        sig = rows[rows["p_holm"] < ALPHA]
        below = int((sig["model_accuracy"] < sig["human_mean"]).sum())
        above = len(sig) - below
        top = rows.loc[(rows["model_accuracy"] - rows["human_mean"]).abs().idxmax()]
        ci = "" if not np.isfinite(top["difference_ci_low"]) else (
            f" [{top['difference_ci_low']:+.3f}, {top['difference_ci_high']:+.3f}]")
        out.append(
            f"- **{model}**: below the humans in {below} and above them in {above} of "
            f"{len(rows)} conditions (Crawford & Howell's test of a single case against the "
            f"human sample, Holm-corrected p < {ALPHA}); the largest difference is in "
            f"`{top['condition']}`: model {top['model_accuracy']:.3f} vs humans "
            f"{top['human_mean']:.3f} (SD {_f(top['human_sd'])}, n = {int(top['n_humans'])}), "
            f"t({top['dof']:.0f}) = {top['t']:.2f}, Holm {_p(top['p_holm'])}, the model at "
            f"percentile {top['model_percentile']:.1f} of the humans; difference "
            f"{top['difference']:+.3f}{ci}.")
    return out


def anova_words(anova: pd.DataFrame) -> list[str]:
    out = []
    for r in anova.itertuples(index=False):
        sph = "" if not np.isfinite(r.eps) else (
            f", Greenhouse-Geisser eps = {r.eps:.2f}, corrected {_p(r.p_GG_corr)}")
        out.append(f"- Human accuracy over the levels of **{r.manipulation}**: "
                   f"F({r.ddof1:.0f}, {r.ddof2:.0f}) = {r.F:.2f}, {_p(r.p_unc)}{sph}, "
                   f"generalised eta² = {r.effect_size:.3f} ({r.n_subjects} humans, "
                   f"{r.n_levels} levels).")
    return out


def consistency_words(summary: pd.DataFrame) -> list[str]:
    overall = summary[summary["condition"] == "all"]
    words = {"human-human": "humans with each other", "human-model": "humans with models",
             "model-model": "models with each other"}
    out = []
    for r in overall.itertuples(index=False):
        out.append(f"- {words.get(r.pair_type, r.pair_type)}: mean kappa = {r.mean_kappa:.3f} "
                   f"(SD {_f(r.sd_kappa)}, {r.n_pairs:,} pair x condition cells; observed "
                   f"consistency {r.mean_observed:.3f} vs {r.mean_expected:.3f} expected by "
                   f"chance).")
    kinds = overall.set_index("pair_type")["mean_kappa"]
    if {"human-human", "human-model"} <= set(kinds.index):
        hh, hm = kinds["human-human"], kinds["human-model"]
        verdict = ("models err on the same stimuli as humans about as much as humans do with "
                   "each other" if hm >= hh - 0.05 else
                   "models err on different stimuli than humans do: their consistency with "
                   "humans is below the humans' consistency with each other")
        out.append(f"- In short: {verdict} (human-model {hm:.3f} vs human-human {hh:.3f}).")
    return out


def correspondence_words(result: Comparison, files: dict) -> list[str]:
    """The report's signal-detection section for the correspondence task."""
    sdt = result.sdt
    if sdt is None or not len(sdt):
        return []
    lines = ["## Correspondence: signal detection", "",
             "Every row is one observer on the same stimuli: people answered \"same or "
             "different action?\" in the experiment, SAVC models gave `same`/`different` for "
             "each stimulus's own audio and visual embeddings (`predict --manifest`). The "
             "signal is an incongruent stimulus (a semantic swap): a hit is \"different\" on "
             "a swap, a false alarm \"different\" on a congruent stimulus. d' = z(H) - z(F), "
             "c = -(z(H) + z(F))/2 (c > 0: a bias toward \"same\"), rates log-linear "
             "corrected (Hautus 1995). A congruent condition's d' uses that observer's hit "
             "rate over all swaps; a swap condition's uses the false alarms on `none` "
             "(`reference` in `sdt.csv`).", ""]
    means = sdt.groupby(["observer_type", "condition"], sort=False)["d_prime"].mean()
    for kind in ("human", "model"):
        if kind in means.index.get_level_values(0):
            m = means[kind].dropna()
            if len(m):
                lines.append(f"- {kind}s: mean d' {m.mean():.2f} over {len(m)} condition(s) "
                             f"(lowest `{m.idxmin()}` {m.min():.2f}, highest `{m.idxmax()}` "
                             f"{m.max():.2f}).")
    summary = result.sdt_summary
    if summary is not None and len(summary):
        for model, rows in summary.dropna(subset=["p_holm"]).groupby("model", sort=True):
            sig = rows[rows["p_holm"] < ALPHA]
            below = int((sig["model_d_prime"] < sig["human_d_prime_mean"]).sum())
            lines.append(f"- **{model}** vs humans (Crawford & Howell on d', Holm): lower in "
                         f"{below} and higher in {len(sig) - below} of {len(rows)} "
                         f"conditions (`sdt_summary.csv`).")
    lines.append("")
    if "dprime.png" in files:
        lines += ["![d' per condition](dprime.png)", ""]
    return lines


def timing_words(result: Comparison) -> list[str]:
    """The report's timing section: per participant what the player measured."""
    t = result.timing
    if t is None or not len(t):
        return []
    excluded = result.observations.timing_excluded
    flagged = int(t["n_flagged"].sum())
    lines = ["## Timing", "",
             f"What the player measured in every human trial: {int(t['n_trials'].sum()):,} "
             f"trials, {flagged:,} flagged `timing_ok = False` (audio start off by more than "
             f"the tolerance, or a dropped frame); "
             + (f"{excluded:,} of them were left out of every analysis "
                "(`--no-exclude-timing-failures` keeps them)." if excluded else
                "flagged trials were kept (`--no-exclude-timing-failures`).")
             + " Audio start error = the start the audio backend reports minus the start "
               "requested (after latency compensation).", "",
             "| participant | trials | flagged | trials with dropped frames | |audio error| "
             "median / 95th pct / max (ms) | frame-interval SD (ms) | latency used (ms) |",
             "|---|---|---|---|---|---|---|"]
    for r in t.itertuples(index=False):
        lines.append(f"| {r.observer} | {r.n_trials} | {r.n_flagged} | "
                     f"{_f(r.dropped_frame_rate)} | {_f(r.audio_error_median_ms, 2)} / "
                     f"{_f(r.audio_error_p95_ms, 2)} / {_f(r.audio_error_max_ms, 2)} | "
                     f"{_f(r.frame_interval_sd_median_ms, 2)} | {_f(r.latency_ms, 1)} |")
    return lines + ["", "Per participant in `timing.csv`.", ""]


def report_text(result: Comparison, files: dict, *, study_note: str = "",
                command: str = "") -> str:
    obs = result.observations
    trials = obs.trials
    n_cond = trials["condition"].nunique()
    lines = ["# Humans vs DNNs: comparison report", ""]
    if study_note:
        lines += [f"> **{study_note}**", ""]
    lines += [f"Generated {time.strftime('%Y-%m-%d %H:%M')}"
              + (f" by `{command}`" if command else "") + ".", "",
              "## Data", "",
              f"- {len(obs.humans)} human observer(s), {len(obs.models)} model(s); "
              f"{len(trials):,} trials on {trials['stimulus_id'].nunique():,} stimuli in "
              f"{n_cond} condition(s); task: {trials['task'].iloc[0]}; chance = "
              f"{result.chance:.4g}.",
              f"- Files read: {len(obs.files)}.", ""]
    if result.notes:
        lines += ["## Warnings", ""] + [f"- {n}" for n in result.notes] + [""]
    lines += ["## Accuracy", "",
              "Accuracy per condition (humans: mean over observers with a t-based 95% CI; "
              "per-observer Wilson 95% CIs are in `accuracy.csv`).", "",
              accuracy_markdown(result.summary, result.accuracy), ""]
    if "accuracy.png" in files:
        lines += ["![Accuracy by condition](accuracy.png)", ""]
    words = single_case_words(result.summary) if len(result.summary) else []
    if words:
        lines += ["### Each model against the humans", "",
                  "A handful of models is not a sample: each model is a single case tested "
                  "against the human sample per condition (Crawford & Howell 1998 modified "
                  "t-test, two-sided, Holm-corrected across conditions per model; the model's "
                  "percentile among humans estimated from t). The difference model - humans has "
                  "a percentile bootstrap CI over stimuli (`summary.csv`).", ""] + words + [""]
    if len(result.anova):
        lines += ["### Effect of level (humans, repeated-measures ANOVA)", ""] \
            + anova_words(result.anova) + [""]
    if len(result.pairs):
        method = result.pairs["ci_method"].iloc[0] if "ci_method" in result.pairs else ""
        lines += ["## Error consistency", "",
                  "Cohen's kappa on trials matched by stimulus (Geirhos, Meding & Wichmann "
                  "2020): 0 = errors no more shared than chance, 1 = the same errors. Computed "
                  "within each condition and averaged over conditions (each pair's mean over "
                  f"its conditions, then the mean over pairs); CIs in `error_consistency.csv`: "
                  f"{method}.", ""]
        lines += consistency_words(result.consistency_summary) + [""]
        if "error_consistency.png" in files:
            lines += ["![Error consistency](error_consistency.png)", ""]
    lines += correspondence_words(result, files)
    lines += timing_words(result)
    if result.self_consistency is not None and len(result.self_consistency):
        sc = result.self_consistency
        lines += ["## Self-consistency (stimuli shown twice)", "",
                  f"{int(sc['n_repeated'].sum()):,} second showings from {len(sc)} observer(s). "
                  "The first showing is the measured trial in every analysis above; the second "
                  "measures how reliably each observer answers the same stimulus "
                  "(`self_consistency.csv`).", "",
                  "| observer | repeated | accuracy first | accuracy repeat | same response | "
                  "kappa |", "|---|---|---|---|---|---|"]
        for r in sc.itertuples(index=False):
            lines.append(f"| {r.observer} | {r.n_repeated} | {r.accuracy_first:.3f} | "
                         f"{r.accuracy_repeat:.3f} | {r.response_agreement:.3f} | "
                         f"{_f(r.kappa)} |")
        lines += ["", f"- Mean same-response rate {sc['response_agreement'].mean():.3f}, mean "
                  f"kappa between showings {np.nanmean(sc['kappa']):.3f}.", ""]
    if result.confusions:
        lines += ["## Confusions", ""]
        if result.confusion_correlations is not None and len(result.confusion_correlations):
            for r in result.confusion_correlations.itertuples(index=False):
                lines.append(f"- humans vs **{r.group}**: r = {_f(r.r_all)} over all cells, "
                             f"r = {_f(r.r_errors)} over the errors alone (off-diagonal).")
            lines.append("")
        lines += ["![Confusion matrices](confusions.png)", ""]
    if result.psychometric is not None and len(result.psychometric):
        lines += ["## Psychometric functions", "",
                  "psignifit 4 (Schütt et al. 2016), cumulative Gaussian, lower asymptote "
                  "(floor) fixed, lapse rate fitted; threshold = level half-way between the "
                  "floor and 1 - lapse, with 95% credible intervals. The floor is chance, but "
                  "for auditory (visual) noise it is the observer's visual-only (audio-only) "
                  "accuracy when there is one: an observer who combines the cues falls back "
                  "on the other modality, not to chance (Ernst & Banks 2002); the top of such "
                  "a function is then the clean accuracy (the lapse rate's prior comes from "
                  "the observer's `none` trials).", "",
                  "| manipulation | observer | fit | floor | threshold [95% CI] | width | lapse |",
                  "|---|---|---|---|---|---|---|"]
        for r in result.psychometric.itertuples(index=False):
            unit = " (|level|)" if r.level_transform == "abs" else ""
            lines.append(f"| {r.manipulation}{unit} | {r.observer} | {r.fit} | "
                         f"{r.guess_rate:.3f} ({r.floor}) | "
                         f"{r.threshold:.2f} [{r.threshold_ci_low:.2f}, "
                         f"{r.threshold_ci_high:.2f}] | {r.width:.2f} | {r.lapse:.3f} |")
        lines += ["", "![Psychometric functions](psychometric.png)", ""]
    lines += ["## Files", ""] + [f"- `{name}`" for name in files if name != "report.md"]
    return "\n".join(lines) + "\n"


def terminal_table(result: Comparison, *, max_models: int = 4) -> str:
    """A short table for the terminal: accuracy per condition and mean kappa per pair type."""
    acc = result.accuracy
    models = sorted(acc.loc[acc["observer_type"] == "model", "observer"].unique())
    shown = models[:max_models]
    human = result.summary.drop_duplicates("condition").set_index("condition") \
        if len(result.summary) else None
    width = max([len(c) for c in acc["condition"]] + [9])
    head = f"{'condition':<{width}}" + (f"  {'humans':>15}" if human is not None else "")
    col = max([14] + [len(m) for m in shown])
    col = min(col, 28)
    head += "".join(f"  {m[:col]:>{col}}" for m in shown)
    rows = [head, "-" * len(head)]
    model_acc = acc.set_index(["observer", "condition"])["accuracy"]
    for c in condition_table_from_accuracy(acc):
        line = f"{c:<{width}}"
        if human is not None:
            h = human.loc[c] if c in human.index else None
            line += f"  {(_f(h['human_mean']) + ' ± ' + _f(h['human_sem'])) if h is not None and h['n_humans'] > 0 else '':>15}"
        line += "".join(f"  {_f(model_acc.get((m, c), np.nan)):>{col}}" for m in shown)
        rows.append(line)
    if len(models) > max_models:
        rows.append(f"(+{len(models) - max_models} more models in accuracy.csv)")
    overall = result.consistency_summary
    overall = overall[overall["condition"] == "all"] if len(overall) else overall
    if len(overall):
        rows.append("error consistency (mean kappa): " + ", ".join(
            f"{r.pair_type} {r.mean_kappa:.3f}" for r in overall.itertuples(index=False)))
    return "\n".join(rows)
