"""The AVMIT annotation analysis: raw ratings -> per-video counts -> votes -> test classes ->
the controlled test set and the AVMIT / MIT-16 training sets.

Every function takes and returns pandas DataFrames (pingouin style) and is pure: the same inputs
and seed give the same output. Paper defaults (facts.md "Ratings") are the parameter defaults.

Examples
--------
>>> from avmit_psych.dataset import ratings, synthetic
>>> sim = synthetic.simulate_ratings(n_videos=2000, seed=1)
>>> agg = ratings.aggregate(sim.raw)
>>> votes = ratings.votes(agg.video_ratings)
>>> sorted(votes.columns)[:3]
['filename', 'label', 'n_ratings']
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import schema
from .schema import DatasetError

#: A video counts as present/prominent "by majority" when at least this many raters say so.
#: facts.md: the released data was built with ">= 2 raters" (a strict "more than half of n"
#: rule would drop 98 of the 7,296 released AVMIT training rows).
MAJORITY_MIN_VOTES = 2
MIN_RATINGS = 3
#: Class filter: classes with at least this many prominent-by-majority videos become test classes.
MIN_PROMINENT_VIDEOS_PER_CLASS = 500
TEST_VIDEOS_PER_CLASS = 60
TEST_FPS = 30.0
VALIDATION_FRACTION = 0.1

VIDEO_RATINGS_COLUMNS = list(schema.VIDEO_RATINGS_COLUMNS)
TEST_SET_COLUMNS = list(schema.TEST_SET_COLUMNS)
AVMIT_TRAIN_COLUMNS = schema.AVMIT_TRAIN.names
MIT16_TRAIN_COLUMNS = [c for c in schema.MIT16_TRAIN.names if c]

# Stable seeds per selection stage, so changing one stage does not reshuffle the others.
_STAGE_TEST, _STAGE_AVMIT, _STAGE_MIT16 = 1, 2, 3


# --------------------------------------------------------------------------------------------
# Aggregation
# --------------------------------------------------------------------------------------------
@dataclass
class Aggregation:
    """Result of :func:`aggregate`.

    video_ratings : one row per kept video, in the video-ratings layout.
    dropped : one row per dropped video (filename, AVMIT_label, n_ratings).
    """

    video_ratings: pd.DataFrame
    dropped: pd.DataFrame


def aggregate(raw: pd.DataFrame, *, min_ratings: int = MIN_RATINGS) -> Aggregation:
    """Count each video's ratings: raw ratings -> r1, r2, r3 per video.

    Parameters
    ----------
    raw : DataFrame
        Raw ratings (``filename, AVMIT_label, MIT_label, video_location, rating``; a
        ``participant`` column, when present, is checked for one rating per video).
    min_ratings : int
        Videos with fewer ratings are dropped (paper: 3).

    Returns
    -------
    Aggregation
        ``video_ratings`` with columns filename, r1, r2, r3, AVMIT_label, MIT_label,
        video_location, tfrecord_filename (videos in order of first appearance) and
        ``dropped``.

    Raises
    ------
    DatasetError
        A filename whose rows disagree on AVMIT_label, MIT_label or video_location, or any
        problem :func:`schema.validate` finds.
    """
    raw = schema.validate(raw, schema.RAW_RATINGS) if raw.attrs.get("layout") != \
        schema.RAW_RATINGS.name else raw
    path = raw.attrs.get("path")
    codes, filenames = pd.factorize(raw["filename"], sort=False)
    meta_cols = ["AVMIT_label", "MIT_label", "video_location"]
    first_rows = np.full(len(filenames), -1, dtype=np.int64)
    # index of the first row of each video
    order = np.arange(len(codes))[::-1]
    first_rows[codes[order]] = order
    for col in meta_cols:
        values = raw[col].to_numpy()
        conflict = values != values[first_rows[codes]]
        if conflict.any():
            i = int(np.flatnonzero(conflict)[0])
            f = filenames[codes[i]]
            raise DatasetError(
                f"video '{f}' has {col} '{values[i]}' here but '{values[first_rows[codes[i]]]}' "
                f"at row {first_rows[codes[i]] + 1}", path=path, row=i + 1, column=col,
                fix="every rating of one video must carry the same metadata; correct the row")
    ratings = raw["rating"].to_numpy(dtype=np.int64)
    counts = np.zeros((len(filenames), 3), dtype=np.int64)
    np.add.at(counts, (codes, ratings - 1), 1)
    meta = raw.iloc[first_rows][meta_cols].reset_index(drop=True)
    table = pd.DataFrame({"filename": np.asarray(filenames, dtype=object),
                          "r1": counts[:, 0], "r2": counts[:, 1], "r3": counts[:, 2]})
    table = pd.concat([table, meta], axis=1)
    table["tfrecord_filename"] = [schema.tfrecord_filename(a, f) for a, f in
                                  zip(table["AVMIT_label"], table["filename"])]
    n = counts.sum(axis=1)
    keep = n >= min_ratings
    dropped = pd.DataFrame({"filename": table.loc[~keep, "filename"].to_numpy(),
                            "AVMIT_label": table.loc[~keep, "AVMIT_label"].to_numpy(),
                            "n_ratings": n[~keep]})
    video_ratings = table.loc[keep, VIDEO_RATINGS_COLUMNS].reset_index(drop=True)
    return Aggregation(video_ratings=video_ratings, dropped=dropped)


def as_video_ratings(df: pd.DataFrame) -> pd.DataFrame:
    """Bring a table with per-video counts into the video-ratings layout.

    Accepts the video-ratings layout itself or the released AVMIT training layout
    (``actual_label``/``label``, extra ratings allowed in r1-r3).
    """
    layout = schema.detect_layout(df.columns, (schema.VIDEO_RATINGS, schema.AVMIT_TRAIN))
    path = df.attrs.get("path")
    if layout is None:
        if schema.detect_layout(df.columns, (schema.MIT16_TRAIN,)) is not None:
            raise DatasetError("this is a MIT-16 training file, which has no rating counts",
                               path=path, fix="summarise video_ratings.csv or an AVMIT "
                                              "training file (columns r1, r2, r3)")
        if schema.detect_layout(df.columns, (schema.RAW_RATINGS,)) is not None:
            return aggregate(df).video_ratings
        schema.validate(df, schema.VIDEO_RATINGS, path=path)  # raises naming the missing column
    if df.attrs.get("layout") != layout.name:
        df = schema.validate(df, layout, path=path)
    if layout is schema.AVMIT_TRAIN:
        df = df.rename(columns=schema.AVMIT_TRAIN_TO_VIDEO_RATINGS)
    out = df[VIDEO_RATINGS_COLUMNS].copy()
    out.attrs = dict(df.attrs)
    return out


# --------------------------------------------------------------------------------------------
# Votes and the Figure 2 table
# --------------------------------------------------------------------------------------------
def votes(video_ratings: pd.DataFrame, *, min_votes: int = MAJORITY_MIN_VOTES) -> pd.DataFrame:
    """Present and prominent votes per video, with majority flags.

    Present votes = r2 + r3 (the event is there), prominent votes = r3 (and it is the most
    prominent feature). A video is present/prominent *by majority* when at least ``min_votes``
    raters say so (facts.md: the rule the released data was built with).

    Returns
    -------
    DataFrame
        filename, label, n_ratings, present_votes, prominent_votes, present_majority,
        prominent_majority.
    """
    vr = as_video_ratings(video_ratings)
    present = (vr["r2"] + vr["r3"]).to_numpy()
    prominent = vr["r3"].to_numpy()
    return pd.DataFrame({
        "filename": vr["filename"].to_numpy(),
        "label": vr["AVMIT_label"].to_numpy(),
        "n_ratings": (vr["r1"] + vr["r2"] + vr["r3"]).to_numpy(),
        "present_votes": present,
        "prominent_votes": prominent,
        "present_majority": present >= min_votes,
        "prominent_majority": prominent >= min_votes,
    })


def class_vote_counts(votes_table: pd.DataFrame) -> pd.DataFrame:
    """The Figure 2 table: per class, how many videos got 0, 1, 2 and 3+ votes.

    Returns
    -------
    DataFrame
        label, n_videos, present_0, present_1, present_2, present_3plus, prominent_0 ...
        prominent_3plus, present_majority, prominent_majority; classes ordered by their number
        of prominent-by-majority videos (most first), as the class filter reads them.
    """
    v = votes_table
    out = pd.DataFrame({"label": pd.unique(v["label"])}).set_index("label")
    out["n_videos"] = v.groupby("label", sort=False).size()
    for measure in ("present", "prominent"):
        binned = np.minimum(v[f"{measure}_votes"].to_numpy(), 3)
        table = pd.crosstab(v["label"], binned).reindex(columns=range(4), fill_value=0)
        for k in range(4):
            name = f"{measure}_{k}" if k < 3 else f"{measure}_3plus"
            out[name] = table[k].reindex(out.index).fillna(0).astype("int64")
    for measure in ("present", "prominent"):
        out[f"{measure}_majority"] = v.groupby("label", sort=False)[f"{measure}_majority"].sum() \
            .astype("int64")
    out = out.reset_index()
    return out.sort_values(["prominent_majority", "label"], ascending=[False, True],
                           kind="stable").reset_index(drop=True)


def plot_class_vote_counts(counts: pd.DataFrame, path=None, *,
                           min_videos: int = MIN_PROMINENT_VIDEOS_PER_CLASS):
    """Figure 2: stacked bars per class of videos with 0, 1, 2, 3+ present (a) and prominent (b)
    votes; the dashed line marks the class-filter threshold. Returns the matplotlib Figure and
    saves it as PNG when ``path`` is given (via a temporary name)."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    labels = counts["label"].tolist()
    height = max(4.0, 0.22 * len(labels) + 2.0)
    fig, axes = plt.subplots(1, 2, figsize=(12, height), sharey=True, constrained_layout=True)
    # Most votes first, from the axis: the first two segments together are the videos
    # "by majority" (>= 2 votes), which is what the class-filter line is read against.
    segments = [("3plus", "3+ votes", "#08519c"), ("2", "2 votes", "#4292c6"),
                ("1", "1 vote", "#9ecae1"), ("0", "0 votes", "#d9d9d9")]
    y = np.arange(len(labels))
    for ax, measure, title in zip(axes, ("present", "prominent"),
                                  ("a) labelled AV event present", "b) AV event most prominent")):
        left = np.zeros(len(labels))
        for suffix, name, colour in segments:
            values = counts[f"{measure}_{suffix}"].to_numpy()
            ax.barh(y, values, left=left, color=colour, edgecolor="white", linewidth=0.3,
                    label=name)
            left += values
        ax.set_title(title)
        ax.set_xlabel("videos")
    axes[1].axvline(min_videos, color="black", linestyle="--", linewidth=1,
                    label=f"class filter ({min_videos} by majority)")
    axes[0].set_yticks(y, labels, fontsize=7)
    axes[0].invert_yaxis()
    fig.legend(*axes[1].get_legend_handles_labels(), loc="outside lower center", ncol=5,
               fontsize=8, frameon=False)
    fig.suptitle(f"AVMIT annotations: {int(counts['n_videos'].sum()):,} videos")
    if path is not None:
        from .._atomic import atomic_path
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=120)
        plt.close(fig)
    return fig


