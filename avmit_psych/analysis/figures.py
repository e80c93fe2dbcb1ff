"""The comparison's figures (PNG), drawn with matplotlib and seaborn off screen."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .._atomic import atomic_path

HUMAN_COLOUR = "#222222"
MODEL_PALETTE = "tab10"


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path: Path) -> Path:
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def _model_colours(models):
    plt = _pyplot()
    cmap = plt.get_cmap(MODEL_PALETTE if len(models) <= 10 else "tab20")
    return {m: cmap(i % cmap.N) for i, m in enumerate(models)}


def _heatmap(ax, matrix: pd.DataFrame, *, cmap: str, vmin: float, vmax: float,
             labelsize: float = 7, tick_labels: bool = True):
    """A labelled matrix image (imshow: one image, quick to draw at any size)."""
    image = ax.imshow(matrix.to_numpy(float), cmap=cmap, vmin=vmin, vmax=vmax,
                      interpolation="nearest", aspect="equal")
    if tick_labels:
        ax.set_xticks(np.arange(matrix.shape[1]), [str(c) for c in matrix.columns],
                      rotation=90, fontsize=labelsize)
        ax.set_yticks(np.arange(matrix.shape[0]), [str(i) for i in matrix.index],
                      fontsize=labelsize)
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    return image


def _legend_right(fig, ax) -> None:
    """Lay the panels out, then put the first panel's legend to the right of them all."""
    fig.tight_layout()
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles[:16], labels[:16], loc="center left", bbox_to_anchor=(1.0, 0.5),
                   ncol=1 if len(handles) <= 8 else 2, frameon=False, fontsize=8)


def accuracy_figure(accuracy: pd.DataFrame, summary: pd.DataFrame, path: Path,
                    *, chance: float | None = None) -> Path:
    """Accuracy by level, one panel per numeric manipulation and one for the other conditions:
    humans' mean with 95% CI (individuals faint), each model a line."""
    plt = _pyplot()
    models = sorted(accuracy.loc[accuracy["observer_type"] == "model", "observer"].unique())
    colours = _model_colours(models)
    human_rows = summary.drop_duplicates("condition")
    numeric = [m for m, d in accuracy.groupby("manipulation") if d["level_value"].notna().any()]
    categorical = accuracy[accuracy["level_value"].isna()]
    panels = [("numeric", m) for m in sorted(numeric)]
    if len(categorical):
        panels.append(("categorical", None))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    for ax, (kind, manipulation) in zip(axes[0], panels):
        if kind == "numeric":
            acc = accuracy[(accuracy["manipulation"] == manipulation) &
                           accuracy["level_value"].notna()]
            h = human_rows[(human_rows["manipulation"] == manipulation) &
                           human_rows["level_value"].notna()].sort_values("level_value")
            for _, rows in acc[acc["observer_type"] == "human"].groupby("observer"):
                rows = rows.sort_values("level_value")
                ax.plot(rows["level_value"], rows["accuracy"], color=HUMAN_COLOUR, alpha=0.15,
                        lw=0.8)
            if len(h) and h["n_humans"].max() > 0:
                err = np.vstack([h["human_mean"] - h["human_ci_low"],
                                 h["human_ci_high"] - h["human_mean"]])
                ax.errorbar(h["level_value"], h["human_mean"], yerr=np.nan_to_num(err),
                            color=HUMAN_COLOUR, marker="o", lw=2, capsize=3,
                            label="humans (mean, 95% CI)")
            for m in models:
                rows = acc[acc["observer"] == m].sort_values("level_value")
                ax.plot(rows["level_value"], rows["accuracy"], color=colours[m], marker="s",
                        ms=3, lw=1.2, label=m)
            ax.set_xlabel(level_axis_label(manipulation, acc["level_value"]))
            ax.set_title(manipulation)
        else:
            conds = list(dict.fromkeys(categorical["condition"]))
            x = np.arange(len(conds))
            h = human_rows.set_index("condition").reindex(conds)
            width = 0.8 / (1 + len(models))
            if h["n_humans"].fillna(0).max() > 0:
                err = np.vstack([h["human_mean"] - h["human_ci_low"],
                                 h["human_ci_high"] - h["human_mean"]])
                ax.bar(x, h["human_mean"], width, yerr=np.nan_to_num(err), color="#888888",
                       capsize=3, label="humans")
            for i, m in enumerate(models):
                rows = categorical[categorical["observer"] == m].set_index("condition")
                ax.bar(x + (i + 1) * width, rows["accuracy"].reindex(conds), width,
                       color=colours[m], label=m)
            ax.set_xticks(x + 0.4 - width / 2, conds, rotation=30, ha="right")
            ax.set_title("other conditions")
        if chance is not None:
            ax.axhline(chance, color="grey", ls=":", lw=1)
        ax.set_ylim(0, 1.02)
        ax.set_ylabel("accuracy (proportion correct)")
    _legend_right(fig, axes[0][0])
    return _save(fig, path)


