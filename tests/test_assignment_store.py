"""The annotation task's assignment store on SQLite and PostgreSQL (issue 16, point 3).

Every test runs on both backends: a SQLite file, and a fresh database on the throwaway
PostgreSQL server of ``tests/services.py``. Concurrent sessions are separate OS processes
(multiprocessing, spawn), so the database's own locking is what keeps them apart.

- 8 sessions at once over 40 videos with 3 raters each (each opening a fresh store and adding
  the pool, as the annotation task does): every video ends with exactly 3 distinct raters,
  nobody is handed a video twice.
- A session SIGKILLed while holding leases: its videos come back after the expiry, not before
  (a second killed session with a long lease keeps its video throughout).
- A live session renews its lease; a lease that expired while others needed the video is lost.
- complete/release are one transaction each: an invalid rating, an unknown video or a failure
  after the write leaves the rows as they were and no lock behind.
- reconcile (resume from a data file) never gives a video more than raters_per_video raters,
  also when several sessions reconcile the same videos at once.
- A SQLite file written by the first store (no leases) opens and is migrated in place.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import queue
import random
import signal
import sqlite3
import subprocess
import sys
import time
import warnings
from collections import Counter

import pandas as pd
import pytest
import sqlalchemy as sa

from avmit_psych.dataset.schema import DatasetError
from avmit_psych.experiments.assignment import AssignmentDB, LeaseLost, database_url
from tests.conftest import REPO


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'assignment.sqlite'}"
    return request.getfixturevalue("postgres_url")


def _videos(n, gt_every=0):
    return pd.DataFrame({
        "filename": [f"barking/v{i:03d}.mp4" for i in range(n)], "AVMIT_label": "barking",
        "MIT_label": "barking", "video_location": "training",
        "path": [f"/videos/v{i:03d}.mp4" for i in range(n)],
        "ground_truth": [(3 if gt_every and i % gt_every == 0 else None) for i in range(n)]})


def _expiry(db, filename, participant):
    r = db.ratings()
    row = r[(r["filename"] == filename) & (r["participant"] == participant)]
    assert len(row) == 1, r
    return float(row["expires_at"].iloc[0])


def _drain(db, participant, **kw):
    """Take and rate videos until none is left for the participant."""
    got = []
    while (v := db.next_video(participant, 1, **kw)) is not None:
        assert v.filename not in got
        got.append(v.filename)
        db.complete(v.filename, participant, 2)
    return got


# -- processes --------------------------------------------------------------------------------
def _session(url, participant, ready, start, out):
    # as the annotation task does: every session opens the store and adds the pool; the
    # first creates the schema, the others find it (all at once: nobody has made it yet)
    db = AssignmentDB(url, raters_per_video=3)
    added = db.add_videos(_videos(40, gt_every=5), seed=0)
    ready.put(participant)
    start.wait(300)
    rng = random.Random(participant)
    got = []
    while (v := db.next_video(participant, 1, ground_truth=rng.random() < 0.2)) is not None:
        got.append(v.filename)
        time.sleep(rng.uniform(0, 0.01))  # the trial
        db.complete(v.filename, participant, rng.choice((1, 2, 3)))
    out.put((participant, added, got))


def _reconciler(url, participant, filenames, ready, start, out):
    db = AssignmentDB(url)
    ready.put(participant)
    start.wait(300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out.put((participant, db.reconcile(participant, 1, {f: 2 for f in filenames})))


def _holder(url, lease_s, participants, avoid, out):
    """A cubicle that takes a video for each participant and then hangs (until killed).
    ``avoid``: videos it must not take (if a lease expired before it got going)."""
    db = AssignmentDB(url, lease_s=lease_s)
    taken = []
    for p in participants:
        taken.append(db.next_video(p, 1, exclude=set(avoid) | set(taken)).filename)
    out.put(taken)
    time.sleep(3600)


def _together(target, arg_lists):
    """Start one spawned process per argument list; release them at once; their results."""
    ctx = mp.get_context("spawn")
    ready, start, out = ctx.Queue(), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args, ready, start, out)) for args in arg_lists]
    for p in procs:
        p.start()
    try:
        _collect(ready, procs)
        start.set()
        results = _collect(out, procs)
        for p in procs:
            p.join(60)
        assert [p.exitcode for p in procs] == [0] * len(procs)
        return results
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()


def _collect(q, procs):
    got = []
    while len(got) < len(procs):
        try:
            got.append(q.get(timeout=1))
        except queue.Empty:
            dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            assert not dead, f"a session process failed (exit codes {dead})"
    return got


# -- the acceptance tests -------------------------------------------------------------------------
def test_eight_sessions_at_once_give_every_video_exactly_three_raters(db_url):
    participants = [f"P{i}" for i in range(8)]
    ran = _together(_session, [(db_url, p) for p in participants])
    assert sorted(added for _, added, _ in ran) == [0] * 7 + [40]
    results = {p: got for p, _, got in ran}
    db = AssignmentDB(db_url)
    assert db.raters_per_video == 3
    for p, got in results.items():
        assert len(got) == len(set(got)), f"{p} was handed a video twice"
    handed = Counter(f for got in results.values() for f in got)
    assert len(handed) == 40 and set(handed.values()) == {3}
    r = db.ratings()
    assert (r["state"] == "done").all() and len(r) == 120
    assert not r.duplicated(["filename", "participant"]).any()
    assert set(r.groupby("filename")["participant"].nunique()) == {3}
    for p, got in results.items():   # the database agrees with what each session rated
        assert sorted(r.loc[r["participant"] == p, "filename"]) == sorted(got)
    assert db.progress() == {"videos": 40, "ratings_done": 120, "videos_complete": 40,
                             "ratings_needed": 120, "leases": 0}


def test_a_killed_sessions_videos_return_after_the_expiry_not_before(db_url):
    db = AssignmentDB(db_url, raters_per_video=1)
    db.add_videos(_videos(6))
    ctx = mp.get_context("spawn")
    taken = {}
    for name, lease_s, participants in (("long", 600.0, ["L1"]), ("short", 2.0, ["S1", "S2"])):
        out = ctx.Queue()
        avoid = [f for held in taken.values() for f in held]
        proc = ctx.Process(target=_holder, args=(db_url, lease_s, participants, avoid, out))
        proc.start()
        taken[name] = _collect(out, [proc])[0]
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(60)
        assert proc.exitcode == -signal.SIGKILL
    short, long = set(taken["short"]), set(taken["long"])
    assert len(short) == 2 and len(long) == 1 and not short & long
    free = set(_videos(6)["filename"]) - short - long
    short_expiry = [_expiry(db, f, p) for f, p in zip(taken["short"], ["S1", "S2"])]

    got = _drain(db, "P1")
    checked_at = time.time()
    assert free <= set(got) and not set(got) & long
    if checked_at < min(short_expiry):   # all of it ran while the short leases were live
        assert set(got) == free
    while time.time() <= max(short_expiry) + 0.05:
        time.sleep(0.1)
    got += _drain(db, "P1")
    assert set(got) == free | short and len(got) == 5   # the long lease is still live
    assert db.next_video("P2", 1) is None

    # the killed sessions resume: S1's video went to P1 meanwhile; L1 gets its video back
    assert db.next_video("S1", 1) is None
    assert db.next_video("L1", 1).filename == taken["long"][0]
    db.complete(taken["long"][0], "L1", 3)
    r = db.ratings()
    assert (r["state"] == "done").all() and len(r) == 6
    assert set(r.groupby("filename")["participant"].nunique()) == {1}


def test_a_live_session_renews_its_lease_and_an_expired_one_is_lost(db_url):
    db = AssignmentDB(db_url, raters_per_video=1, lease_s=30)
    db.add_videos(_videos(3))
    v = db.next_video("A", 1)
    first = _expiry(db, v.filename, "A")
    time.sleep(0.05)
    assert db.next_video("A", 1).filename == v.filename   # its held video, the lease pushed on
    second = _expiry(db, v.filename, "A")
    time.sleep(0.05)
    assert db.renew("A", v.filename) is True
    assert first < second < _expiry(db, v.filename, "A")

    quick = AssignmentDB(db_url, lease_s=0.3)
    w = quick.next_video("B", 1)
    third = next(iter({f"barking/v{i:03d}.mp4" for i in range(3)} - {v.filename, w.filename}))
    while time.time() <= _expiry(quick, w.filename, "B") + 0.05:
        time.sleep(0.05)
    assert quick.next_video("B", 1).filename == w.filename   # expired, but nobody needed it
    while time.time() <= _expiry(quick, w.filename, "B") + 0.05:
        time.sleep(0.05)
    assert db.next_video("C", 1, exclude={third}).filename == w.filename  # now someone did
    assert quick.renew("B", w.filename) is False
    with pytest.raises(LeaseLost, match="B does not hold"):
        quick.complete(w.filename, "B", 2)
    assert quick.next_video("B", 1).filename == third
    r = db.ratings()
    assert sorted(r["participant"]) == ["A", "B", "C"] and r["filename"].is_unique


def test_complete_and_release_roll_back_on_error(db_url):
    db = AssignmentDB(db_url, raters_per_video=2, timeout_s=2)
    db.add_videos(_videos(3))
    v = db.next_video("P1", 1)
    before = db.ratings()
    with pytest.raises(DatasetError, match=r"rating 7 of barking/v00\d\.mp4 by P1 is not 1, 2 "
                                           r"or 3; nothing was recorded.*Fix: "):
        db.complete(v.filename, "P1", 7)                     # the CHECK constraint refuses it
    with pytest.raises(DatasetError, match="rating 'x' of"):
        db.complete(v.filename, "P1", "x")
    with pytest.raises(DatasetError, match="nope.mp4 is not in the assignment database"):
        db.complete("nope.mp4", "P1", 2)
    pd.testing.assert_frame_equal(db.ratings(), before)
    # no lock was left behind: another connection takes the same video at once
    other = AssignmentDB(db_url, timeout_s=2, max_attempts=1)
    assert other.next_video("P2", 1, exclude=set(_videos(3)["filename"]) - {v.filename}) \
        .filename == v.filename
    other.release(v.filename, "P2")
    other.close()

    # a failure after the write, before the commit (a dropped connection, a crash in between)
    def fail_after(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith(("UPDATE RATINGS", "DELETE FROM RATINGS")):
            raise RuntimeError("injected failure after " + statement.split()[0])
    before = db.ratings()
    sa.event.listen(db.engine, "after_cursor_execute", fail_after)
    try:
        with pytest.raises(RuntimeError, match="after UPDATE"):
            db.complete(v.filename, "P1", 3)
        with pytest.raises(RuntimeError, match="after DELETE"):
            db.release(v.filename, "P1")
    finally:
        sa.event.remove(db.engine, "after_cursor_execute", fail_after)
    pd.testing.assert_frame_equal(db.ratings(), before)
    assert before.set_index("participant").loc["P1", "state"] == "assigned"

    db.release(v.filename, "P1")
    assert db.ratings().empty
    w = db.next_video("P1", 1)
    assert db.complete(w.filename, "P1", 3) is False
    assert db.ratings()[["state", "rating"]].values.tolist() == [["done", 3]]


def test_reconcile_never_exceeds_raters_per_video(db_url):
    db = AssignmentDB(db_url, raters_per_video=2)
    db.add_videos(_videos(3))
    v, w, x = sorted(_videos(3)["filename"])
    assert db.reconcile("A", 1, {v: 1}) == 1 and db.reconcile("B", 1, {v: 2}) == 1
    held = db.next_video("C", 1)                       # C holds w or x (v is full)
    assert held.filename in (w, x)
    with pytest.warns(UserWarning, match=rf"1 rating\(s\) by C not recorded .*: {v}$"):
        assert db.reconcile("C", 1, {v: 3, w: 2, x: 1}) == 2
    r = db.ratings()
    assert sorted(r.loc[r["filename"] == v, "participant"]) == ["A", "B"]
    assert (r["state"] == "done").all() and len(r) == 4
    assert db.reconcile("C", 1, {w: 2, x: 1}) == 0     # already recorded: nothing to do
    with pytest.raises(DatasetError, match="rating 5 of .* by D .*nothing was reconciled"):
        db.reconcile("D", 2, {w: 1, x: 5})
    pd.testing.assert_frame_equal(db.ratings(), r)


def test_sessions_reconciling_the_same_videos_at_once_stop_at_the_limit(db_url):
    db = AssignmentDB(db_url, raters_per_video=3)
    db.add_videos(_videos(5))
    names = sorted(_videos(5)["filename"])
    results = dict(_together(_reconciler, [(db_url, f"R{i}", names) for i in range(6)]))
    assert sum(results.values()) == 15
    r = db.ratings()
    assert set(r.groupby("filename")["participant"].nunique()) == {3} and len(r) == 15


# -- URLs, the first store's files, the annotation task's flags ----------------------------------
def test_database_urls(tmp_path):
    assert database_url(tmp_path / "a.sqlite").drivername == "sqlite"
    assert database_url(tmp_path / "a.sqlite").database == str(tmp_path / "a.sqlite")
    assert database_url(f"sqlite:///{tmp_path}/a.sqlite").database == f"{tmp_path}/a.sqlite"
    for bare in ("postgresql://lab:secret@db.lab:5433/avmit",
                 "postgres://lab:secret@db.lab:5433/avmit"):
        url = database_url(bare)
        assert url.drivername == "postgresql+psycopg" and url.password == "secret"
        assert (url.host, url.port, url.database) == ("db.lab", 5433, "avmit")
    with pytest.raises(DatasetError, match=r"unsupported database 'mysql' .*Fix: give sqlite"):
        database_url("mysql://lab:secret@db.lab/avmit")
    with pytest.raises(DatasetError) as err:
        database_url("mysql://lab:secret@db.lab/avmit")
    assert "secret" not in str(err.value) and "\n" not in str(err.value)
    # a plain path keeps working and writes the same file
    with AssignmentDB(tmp_path / "sub" / "a.sqlite", raters_per_video=1) as db:
        db.add_videos(_videos(2))
    with AssignmentDB(f"sqlite:///{tmp_path}/sub/a.sqlite") as db:
        assert db.raters_per_video == 1 and db.progress()["videos"] == 2


def test_bare_postgresql_url_uses_psycopg_and_a_dead_server_is_one_line(postgres_url):
    from tests.services import free_port
    bare = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    with AssignmentDB(bare, raters_per_video=1) as db:
        assert db.engine.dialect.driver == "psycopg"
        db.add_videos(_videos(1))
        assert db.next_video("P1", 1).filename == "barking/v000.mp4"
    with pytest.raises(DatasetError, match="cannot open the assignment database: .*Fix: check "
                                           "that the server runs") as err:
        AssignmentDB(f"postgresql://avmit@127.0.0.1:{free_port()}/nothing", timeout_s=2)
    assert "\n" not in str(err.value)


OLD_SCHEMA = """
CREATE TABLE videos (
    filename TEXT PRIMARY KEY, label TEXT NOT NULL, mit_label TEXT NOT NULL,
    video_location TEXT NOT NULL, path TEXT NOT NULL, ground_truth INTEGER,
    position INTEGER NOT NULL);