# --------------------------------------------------------------------------------------------
# Class filter and test-set selection
# --------------------------------------------------------------------------------------------
def class_filter(votes_table: pd.DataFrame, *,
                 min_videos: int = MIN_PROMINENT_VIDEOS_PER_CLASS) -> pd.DataFrame:
    """Which classes have enough prominent-by-majority videos to enter the test set.

    Returns
    -------
    DataFrame
        label, prominent_majority, selected (sorted by label).
    """
    n = votes_table.groupby("label")["prominent_majority"].sum().astype("int64")
    return pd.DataFrame({"label": n.index, "prominent_majority": n.to_numpy(),
                         "selected": n.to_numpy() >= min_videos}).reset_index(drop=True)


def _seeded_order(n: int, seed, *keys: int) -> np.ndarray:
    """A permutation of range(n) determined by the seed and the stage keys."""
    return np.random.default_rng([int(seed), *keys]).permutation(n)


@dataclass
class Selection:
    """Result of :func:`select`: the five released files and the counts at every step."""

    test_set: pd.DataFrame
    avmit_train: pd.DataFrame
    avmit_validation: pd.DataFrame
    mit16_train: pd.DataFrame
    mit16_validation: pd.DataFrame
    report: pd.DataFrame

    def files(self) -> dict[str, pd.DataFrame]:
        return {"test_set.csv": self.test_set, "AVMIT_train.csv": self.avmit_train,
                "AVMIT_validation.csv": self.avmit_validation,
                "MIT16_train.csv": self.mit16_train,
                "MIT16_validation.csv": self.mit16_validation}


