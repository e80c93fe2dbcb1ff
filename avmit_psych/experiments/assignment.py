"""Which rater rates which video next: the annotation task's assignment store, shared by sessions.

Every video needs ``raters_per_video`` distinct raters (paper: 3); nobody rates a video twice
(a primary key on video x participant); ground-truth videos are interspersed at a set rate. One
code path on SQLAlchemy core serves two backends, chosen by the database URL:

- ``sqlite:///path/annotation.sqlite`` (the default; a plain path means the same): one file in
  WAL mode, for sessions on one machine. Not for a network share (SQLite's locks do not hold
  there).
- ``postgresql://user@host/dbname`` (``postgresql+psycopg://`` is the same; the psycopg 3
  driver): one server for the cubicles of a lab. A password belongs in ``~/.pgpass`` or
  ``PGPASSWORD``, not in a config file.

The schema is created when missing; a SQLite file written by the earlier store (no leases) is
migrated in place on first open, its taken videos getting a lease from their ``assigned_at``.

Leases. A video handed to a session is a lease that expires ``lease_s`` after it was taken or
last renewed (default 30 min; the annotation task's ``--lease-minutes``). A live lease counts
as one of the video's raters; an expired one does not, so the videos of a crashed cubicle go
back to the pool once their leases expire, and the next rater to take such a video removes the
stale lease. A running session renews its lease whenever it asks for its next video (it gets
its held video back, the expiry pushed on) and before it records a rating (``renew``); a
session that resumes after its lease expired keeps the video if nobody else needed it. Times
are the database's clock, so cubicles with drifting clocks agree.

Consistency. Every public method is one transaction, committed at its end and rolled back on
any error: a failed ``complete`` or ``release`` leaves no partial state and no lock behind. A
video is never given more than ``raters_per_video`` distinct raters counting completed ratings
and live leases, by ``next_video`` or by ``reconcile`` (resuming from a data file), and never
to a rater who rated or holds it:

- SQLite: every writing transaction starts with ``BEGIN IMMEDIATE`` (one writer at a time, the
  check and the insert in one step); readers are not blocked (WAL).
- PostgreSQL (READ COMMITTED): the candidate video is locked with ``SELECT ... FOR UPDATE SKIP
  LOCKED`` (sessions in other cubicles pass to the next open video instead of queueing), and
  its raters are counted again after the lock is held (a fresh snapshot), so a rater that
  committed in between is seen; anything that changes a video's raters (``complete``,
  ``reconcile``, ``renew``) locks the video's row first. When every open video is locked by
  another session, the session waits for one rather than reporting that none is left.

Busy databases (SQLite ``database is locked``), serialization failures, deadlocks and lock
timeouts (PostgreSQL ``40001``, ``40P01``, ``55P03``) and dropped connections are retried with
a short random back-off; a store that stays busy raises ``AssignmentBusy``.
"""
from __future__ import annotations

import random
import time
import warnings
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from ..dataset.schema import ANNOTATION_POOL_COLUMNS, DatasetError

#: A lease lasts this long unless renewed (seconds).
DEFAULT_LEASE_S = 30 * 60.0
SCHEMA_VERSION = "2"
#: PostgreSQL advisory lock taken while the schema is created and while videos are added.
_ADVISORY_KEY = 0x41564D4954
_TRANSIENT_SQLSTATES = {"40001", "40P01", "55P03"}
_URL_FIX = ("give sqlite:///path/to/annotation.sqlite (or a plain path) or "
            "postgresql://user@host:port/dbname")