CREATE TABLE ratings (
    filename TEXT NOT NULL REFERENCES videos(filename), participant TEXT NOT NULL,
    session INTEGER NOT NULL, state TEXT NOT NULL CHECK (state IN ('assigned', 'done')),
    assigned_at REAL NOT NULL, rating INTEGER, PRIMARY KEY (filename, participant));
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def test_a_file_of_the_first_store_opens_and_is_migrated(tmp_path):
    path = tmp_path / "annotation.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(OLD_SCHEMA)
    conn.executemany("INSERT INTO videos VALUES (?, 'barking', 'barking', 'training', ?, ?, ?)",
                     [(f"v{i}.mp4", f"/v{i}.mp4", 3 if i == 0 else None, i) for i in range(4)])
    now = time.time()
    conn.executemany("INSERT INTO ratings VALUES (?, ?, 1, ?, ?, ?)", [
        ("v0.mp4", "P1", "done", now - 9000, 3),
        ("v1.mp4", "P2", "assigned", now - 7200, None),   # a cubicle that crashed 2 h ago
        ("v2.mp4", "P3", "assigned", now - 10, None)])    # a session running now
    conn.execute("INSERT INTO meta VALUES ('raters_per_video', '1')")
    conn.commit()
    conn.close()

    db = AssignmentDB(path, raters_per_video=3)
    assert db.raters_per_video == 1 and db.matches("P1") == 1
    r = db.ratings().set_index("filename")
    assert r.loc["v0.mp4", "rating"] == 3 and pd.isna(r.loc["v0.mp4", "expires_at"])
    assert r.loc["v1.mp4", "expires_at"] == pytest.approx(now - 7200 + 1800)
    assert db.next_video("P4", 1).filename == "v1.mp4"    # the stale lease is back in the pool
    db.complete("v1.mp4", "P4", 2)
    assert db.next_video("P4", 1).filename == "v3.mp4"    # v2 is still leased to P3
    assert db.next_video("P3", 1).filename == "v2.mp4"
    with pytest.raises(DatasetError, match="rating 9"):
        db.complete("v2.mp4", "P3", 9)                     # the new constraints are in place
    db.close()
    columns = [c[1] for c in sqlite3.connect(path).execute("PRAGMA table_info(ratings)")]
    assert columns[-1] == "expires_at"
    assert AssignmentDB(path).progress()["videos"] == 4   # opens again, nothing to migrate