def select_test_set(video_ratings: pd.DataFrame, classes, *,
                    per_class: int = TEST_VIDEOS_PER_CLASS, seed: int = 0,
                    fps: pd.DataFrame | None = None, required_fps: float = TEST_FPS,
                    fps_tolerance: float = 0.01, exclude: pd.DataFrame | None = None,
                    report: list | None = None) -> pd.DataFrame:
    """The controlled test set: unanimous videos of the test classes, optional frame-rate
    filter and manual exclusions, then ``per_class`` videos sampled uniformly per class.

    Parameters
    ----------
    video_ratings : DataFrame in the video-ratings layout.
    classes : the test classes (e.g. ``class_filter(...).query('selected').label``).
    per_class : videos per class (paper: 60).
    seed : the sample is a function of the seed and of the candidate *set* (not its order).
    fps : optional DataFrame (filename, fps); videos not at ``required_fps`` (within
        ``fps_tolerance``) or missing from it are removed.
    exclude : optional DataFrame (filename, reason) of manually excluded videos.
    report : optional list that receives dicts (step, label, n_videos) for each step.

    Returns
    -------
    DataFrame
        filename, AVMIT_label, MIT_label, video_location, new_filename, tfrecord_filename;
        ``new_filename`` = ``<label>/<label>_<k>.mp4`` with k = 1..per_class in sample order.
    """
    vr = as_video_ratings(video_ratings)
    classes = list(classes)
    report = report if report is not None else []

    def log(step, frame):
        counts = frame.groupby("AVMIT_label").size().reindex(classes, fill_value=0)
        for label, n in counts.items():
            report.append({"step": step, "label": label, "n_videos": int(n)})

    n = vr["r1"] + vr["r2"] + vr["r3"]
    pool = vr[vr["AVMIT_label"].isin(classes)]
    log("test classes", pool)
    pool = pool[(pool["r3"] == n[pool.index]) & (n[pool.index] >= MIN_RATINGS)]
    log("unanimous (all raters gave 3)", pool)
    if fps is not None:
        rate = pool["filename"].map(fps.set_index("filename")["fps"])
        pool = pool[(rate - required_fps).abs() <= fps_tolerance]
        log(f"{required_fps:g} fps", pool)
    if exclude is not None:
        pool = pool[~pool["filename"].isin(set(exclude["filename"]))]
        log("after manual exclusion", pool)
    short = [(c, int((pool["AVMIT_label"] == c).sum())) for c in classes
             if (pool["AVMIT_label"] == c).sum() < per_class]
    if short:
        listing = ", ".join(f"{c} ({k})" for c, k in short)
        raise DatasetError(
            f"too few candidate test videos for {per_class} per class: {listing}",
            path=video_ratings.attrs.get("path"),
            fix="lower --per-class, or relax the frame-rate filter or exclusions")
    parts = []
    for label in classes:
        candidates = pool[pool["AVMIT_label"] == label].sort_values("filename", kind="stable")
        order = _seeded_order(len(candidates), seed, _STAGE_TEST, _class_key(label))
        chosen = candidates.iloc[order[:per_class]].copy()
        chosen["new_filename"] = [f"{label}/{label}_{k}.mp4" for k in range(1, per_class + 1)]
        parts.append(chosen)
    test = pd.concat(parts, ignore_index=True)[TEST_SET_COLUMNS]
    log("test set", test)
    return test