metadata = sa.MetaData()
videos = sa.Table(
    "videos", metadata,
    sa.Column("filename", sa.Text, primary_key=True),
    sa.Column("label", sa.Text, nullable=False),
    sa.Column("mit_label", sa.Text, nullable=False),
    sa.Column("video_location", sa.Text, nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("ground_truth", sa.Integer),
    sa.Column("position", sa.Integer, nullable=False))
ratings = sa.Table(
    "ratings", metadata,
    sa.Column("filename", sa.Text, sa.ForeignKey("videos.filename"), primary_key=True),
    sa.Column("participant", sa.Text, primary_key=True),
    sa.Column("session", sa.Integer, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("assigned_at", sa.Float, nullable=False),    # seconds since the epoch (db clock)
    sa.Column("rating", sa.Integer),
    sa.Column("expires_at", sa.Float),                     # a lease's expiry; NULL once done
    sa.CheckConstraint("state IN ('assigned', 'done')", name="ck_ratings_state"),
    sa.CheckConstraint("rating IS NULL OR rating IN (1, 2, 3)", name="ck_ratings_rating"),
    sa.CheckConstraint("(state = 'assigned' AND rating IS NULL AND expires_at IS NOT NULL) OR "
                       "(state = 'done' AND rating IS NOT NULL)", name="ck_ratings_lease"),
    sa.Index("ix_ratings_participant_state", "participant", "state"))
meta = sa.Table(
    "meta", metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False))


@dataclass
class Video:
    filename: str
    label: str
    mit_label: str
    video_location: str
    path: str
    ground_truth: int | None


class LeaseLost(RuntimeError):
    """The participant's lease on a video expired and the video went to other raters: their
    rating of it cannot be recorded without giving it one rater too many."""


class AssignmentBusy(RuntimeError):
    """The database stayed locked or kept failing transiently through every retry."""


class _TryAgain(Exception):
    """The transaction saw a state that changed under it: roll back and run it again."""


def database_url(db) -> sa.engine.URL:
    """The SQLAlchemy URL for ``db``: a plain path is a SQLite file; ``postgresql://`` and
    ``postgres://`` get the psycopg 3 driver. Anything else is a ``DatasetError``."""
    if isinstance(db, sa.engine.URL):
        return database_url(db.render_as_string(hide_password=False))
    text = str(db).strip()
    if "://" not in text:
        if not text:
            raise DatasetError("empty database location", fix=_URL_FIX)
        return sa.engine.URL.create("sqlite", database=str(Path(text).expanduser()))
    try:
        url = sa.engine.make_url(text)
    except sa_exc.ArgumentError as err:
        raise DatasetError(f"not a database URL: {err}", fix=_URL_FIX) from None
    if url.drivername in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() in ("postgresql", "sqlite"):
        return url
    raise DatasetError(f"unsupported database '{url.get_backend_name()}' in "
                       f"{url.render_as_string(hide_password=True)}", fix=_URL_FIX)


def _sqlstate(err: sa_exc.DBAPIError) -> str | None:
    orig = getattr(err, "orig", None)
    return getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)


def _is_transient(err: sa_exc.DBAPIError) -> bool:
    if err.connection_invalidated or _sqlstate(err) in _TRANSIENT_SQLSTATES:
        return True
    message = str(getattr(err, "orig", err)).lower()
    return "database is locked" in message or "database table is locked" in message \
        or "database is busy" in message


def _is_unique_violation(err: sa_exc.DBAPIError) -> bool:
    return _sqlstate(err) == "23505" or "unique constraint failed" in str(err.orig).lower()


def _live(now: float):
    """Ratings that count towards a video's raters at time ``now``: done, or a live lease."""
    return sa.or_(ratings.c.state == "done", ratings.c.expires_at >= now)