def consistency_figure(matrix: pd.DataFrame, summary: pd.DataFrame, path: Path) -> Path:
    """The observers x observers matrix of mean kappa, and the mean per pair type."""
    plt = _pyplot()
    n = len(matrix)
    size = min(14, 3 + 0.22 * n)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(size + 4, size * 0.8),
                                  gridspec_kw={"width_ratios": [size, 4]})
    image = _heatmap(ax, matrix, cmap="RdBu_r", vmin=-1, vmax=1,
                     labelsize=max(4, 9 - n // 12), tick_labels=n <= 80)
    fig.colorbar(image, ax=ax, shrink=0.7, label="error consistency (kappa)")
    ax.set_title("error consistency, mean over conditions")
    overall = summary[summary["condition"] == "all"]
    ax2.bar(overall["pair_type"], overall["mean_kappa"], yerr=overall["sem_kappa"].fillna(0),
            color=["#444444", "#8a5fbf", "#2a9d8f"][:len(overall)], capsize=3)
    ax2.axhline(0, color="grey", lw=0.8)
    ax2.set_ylabel("mean kappa (Cohen's, ± SEM over pairs x conditions)")
    ax2.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    return _save(fig, path)


def confusion_figure(matrices: dict[str, pd.DataFrame], path: Path, *, limit: int = 6) -> Path:
    """Row-normalised confusion matrices of the first ``limit`` groups."""
    plt = _pyplot()
    from .confusions import row_normalise
    groups = list(matrices)[:limit]
    ncols = min(3, len(groups))
    nrows = int(np.ceil(len(groups) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.0 * ncols + 1.2, 5.0 * nrows),
                             squeeze=False)
    image = None
    for i, ax in enumerate(axes.ravel()):
        if i >= len(groups):
            ax.axis("off")
            continue
        g = groups[i]
        image = _heatmap(ax, row_normalise(matrices[g]), cmap="viridis", vmin=0, vmax=1,
                         labelsize=6)
        ax.set_title(g)
        ax.set_xlabel("response")
        if i % ncols == 0:
            ax.set_ylabel("true class")
    fig.tight_layout()
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.5,
                     label="proportion of the class's trials")
    return _save(fig, path)


#: The x-axis of a psychometric panel: the level's quantity and unit, per manipulation of
#: our suites (``stimuli/suite.py``) and of the model-vs-human datasets (units as
#: ``observers.TOOLBOX_LEVELS`` decodes them); anything else is "level".
LEVEL_AXIS_LABELS = {
    "av_offset": "AV offset (ms, audio lag > 0; fitted on |offset|)",
    "audio_noise": "auditory noise (dB SNR)",
    "visual_noise": "visual noise (pixel SD, 0-255)", "blur": "blur (sigma, pixels)",
    "contrast": "contrast (factor)", "high-pass": "high-pass filter (SD, pixels)",
    "low-pass": "low-pass filter (SD, pixels)", "phase-scrambling": "phase noise (degrees)",
    "rotation": "rotation (degrees)", "uniform-noise": "uniform noise (width)",
    "eidolonI": "eidolon reach (log2)", "eidolonII": "eidolon reach (log2)",
    "eidolonIII": "eidolon reach (log2)"}


def level_axis_label(manipulation: str, levels) -> str:
    """:data:`LEVEL_AXIS_LABELS`; ``contrast`` is a factor (0-1) in our suites and a
    percentage in the model-vs-human data (levels above 1)."""
    if manipulation == "contrast" and len(levels) and np.nanmax(np.asarray(levels, float)) > 1:
        return "contrast (%)"
    return LEVEL_AXIS_LABELS.get(manipulation, f"{manipulation} (level as given)")


def psychometric_figure(trials: pd.DataFrame, fits: pd.DataFrame, path: Path) -> Path:
    """Per manipulation: pooled human proportions with the group fit; each model's data and
    fit."""
    from .psychometric import predict
    plt = _pyplot()
    manipulations = sorted(fits["manipulation"].unique())
    models = sorted(fits.loc[fits["observer_type"] == "model", "observer"].unique())
    models = [m for m in models if m != "models"]
    colours = _model_colours(models)
    fig, axes = plt.subplots(1, len(manipulations), figsize=(4.4 * len(manipulations), 3.6),
                             squeeze=False)
    for ax, manipulation in zip(axes[0], manipulations):
        f = fits[fits["manipulation"] == manipulation]
        data = trials[trials["manipulation"] == manipulation].dropna(subset=["level_value"])
        xs = np.linspace(data["level_value"].min(), data["level_value"].max(), 200)
        humans = data[data["observer_type"] == "human"]
        if len(humans):
            p = humans.groupby("level_value")["correct"].mean()
            ax.plot(p.index, p.to_numpy(), "o", color=HUMAN_COLOUR, label="humans (pooled)")
            row = f[(f["fit"] == "group") & (f["observer"] == "humans")]
            if len(row):
                ax.plot(xs, predict(xs, row.iloc[0]), color=HUMAN_COLOUR, lw=2)
                thr = row.iloc[0]["threshold"]
                if row.iloc[0]["level_transform"] != "abs":
                    ax.axvline(thr, color=HUMAN_COLOUR, ls="--", lw=0.8)
        for m in models:
            rows = data[data["observer"] == m]
            p = rows.groupby("level_value")["correct"].mean()
            ax.plot(p.index, p.to_numpy(), "s", ms=3, color=colours[m], label=m)
            row = f[(f["observer"] == m) & (f["fit"] == "observer")]
            if len(row):
                ax.plot(xs, predict(xs, row.iloc[0]), color=colours[m], lw=1.2)
        ax.set_title(manipulation)
        ax.set_xlabel(level_axis_label(manipulation, data["level_value"]))
        ax.set_ylabel("proportion correct")
        ax.set_ylim(0, 1.02)
    _legend_right(fig, axes[0][0])
    return _save(fig, path)


def dprime_figure(sdt: pd.DataFrame, path: Path) -> Path:
    """Correspondence: d' per condition, humans (mean, 95% t-CI; individuals faint) and each
    model, with the hit and false-alarm rates in a second panel."""
    from scipy import stats
    plt = _pyplot()
    conds = list(dict.fromkeys(sdt["condition"]))
    x = np.arange(len(conds))
    models = sorted(sdt.loc[sdt["observer_type"] == "model", "observer"].unique())
    colours = _model_colours(models)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(max(8, 0.7 * len(conds) + 4), 4.2))
    humans = sdt[sdt["observer_type"] == "human"]
    for _, rows in humans.groupby("observer"):
        r = rows.set_index("condition").reindex(conds)
        ax.plot(x, r["d_prime"], color=HUMAN_COLOUR, alpha=0.15, lw=0.8)
    if len(humans):
        g = humans.groupby("condition")["d_prime"].agg(["mean", "std", "count"]).reindex(conds)
        half = stats.t.ppf(0.975, np.maximum(g["count"] - 1, 1)) * g["std"] / \
            np.sqrt(g["count"])
        ax.errorbar(x, g["mean"], yerr=np.nan_to_num(half.to_numpy(float)), color=HUMAN_COLOUR,
                    marker="o", lw=2, capsize=3, label="humans (mean, 95% CI)")
        hr = humans.groupby("condition")[["hit_rate", "fa_rate"]].mean().reindex(conds)
        ax2.plot(x, hr["hit_rate"], color=HUMAN_COLOUR, marker="^", label="humans: hit rate")
        ax2.plot(x, hr["fa_rate"], color=HUMAN_COLOUR, marker="v", ls="--",
                 label="humans: false-alarm rate")
    for m in models:
        r = sdt[sdt["observer"] == m].set_index("condition").reindex(conds)
        ax.plot(x, r["d_prime"], color=colours[m], marker="s", ms=4, lw=1.2, label=m)
        ax2.plot(x, r["fa_rate"], color=colours[m], marker="v", ls="--", lw=1)
    for a in (ax, ax2):
        a.set_xticks(x, conds, rotation=40, ha="right", fontsize=8)
    ax.axhline(0, color="grey", lw=0.8, ls=":")
    ax.set_ylabel("d' (incongruent vs congruent)")
    ax.set_title("correspondence: sensitivity per condition")
    ax2.set_ylim(0, 1)
    ax2.set_ylabel("rate of 'different' answers (proportion)")
    ax2.set_title("hits (swaps) and false alarms")
    _legend_right(fig, ax)
    return _save(fig, path)