def _class_key(label: str) -> int:
    """A stable integer per class name: its test-class index, else one derived from the name
    (not Python's salted ``hash``), so samples do not depend on the process."""
    if label in schema.LABEL_TO_INT:
        return schema.LABEL_TO_INT[label]
    return 1000 + int.from_bytes(label.encode("utf-8"), "little") % (2**31)


def _balanced(pool: pd.DataFrame, classes, per_class: int | None, seed, stage: int, what: str,
              path) -> tuple[pd.DataFrame, int]:
    sizes = pool.groupby("AVMIT_label").size().reindex(classes, fill_value=0)
    largest = int(sizes.min())
    if per_class is None:
        per_class = largest
    if per_class > largest or per_class < 2:
        smallest = sizes.idxmin()
        raise DatasetError(
            f"{what}: cannot take {per_class} videos per class; class '{smallest}' has "
            f"{largest}", path=path, fix=f"use at most {largest} per class")
    parts = []
    for label in classes:
        candidates = pool[pool["AVMIT_label"] == label].sort_values("filename", kind="stable")
        order = _seeded_order(len(candidates), seed, stage, _class_key(label))
        parts.append(candidates.iloc[order[:per_class]])
    return pd.concat(parts, ignore_index=True), per_class


def _split(frame: pd.DataFrame, classes, validation_fraction: float, seed, stage: int):
    """Per class, the first round(n * fraction) rows (rows already seeded-shuffled) go to
    validation; both halves are then shuffled across classes."""
    train_parts, val_parts = [], []
    for label in classes:
        rows = frame[frame["AVMIT_label"] == label]
        n_val = int(np.floor(len(rows) * validation_fraction + 0.5))
        val_parts.append(rows.iloc[:n_val])
        train_parts.append(rows.iloc[n_val:])
    train = pd.concat(train_parts, ignore_index=True)
    val = pd.concat(val_parts, ignore_index=True)
    train = train.iloc[_seeded_order(len(train), seed, stage, 998_001)]
    val = val.iloc[_seeded_order(len(val), seed, stage, 998_002)]
    return train.reset_index(drop=True), val.reset_index(drop=True)