class AssignmentDB:
    """The assignment store at ``db`` (a SQLite path or URL, or a PostgreSQL URL), created on
    first use.

    Parameters
    ----------
    db : str or Path
        ``sqlite:///path``, a plain path (SQLite), or ``postgresql://user@host:port/dbname``.
    raters_per_video : int
        Distinct raters each video needs (paper: 3). Stored when the database is created; an
        existing database keeps its own value.
    lease_s : float
        Seconds a taken video stays reserved for its session unless renewed (default 30 min).
    timeout_s : float
        How long one attempt waits for a lock (SQLite busy timeout, PostgreSQL lock and connect
        timeouts) before it is retried.
    max_attempts : int
        Attempts of one transaction that failed transiently (busy, serialization failure,
        deadlock, lock timeout, dropped connection) before ``AssignmentBusy`` is raised.

    Examples
    --------
    >>> db = AssignmentDB("postgresql://avmit@db.lab/avmit_annotation")  # doctest: +SKIP
    >>> db.add_videos(pool)                                              # doctest: +SKIP
    >>> video = db.next_video("P01", 1)                                  # doctest: +SKIP
    >>> db.complete(video.filename, "P01", 3)                            # doctest: +SKIP
    """

    def __init__(self, db, *, raters_per_video: int = 3, lease_s: float = DEFAULT_LEASE_S,
                 timeout_s: float = 30.0, max_attempts: int = 60):
        if not lease_s > 0:
            raise ValueError(f"lease_s must be a positive number of seconds, not {lease_s!r}")
        self.url = database_url(db)
        self.where = self.url.render_as_string(hide_password=True)
        self.lease_s = float(lease_s)
        self.timeout_s = float(timeout_s)
        self.max_attempts = int(max_attempts)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self.path = Path(self.url.database) if self.is_sqlite and self.url.database else None
        if self.is_sqlite:
            self.where = str(self.path) if self.path else self.where
        self.engine = self._create_engine()
        try:
            self.raters_per_video = self._transaction(
                lambda conn: self._create_schema(conn, int(raters_per_video)))
        except sa_exc.OperationalError as err:
            self.engine.dispose()
            first = str(err.orig).strip().splitlines()[0] if err.orig else str(err)
            raise DatasetError(f"cannot open the assignment database: {first}", path=self.where,
                               fix="check that the server runs and the URL's user, host, port "
                                   "and database name (a password goes in ~/.pgpass or "
                                   "PGPASSWORD)" if not self.is_sqlite else
                                   "check that the folder is writable") from None

    # -- connections and transactions ---------------------------------------------------------
    def _create_engine(self) -> sa.Engine:
        if self.is_sqlite:
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            engine = sa.create_engine(self.url, connect_args={"timeout": self.timeout_s})

            @sa.event.listens_for(engine, "connect")
            def _on_connect(dbapi_conn, record):
                dbapi_conn.isolation_level = None  # the driver sends no BEGIN: we send our own
                cursor = dbapi_conn.cursor()
                for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON"):
                    cursor.execute(f"PRAGMA {pragma}")
                cursor.close()

            @sa.event.listens_for(engine, "begin")
            def _on_begin(conn):
                # a writer takes the write lock before it reads, so its checks stay true
                conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get("avmit_read")
                                     else "BEGIN IMMEDIATE")
            return engine
        if self.url.drivername == "postgresql+psycopg" and find_spec("psycopg") is None:
            raise DatasetError("the PostgreSQL driver psycopg is not installed", path=self.where,
                               fix="pip install 'psycopg[binary]' (see requirements.txt)")
        ms = int(self.timeout_s * 1000)
        # a client that dies inside a transaction cannot hold a video's lock for long
        options = f"-c lock_timeout={ms} -c idle_in_transaction_session_timeout={max(ms, 60000)}"
        return sa.create_engine(self.url, pool_pre_ping=True, pool_size=2, max_overflow=4,
                                connect_args={"connect_timeout": max(1, int(self.timeout_s)),
                                              "options": options})

    def _transaction(self, work, *, read: bool = False, retry_unique: bool = False):
        """Run ``work(conn)`` in one transaction (committed when it returns, rolled back when it
        raises); transient failures run it again from the start."""
        delay, failures, races = 0.005, 0, 0
        while True:
            try:
                with self.engine.connect() as conn:
                    if read:
                        conn.execution_options(avmit_read=True)
                    with conn.begin():
                        return work(conn)
            except _TryAgain:
                races += 1
                if races > 1000:
                    raise AssignmentBusy(f"{self.where}: the state kept changing under 1000 "
                                         "attempts in a row") from None
                continue
            except sa_exc.DBAPIError as err:
                if not (_is_transient(err) or retry_unique and _is_unique_violation(err)):
                    raise
                failures += 1
                if failures >= self.max_attempts:
                    raise AssignmentBusy(
                        f"{self.where}: still busy after {failures} attempts "
                        f"({str(err.orig).strip().splitlines()[0]}). Fix: look for a process "
                        "holding a long transaction on the database") from err
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 0.25)

    def _now(self, conn) -> float:
        """The database's clock, in seconds since the epoch."""
        sql = ("SELECT (julianday('now') - 2440587.5) * 86400.0" if self.is_sqlite else
               "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)")
        return float(conn.exec_driver_sql(sql).scalar_one())

    def _serialize(self, conn) -> None:
        """PostgreSQL: one such transaction at a time (SQLite's BEGIN IMMEDIATE already is)."""
        if not self.is_sqlite:
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_ADVISORY_KEY)))

    def _insert(self, table):
        if self.is_sqlite:
            from sqlalchemy.dialects.sqlite import insert
        else:
            from sqlalchemy.dialects.postgresql import insert
        return insert(table)

    # -- schema --------------------------------------------------------------------------------
    def _create_schema(self, conn, raters_per_video: int) -> int:
        self._serialize(conn)
        inspector = sa.inspect(conn)
        if inspector.has_table("ratings") and "expires_at" not in {
                c["name"] for c in inspector.get_columns("ratings")}:
            self._migrate_from_v1(conn)
        metadata.create_all(conn)
        conn.execute(self._insert(meta).values([
            {"key": "raters_per_video", "value": str(raters_per_video)},
            {"key": "schema_version", "value": SCHEMA_VERSION}]).on_conflict_do_nothing())
        return int(conn.execute(sa.select(meta.c.value).where(
            meta.c.key == "raters_per_video")).scalar_one())

    def _migrate_from_v1(self, conn) -> None:
        """The first store's layout (no lease expiry, no rating check): rebuilt in place, in
        this transaction; a taken video's lease runs from its ``assigned_at``."""
        conn.exec_driver_sql("ALTER TABLE ratings RENAME TO ratings_v1")
        ratings.create(conn)
        try:
            conn.execute(sa.text(
                "INSERT INTO ratings (filename, participant, session, state, assigned_at, "
                "rating, expires_at) SELECT filename, participant, session, state, assigned_at, "
                "rating, CASE WHEN state = 'assigned' THEN assigned_at + :lease END "
                "FROM ratings_v1"), {"lease": self.lease_s})
        except sa_exc.IntegrityError as err:
            raise DatasetError(f"cannot migrate the ratings table: {err.orig}",
                               path=self.where, column="rating",
                               fix="ratings must be 1, 2 or 3 and done rows must have one; "
                                   "correct the rows named, then open it again") from None
        conn.exec_driver_sql("DROP TABLE ratings_v1")

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> "AssignmentDB":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- videos ---------------------------------------------------------------------------------
    def add_videos(self, table: pd.DataFrame, *, seed: int = 0) -> int:
        """Add videos (filename, AVMIT_label, MIT_label, video_location, path[,
        ground_truth]) in a seeded random order; videos already there are kept. Returns the
        number added."""
        for column in ANNOTATION_POOL_COLUMNS:
            if column not in table.columns:
                raise DatasetError("the video pool has no such column", path="<video pool>",
                                   column=column, fix="the pool CSV needs "
                                   f"{', '.join(ANNOTATION_POOL_COLUMNS)}")
        order = np.random.default_rng([int(seed), 53]).permutation(len(table))
        rows, seen = [], set()
        for i in order:
            r = table.iloc[int(i)]
            gt = r.get("ground_truth", None)
            try:
                gt = None if gt is None or pd.isna(gt) or str(gt) == "" else int(gt)
            except (TypeError, ValueError):
                raise DatasetError(f"ground truth {gt!r} is not a rating", path="<video pool>",
                                   row=int(i), column="ground_truth",
                                   fix="give 1, 2 or 3, or leave it empty") from None
            if str(r["filename"]) in seen:
                continue
            seen.add(str(r["filename"]))
            rows.append({"filename": str(r["filename"]), "label": str(r["AVMIT_label"]),
                         "mit_label": str(r["MIT_label"]),
                         "video_location": str(r["video_location"]), "path": str(r["path"]),
                         "ground_truth": gt})

        def work(conn):
            self._serialize(conn)
            existing = set(conn.execute(sa.select(videos.c.filename)).scalars())
            start = conn.execute(sa.select(
                sa.func.coalesce(sa.func.max(videos.c.position), -1) + 1)).scalar_one()
            new = [dict(row, position=int(start) + k)
                   for k, row in enumerate(r for r in rows if r["filename"] not in existing)]
            if new:
                conn.execute(sa.insert(videos), new)
            return len(new)
        return self._transaction(work)

    def _video(self, conn, filename: str) -> Video:
        r = conn.execute(sa.select(videos.c.filename, videos.c.label, videos.c.mit_label,
                                   videos.c.video_location, videos.c.path,
                                   videos.c.ground_truth)
                         .where(videos.c.filename == filename)).one()
        return Video(*r)

    # -- leases ---------------------------------------------------------------------------------
    def _lock_video(self, conn, filename: str):
        """Lock the video's row (PostgreSQL; SQLite's transaction already is exclusive): its
        ``ground_truth`` row, or None for an unknown video."""
        return conn.execute(sa.select(videos.c.ground_truth).where(
            videos.c.filename == filename).with_for_update()).first()

    def _own(self, conn, filename: str, participant: str):
        return conn.execute(sa.select(ratings.c.state, ratings.c.expires_at).where(
            ratings.c.filename == filename, ratings.c.participant == participant)).first()

    def _others(self, conn, filename: str, participant: str, now: float) -> int:
        """Raters of the video other than ``participant`` at ``now`` (done or live lease); run
        after the video is locked, so on PostgreSQL it sees every commit made before."""
        return int(conn.execute(sa.select(sa.func.count()).select_from(ratings).where(
            ratings.c.filename == filename, ratings.c.participant != participant,
            _live(now))).scalar_one())

    def _own_key(self, filename: str, participant: str):
        return sa.and_(ratings.c.filename == filename, ratings.c.participant == participant)

    def _hold(self, conn, filename: str, participant: str, session: int | None, now: float,
              *, create: bool) -> bool:
        """Give the participant a lease on the video running from ``now`` (a new one when
        ``create``, else only a renewal of theirs) if that keeps the video within its raters.
        A lease of theirs that expired while others filled the video is removed."""
        if self._lock_video(conn, filename) is None:
            return False
        own = self._own(conn, filename, participant)
        if (own is None and not create) or (own is not None and own.state == "done"):
            return False
        if self._others(conn, filename, participant, now) >= self.raters_per_video:
            if own is not None:
                conn.execute(sa.delete(ratings).where(self._own_key(filename, participant)))
            return False
        # expired leases of others no longer count: forget them
        conn.execute(sa.delete(ratings).where(
            ratings.c.filename == filename, ratings.c.participant != participant,
            ratings.c.state == "assigned", ratings.c.expires_at < now))
        if own is None:
            conn.execute(sa.insert(ratings).values(
                filename=filename, participant=participant, session=int(session),
                state="assigned", assigned_at=now, rating=None, expires_at=now + self.lease_s))
        else:
            values = {"expires_at": now + self.lease_s}
            if session is not None:
                values["session"] = int(session)
            conn.execute(sa.update(ratings).where(self._own_key(filename, participant))
                         .values(**values))
        return True

    def _held(self, conn, participant: str, session: int | None, now: float) -> str | None:
        """The participant's held video, its lease renewed; None when they hold none (leases
        lost to other raters are dropped on the way)."""
        held = conn.execute(sa.select(ratings.c.filename).where(
            ratings.c.participant == participant, ratings.c.state == "assigned")
            .order_by(ratings.c.assigned_at, ratings.c.filename)).scalars().all()
        for filename in held:
            if self._hold(conn, filename, participant, session, now, create=False):
                return filename
        return None

    def _open_video(self, conn, participant: str, want_gt: bool, exclude, now: float,
                    lock: str | None) -> str | None:
        """The first video (most raters so far, then pool order) that still needs a rater and
        that ``participant`` has not rated or held; ``lock``: 'skip' (FOR UPDATE SKIP LOCKED)
        or None."""
        taken = sa.select(sa.func.count()).select_from(ratings).where(
            ratings.c.filename == videos.c.filename, _live(now)).scalar_subquery()
        mine = sa.select(ratings.c.filename).where(
            ratings.c.filename == videos.c.filename,
            ratings.c.participant == participant).exists()
        query = sa.select(videos.c.filename).where(
            taken < self.raters_per_video, ~mine,
            videos.c.ground_truth.is_not(None) if want_gt else videos.c.ground_truth.is_(None))
        if exclude:
            query = query.where(videos.c.filename.not_in(sorted(exclude)))
        query = query.order_by(taken.desc(), videos.c.position).limit(1)
        if lock == "skip":
            query = query.with_for_update(of=videos, skip_locked=True)
        return conn.execute(query).scalar()

    # -- the public API -------------------------------------------------------------------------
    def next_video(self, participant: str, session: int, *, ground_truth: bool = False,
                   exclude=()) -> Video | None:
        """The next video for this participant (the one they hold, its lease renewed, if any),
        or None when no video needs them. ``ground_truth`` asks for a ground-truth video when
        one is open; ``exclude`` names videos not to offer (e.g. ones that failed to play)."""
        participant, session, exclude = str(participant), int(session), frozenset(exclude)

        def work(conn):
            now = self._now(conn)
            held = self._held(conn, participant, session, now)
            if held is not None:
                return self._video(conn, held)
            for want_gt in ((True, False) if ground_truth else (False, True)):
                filename = self._open_video(conn, participant, want_gt, exclude, now, "skip")
                if filename is None and not self.is_sqlite:
                    # open videos may all be locked by other sessions for a moment: wait for
                    # one (``_hold`` locks it) rather than report that none is left
                    filename = self._open_video(conn, participant, want_gt, exclude, now, None)
                if filename is None:
                    continue
                if self._hold(conn, filename, participant, session, now, create=True):
                    return self._video(conn, filename)
                raise _TryAgain  # filled by a session that committed after our snapshot
            return None
        return self._transaction(work, retry_unique=True)

    def renew(self, participant: str, filename: str | None = None) -> bool:
        """Push on the expiry of the participant's lease on ``filename`` (default: every video
        they hold). Returns whether they still hold it: False when the lease expired and the
        video went to other raters meanwhile (it is then dropped)."""
        participant = str(participant)

        def work(conn):
            now = self._now(conn)
            files = [filename] if filename is not None else conn.execute(
                sa.select(ratings.c.filename).where(ratings.c.participant == participant,
                                                    ratings.c.state == "assigned")
                .order_by(ratings.c.filename)).scalars().all()
            held = [self._hold(conn, f, participant, None, now, create=False) for f in files]
            return all(held) and bool(held)
        return self._transaction(work)

    def _rating_error(self, err: sa_exc.IntegrityError, filename, participant, rating):
        if "ck_ratings_rating" in str(err.orig):
            return DatasetError(f"rating {rating!r} of {filename} by {participant} is not 1, 2 "
                                "or 3; nothing was recorded", path=self.where, column="rating",
                                fix="record the key pressed: 1, 2 or 3")
        return None

    def complete(self, filename: str, participant: str, rating: int) -> bool:
        """Record the rating (one transaction; on any error nothing is recorded); returns
        whether it matched a ground-truth rating. Raises ``LeaseLost`` when the participant's
        lease expired and the video went to other raters meanwhile."""
        filename, participant = str(filename), str(participant)
        try:
            value = int(rating)
        except (TypeError, ValueError):
            raise DatasetError(f"rating {rating!r} of {filename} by {participant} is not 1, 2 "
                               "or 3; nothing was recorded", path=self.where, column="rating",
                               fix="record the key pressed: 1, 2 or 3") from None

        def work(conn):
            now = self._now(conn)
            video = self._lock_video(conn, filename)
            if video is None:
                raise DatasetError(f"{filename} is not in the assignment database",
                                   path=self.where, column="filename",
                                   fix="rate videos handed out by next_video")
            own = self._own(conn, filename, participant)
            if own is None or (own.state == "assigned" and own.expires_at < now and self._others(
                    conn, filename, participant, now) >= self.raters_per_video):
                raise LeaseLost(f"{participant} does not hold {filename}: the lease expired and "
                                f"the video has its {self.raters_per_video} raters")
            conn.execute(sa.update(ratings).where(self._own_key(filename, participant))
                         .values(state="done", rating=value, expires_at=None))
            return video.ground_truth is not None and int(video.ground_truth) == value
        try:
            return self._transaction(work)
        except sa_exc.IntegrityError as err:
            raise (self._rating_error(err, filename, participant, rating) or err) from None

    def release(self, filename: str, participant: str) -> None:
        """Give back a taken video (it could not be played): someone else may rate it."""
        filename, participant = str(filename), str(participant)
        self._transaction(lambda conn: conn.execute(sa.delete(ratings).where(
            self._own_key(filename, participant), ratings.c.state == "assigned")))

    def reconcile(self, participant: str, session: int, rated: dict[str, int]) -> int:
        """After a crash: ratings already in the data file (filename -> rating) that the
        database still shows as taken or missing are marked done, in one transaction, as long
        as the video stays within ``raters_per_video`` raters; those that would exceed it are
        not recorded (a warning names them). Returns how many were marked done."""
        participant, session = str(participant), int(session)
        items = []
        for filename, rating in sorted((str(f), r) for f, r in rated.items()):  # lock order
            try:
                value = int(rating)
            except (TypeError, ValueError):
                value = None
            if value not in (1, 2, 3):
                raise DatasetError(f"rating {rating!r} of {filename} by {participant} (session "
                                   f"{session}) is not 1, 2 or 3; nothing was reconciled",
                                   path=self.where, column="rating",
                                   fix="correct the row in the participant's data file")
            items.append((filename, value))

        def work(conn):
            now, fixed, refused = self._now(conn), 0, []
            for filename, rating in items:
                if self._lock_video(conn, filename) is None:
                    raise DatasetError(f"{filename} (rated by {participant} in session "
                                       f"{session}) is not in the assignment database",
                                       path=self.where, column="filename",
                                       fix="open the database the session used (--db)")
                own = self._own(conn, filename, participant)
                if own is not None and own.state == "done":
                    continue
                if self._others(conn, filename, participant, now) >= self.raters_per_video:
                    if own is not None:
                        conn.execute(sa.delete(ratings).where(
                            self._own_key(filename, participant)))
                    refused.append(filename)
                    continue
                if own is None:
                    conn.execute(sa.insert(ratings).values(
                        filename=filename, participant=participant, session=session,
                        state="done", assigned_at=now, rating=rating, expires_at=None))
                else:
                    conn.execute(sa.update(ratings).where(self._own_key(filename, participant))
                                 .values(state="done", rating=rating, expires_at=None))
                fixed += 1
            return fixed, refused
        fixed, refused = self._transaction(work)
        if refused:
            warnings.warn(f"{self.where}: {len(refused)} rating(s) by {participant} not recorded "
                          f"because the video already has its {self.raters_per_video} raters "
                          f"(their leases expired first): {', '.join(refused)}", stacklevel=2)
        return fixed

    def matches(self, participant: str) -> int:
        """How many of the participant's ratings matched ground truth (all sessions)."""
        query = sa.select(sa.func.count()).select_from(
            ratings.join(videos, videos.c.filename == ratings.c.filename)).where(
            ratings.c.participant == str(participant), ratings.c.state == "done",
            videos.c.ground_truth.is_not(None), ratings.c.rating == videos.c.ground_truth)
        return int(self._transaction(lambda conn: conn.execute(query).scalar_one(), read=True))

    def progress(self) -> dict:
        def work(conn):
            now = self._now(conn)
            count = lambda q: int(conn.execute(q).scalar_one())  # noqa: E731
            complete = sa.select(ratings.c.filename).where(ratings.c.state == "done") \
                .group_by(ratings.c.filename) \
                .having(sa.func.count() >= self.raters_per_video).subquery()
            n_videos = count(sa.select(sa.func.count()).select_from(videos))
            return {"videos": n_videos,
                    "ratings_done": count(sa.select(sa.func.count()).select_from(ratings)
                                          .where(ratings.c.state == "done")),
                    "videos_complete": count(sa.select(sa.func.count()).select_from(complete)),
                    "ratings_needed": n_videos * self.raters_per_video,
                    "leases": count(sa.select(sa.func.count()).select_from(ratings).where(
                        ratings.c.state == "assigned", ratings.c.expires_at >= now))}
        return self._transaction(work, read=True)

    def ratings(self) -> pd.DataFrame:
        """Every row of the ratings table (done ratings and leases, live or expired)."""
        columns = [c.name for c in ratings.columns]
        rows = self._transaction(lambda conn: conn.execute(
            sa.select(ratings).order_by(ratings.c.assigned_at, ratings.c.filename,
                                        ratings.c.participant)).all(), read=True)
        table = pd.DataFrame([tuple(r) for r in rows], columns=columns)
        for column in ("session", "assigned_at", "rating", "expires_at"):
            table[column] = pd.to_numeric(table[column])
        return table
