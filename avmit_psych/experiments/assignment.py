"""Which rater rates which video next: a SQLite database (WAL mode) shared by sessions.

Every video needs ``raters_per_video`` distinct raters (paper: 3); nobody rates a video twice
(a unique key on video x participant); ground-truth videos are interspersed at a set rate.
Taking a video is one ``BEGIN IMMEDIATE`` transaction, so two sessions running at once on one
machine can never both take the last open slot of a video. A session that stops with a video
taken gets that same video back when it resumes.
"""
from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

SCHEMA = """
CREATE TABLE IF NOT EXISTS videos (
    filename TEXT PRIMARY KEY, label TEXT NOT NULL, mit_label TEXT NOT NULL,
    video_location TEXT NOT NULL, path TEXT NOT NULL, ground_truth INTEGER,
    position INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS ratings (
    filename TEXT NOT NULL REFERENCES videos(filename), participant TEXT NOT NULL,
    session INTEGER NOT NULL, state TEXT NOT NULL CHECK (state IN ('assigned', 'done')),
    assigned_at REAL NOT NULL, rating INTEGER, PRIMARY KEY (filename, participant));
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass
class Video:
    filename: str
    label: str
    mit_label: str
    video_location: str
    path: str
    ground_truth: int | None


class AssignmentDB:
    """The assignment database at ``path`` (created on first use)."""

    def __init__(self, path, *, raters_per_video: int = 3, timeout_s: float = 30.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(str(self.path), timeout=timeout_s, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        self.conn.executescript(SCHEMA)
        stored = self._meta("raters_per_video")
        if stored is None:
            self.conn.execute("INSERT OR IGNORE INTO meta VALUES ('raters_per_video', ?)",
                              (str(raters_per_video),))
            stored = self._meta("raters_per_video")
        self.raters_per_video = int(stored)

    def _meta(self, key):
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def close(self) -> None:
        self.conn.close()

    def add_videos(self, table: pd.DataFrame, *, seed: int = 0) -> int:
        """Add videos (filename, AVMIT_label, MIT_label, video_location, path[,
        ground_truth]) in a seeded random order; videos already there are kept. Returns the
        number added."""
        order = np.random.default_rng([int(seed), 53]).permutation(len(table))
        start = self.conn.execute("SELECT COALESCE(MAX(position), -1) + 1 FROM videos") \
            .fetchone()[0]
        rows = []
        for pos, i in enumerate(order):
            r = table.iloc[int(i)]
            gt = r.get("ground_truth", None)
            gt = None if gt is None or pd.isna(gt) or str(gt) == "" else int(gt)
            rows.append((str(r["filename"]), str(r["AVMIT_label"]), str(r["MIT_label"]),
                         str(r["video_location"]), str(r["path"]), gt, start + pos))
        self.conn.execute("BEGIN IMMEDIATE")
        before = self.conn.total_changes
        self.conn.executemany("INSERT OR IGNORE INTO videos VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        added = self.conn.total_changes - before
        self.conn.execute("COMMIT")
        return added

    def _video(self, filename: str) -> Video:
        r = self.conn.execute("SELECT filename, label, mit_label, video_location, path, "
                              "ground_truth FROM videos WHERE filename = ?",
                              (filename,)).fetchone()
        return Video(*r)

    def next_video(self, participant: str, session: int, *, ground_truth: bool = False,
                   exclude=()) -> Video | None:
        """The next video for this participant (the one they hold, if any), or None when no
        video needs them. ``ground_truth`` asks for a ground-truth video when one is open;
        ``exclude`` names videos not to offer (e.g. ones that failed to play)."""
        exclude = tuple(exclude)
        skip = f" AND v.filename NOT IN ({','.join('?' * len(exclude))})" if exclude else ""
        held = self.conn.execute(
            "SELECT filename FROM ratings WHERE participant = ? AND state = 'assigned' "
            "ORDER BY assigned_at LIMIT 1", (participant,)).fetchone()
        if held:
            return self._video(held[0])
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            open_videos = f"""
                SELECT v.filename FROM videos v
                WHERE (SELECT COUNT(*) FROM ratings r WHERE r.filename = v.filename) < ?
                  AND NOT EXISTS (SELECT 1 FROM ratings r WHERE r.filename = v.filename
                                  AND r.participant = ?)
                  AND (v.ground_truth IS NOT NULL) = ?{skip}
                ORDER BY (SELECT COUNT(*) FROM ratings r WHERE r.filename = v.filename) DESC,
                         v.position LIMIT 1"""
            row = None
            for want_gt in ((True, False) if ground_truth else (False, True)):
                row = self.conn.execute(open_videos, (self.raters_per_video, participant,
                                                      int(want_gt), *exclude)).fetchone()
                if row:
                    break
            if row is None:
                self.conn.execute("COMMIT")
                return None
            self.conn.execute("INSERT INTO ratings VALUES (?, ?, ?, 'assigned', ?, NULL)",
                              (row[0], participant, int(session), time.time()))
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        return self._video(row[0])

    def complete(self, filename: str, participant: str, rating: int) -> bool:
        """Record the rating; returns whether it matched a ground-truth rating."""
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.execute("UPDATE ratings SET state = 'done', rating = ? WHERE filename = ? "
                          "AND participant = ?", (int(rating), filename, participant))
        self.conn.execute("COMMIT")
        gt = self.conn.execute("SELECT ground_truth FROM videos WHERE filename = ?",
                               (filename,)).fetchone()
        return gt is not None and gt[0] is not None and int(gt[0]) == int(rating)

    def release(self, filename: str, participant: str) -> None:
        """Give back a taken video (it could not be played): someone else may rate it."""
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.execute("DELETE FROM ratings WHERE filename = ? AND participant = ? AND "
                          "state = 'assigned'", (filename, participant))
        self.conn.execute("COMMIT")

    def reconcile(self, participant: str, session: int, rated: dict[str, int]) -> int:
        """After a crash: ratings already in the data file (filename -> rating) that the
        database still shows as taken or missing are marked done. Returns how many."""
        fixed = 0
        for filename, rating in rated.items():
            state = self.conn.execute("SELECT state FROM ratings WHERE filename = ? AND "
                                      "participant = ?", (filename, participant)).fetchone()
            if state is None:
                self.conn.execute("INSERT OR IGNORE INTO ratings VALUES (?, ?, ?, 'done', ?, ?)",
                                  (filename, participant, int(session), time.time(),
                                   int(rating)))
                fixed += 1
            elif state[0] != "done":
                self.complete(filename, participant, rating)
                fixed += 1
        return fixed

    def matches(self, participant: str) -> int:
        """How many of the participant's ratings matched ground truth (all sessions)."""
        return int(self.conn.execute(
            "SELECT COUNT(*) FROM ratings r JOIN videos v ON v.filename = r.filename "
            "WHERE r.participant = ? AND r.state = 'done' AND v.ground_truth IS NOT NULL "
            "AND r.rating = v.ground_truth", (participant,)).fetchone()[0])

    def progress(self) -> dict:
        n_videos = self.conn.execute("SELECT COUNT(*) FROM videos").fetchone()[0]
        done = self.conn.execute("SELECT COUNT(*) FROM ratings WHERE state = 'done'") \
            .fetchone()[0]
        complete = self.conn.execute(
            "SELECT COUNT(*) FROM (SELECT filename FROM ratings WHERE state = 'done' "
            "GROUP BY filename HAVING COUNT(*) >= ?)", (self.raters_per_video,)).fetchone()[0]
        return {"videos": n_videos, "ratings_done": done, "videos_complete": complete,
                "ratings_needed": n_videos * self.raters_per_video}

    def ratings(self) -> pd.DataFrame:
        return pd.read_sql_query("SELECT * FROM ratings ORDER BY assigned_at", self.conn)