def _annotation_task():
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "annotation_task_script", REPO / "experiments" / "annotation_task.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_annotation_task_db_and_lease_settings(tmp_path):
    task = _annotation_task()
    cfg = task.load_config(REPO / "experiments" / "annotation.yaml")
    url, lease = task.store_settings(task.parse_args(["--data-dir", str(tmp_path)]), cfg)
    assert url == f"sqlite:///{tmp_path / 'annotation.sqlite'}" and lease == 1800
    args = task.parse_args(["--db", "postgresql://lab@db.lab/avmit", "--lease-minutes", "0.5"])
    assert task.store_settings(args, cfg) == ("postgresql+psycopg://lab@db.lab/avmit", 30.0)
    cfg.update(database="shared/annotation.sqlite", lease_minutes=45)
    url, lease = task.store_settings(task.parse_args([]), cfg)
    assert url == f"sqlite:///{REPO / 'experiments' / 'shared' / 'annotation.sqlite'}"
    assert lease == 45 * 60
    cfg.update(lease_minutes=0)
    with pytest.raises(DatasetError, match=r"annotation.yaml, column 'lease_minutes': "
                                           r"lease_minutes 0 is not a positive number"):
        task.store_settings(task.parse_args([]), cfg)


def test_annotation_task_bad_db_flags_are_one_line_and_touch_nothing(tmp_path):
    script = REPO / "experiments" / "annotation_task.py"
    base = [sys.executable, str(script), "--participant", "P01", "--session", "1",
            "--data-dir", str(tmp_path / "data")]
    bad = subprocess.run(base + ["--db", "mysql://lab@db.lab/avmit"], capture_output=True,
                         text=True, cwd=REPO, timeout=300)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "error: --db: unsupported database 'mysql' in mysql://lab@db.lab/avmit. Fix: give "
        "sqlite:///path/to/annotation.sqlite (or a plain path) or "
        "postgresql://user@host:port/dbname"]
    lease = subprocess.run(base + ["--lease-minutes", "0"], capture_output=True, text=True,
                           cwd=REPO, timeout=300)
    assert lease.returncode == 2 and "'0' is not a positive number of minutes" in lease.stderr
    assert not (tmp_path / "data").exists()