def to_avmit_training_layout(frame: pd.DataFrame) -> pd.DataFrame:
    """Video-ratings rows -> the released ``AVMIT_train.csv`` columns."""
    out = frame.rename(columns={v: k for k, v in schema.AVMIT_TRAIN_TO_VIDEO_RATINGS.items()})
    return out[AVMIT_TRAIN_COLUMNS].reset_index(drop=True)


def to_mit16_training_layout(frame: pd.DataFrame) -> pd.DataFrame:
    """Video-ratings rows -> the released ``MIT16_train.csv`` columns (written with the
    unnamed index column, as released)."""
    out = frame.rename(columns={v: k for k, v in schema.MIT16_TO_VIDEO_RATINGS.items()})
    return out[MIT16_TRAIN_COLUMNS].reset_index(drop=True)


def select(video_ratings: pd.DataFrame, *, classes=None, per_class: int = TEST_VIDEOS_PER_CLASS,
           seed: int = 0, fps: pd.DataFrame | None = None, required_fps: float = TEST_FPS,
           exclude: pd.DataFrame | None = None,
           min_class_videos: int = MIN_PROMINENT_VIDEOS_PER_CLASS,
           min_votes: int = MAJORITY_MIN_VOTES, avmit_per_class: int | None = None,
           mit16_per_class: int | None = None,
           validation_fraction: float = VALIDATION_FRACTION) -> Selection:
    """The paper's whole selection: class filter, test set, and both training sets.

    Training sets (test videos removed from both, balanced per class by sampling, then split
    into train/validation per class):

    - AVMIT: videos of the test classes that are prominent by majority.
    - MIT-16: every video of the test classes (relabelled MIT classes included).

    ``avmit_per_class``/``mit16_per_class`` default to the largest number every class can
    fill (the paper: 456 and 1,406); the 90/10 split then gives 410/46 and 1,265/141.
    """
    vr = as_video_ratings(video_ratings)
    path = video_ratings.attrs.get("path")
    v = votes(vr, min_votes=min_votes)
    report: list[dict] = []
    filt = class_filter(v, min_videos=min_class_videos)
    for row in filt.itertuples():
        report.append({"step": "prominent by majority (class filter input)", "label": row.label,
                       "n_videos": int(row.prominent_majority)})
    if classes is None:
        classes = filt.loc[filt["selected"], "label"].tolist()
        if not classes:
            best = filt.sort_values("prominent_majority").iloc[-1]
            raise DatasetError(
                f"no class has {min_class_videos} prominent-by-majority videos (most: "
                f"'{best.label}' with {best.prominent_majority})", path=path,
                fix="lower --min-class-videos or rate more videos")
    classes = sorted(classes, key=lambda c: (schema.LABEL_TO_INT.get(c, len(schema.TEST_CLASSES)), c))
    test = select_test_set(vr, classes, per_class=per_class, seed=seed, fps=fps,
                           required_fps=required_fps, exclude=exclude, report=report)
    test_files = set(test["filename"])
    in_classes = vr[vr["AVMIT_label"].isin(classes) & ~vr["filename"].isin(test_files)]
    avmit_pool = in_classes[(in_classes["r3"] >= min_votes).to_numpy()]
    for name, pool in (("AVMIT pool (prominent by majority, test videos removed)", avmit_pool),
                       ("MIT-16 pool (all videos, test videos removed)", in_classes)):
        for label, n in pool.groupby("AVMIT_label").size().reindex(classes, fill_value=0).items():
            report.append({"step": name, "label": label, "n_videos": int(n)})
    avmit, n_avmit = _balanced(avmit_pool, classes, avmit_per_class, seed, _STAGE_AVMIT,
                               "AVMIT training set", path)
    mit16, n_mit16 = _balanced(in_classes, classes, mit16_per_class, seed, _STAGE_MIT16,
                               "MIT-16 training set", path)
    avmit_train, avmit_val = _split(avmit, classes, validation_fraction, seed, _STAGE_AVMIT)
    mit16_train, mit16_val = _split(mit16, classes, validation_fraction, seed, _STAGE_MIT16)
    for name, frame in (("AVMIT train", avmit_train), ("AVMIT validation", avmit_val),
                        ("MIT-16 train", mit16_train), ("MIT-16 validation", mit16_val)):
        for label, n in frame.groupby("AVMIT_label").size().reindex(classes, fill_value=0).items():
            report.append({"step": name, "label": label, "n_videos": int(n)})
    return Selection(
        test_set=test,
        avmit_train=to_avmit_training_layout(avmit_train),
        avmit_validation=to_avmit_training_layout(avmit_val),
        mit16_train=to_mit16_training_layout(mit16_train),
        mit16_validation=to_mit16_training_layout(mit16_val),
        report=pd.DataFrame(report, columns=["step", "label", "n_videos"]),
    )