@pytest.mark.skipif(not os.environ.get("DISPLAY"),
                    reason="needs a display: run under xvfb-run (scripts/test.sh)")
def test_annotation_task_runs_against_postgresql(postgres_url, tmp_path):
    from avmit_psych.experiments.demo_pool import ensure_demo_pool
    demo = tmp_path / "data" / "demo_pool"
    files = ensure_demo_pool(demo)
    pool = pd.read_csv(files["pool"], keep_default_na=False).iloc[:4]
    pool["path"] = [str(demo / p) for p in pool["path"]]
    pool.to_csv(tmp_path / "pool.csv", index=False)
    config = tmp_path / "small.yaml"
    config.write_text(f"task: annotation\npool_csv: {tmp_path / 'pool.csv'}\n"
                      "raters_per_video: 1\nwindow: {size: [800, 600], fullscr: false}\n")
    bare = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    proc = subprocess.run(
        [sys.executable, str(REPO / "experiments" / "annotation_task.py"), "--participant",
         "G01", "--session", "1", "--simulate", "2", "--fast", "--windowed", "--data-dir",
         str(tmp_path / "data"), "--config", str(config), "--db", bare, "--lease-minutes", "5"],
        capture_output=True, text=True, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = pd.read_csv(tmp_path / "data" / "sub-G01_ses-1_task-annotation_beh.csv")
    assert sorted(rows["filename"]) == sorted(pool["filename"])
    assert not (tmp_path / "data" / "annotation.sqlite").exists()
    done = AssignmentDB(postgres_url).ratings()
    assert (done["state"] == "done").all() and len(done) == 4
    merged = rows.merge(done, on="filename", suffixes=("", "_db"))
    assert (merged["rating"] == merged["rating_db"]).all()
