"""The paper's hyperparameter random search with the bootstrap, as an Optuna study.

The method is the paper's: each trial takes hyperparameters drawn uniformly from the space
(Optuna's ``RandomSampler`` seeded with the run's seed), trains on a bootstrap resample of the
data (rows drawn with replacement) and scores on the out-of-bag rows, with early stopping
(patience 8 in the paper) on the out-of-bag loss. The chosen configuration is the trial with the
lowest out-of-bag loss (the study's best trial).

Where the trials live
---------------------
Trials are kept in an Optuna study in an RDB storage (``--storage URL``; by default the SQLite
file ``OUT/search.db``). A trial's user attributes are its ``index`` in the plan and its
``result`` (out-of-bag loss, top-1, top-5, best epoch, epochs run, in-bag and out-of-bag sizes,
the seeds, the worker that ran it, seconds taken); its value is the out-of-bag loss. The
study's user attributes hold the plan (seed, space, patience, epoch cap, base config, a
fingerprint of the data), ``n_trials`` and the ``chosen`` configuration. ``OUT/results.csv``
(one row per trial; re-written as trials finish, at most every :data:`EXPORT_EVERY_S` seconds,
and when the worker stops), ``OUT/ranked.csv`` and ``OUT/best_config.yaml`` are exports of the
study.

Many workers, one study
-----------------------
Every worker runs the same command (same ``--storage``, ``--study``, ``--seed``, space, config
and data). The study holds a *plan*: trial ``i`` (its ``index`` user attribute) has the ``i``-th
draw of ``RandomSampler(seed)`` as its parameters (a waiting trial added with its parameters
set, as ``Study.enqueue_trial`` adds one) and its bootstrap resample keyed on ``(seed, i)``,
and trains with seed ``seed + i``; so a trial's result does not depend on which worker ran it,
and equals :func:`run_trial` run alone.

- The plan is made once: the worker that creates the study, or extends it to a larger
  ``--trials``, does so holding a lock only one process can hold (PostgreSQL
  ``pg_advisory_lock``, MySQL ``GET_LOCK``, for SQLite an exclusive transaction on the file
  ``<database>.lock``); the lock is released when its holder exits or dies, and the next holder
  finds how far the plan got from the trials themselves and completes it.
- Workers take waiting trials with a compare-and-set of the trial's state (Optuna's own
  WAITING -> RUNNING transition), so no trial is taken twice; no worker ever creates a trial
  outside the plan. ``--trials N`` is the study's total, however many workers share it.
- While a worker trains it records a heartbeat every ``--heartbeat`` seconds
  (``RDBStorage(heartbeat_interval=..., grace_period=...)``). Before a trial (at most once a
  heartbeat interval), and while it waits for the others' last trials, a worker fails trials
  whose heartbeat is older than the grace period (``optuna.storages.fail_stale_trials``);
  Optuna's ``RetryHeartbeatStaleTrialCallback`` re-enqueues each with the same parameters and
  ``index`` (up to :data:`MAX_RETRY` times), so a killed worker's trial is re-run, with the
  same result. A worker stopped with Ctrl-C
  puts its trial back the same way at once; a trial that failed with an error is re-enqueued
  when a worker next starts. Each index counts once in the exports.
- A worker stops when no planned trial is waiting or running (it waits for the others' running
  trials, to re-run them should their worker die), so each worker's export is complete.

Run N workers on one PostgreSQL study (the same command on each machine)::

    python -m avmit_psych.analysis search --space analysis/search/recognition.yaml \\
        --config analysis/configs/recognition/yamnet_effnetb0_gru_mit16.yaml \\
        --tfrecords AVMIT_YamNet_EffNetB0/ --data-csv MIT16_train.csv MIT16_validation.csv \\
        --out search/yamnet_gru --storage postgresql+psycopg://USER:PASS@HOST/avmit \\
        --study yamnet_gru_seed0

and watch it with ``optuna-dashboard postgresql+psycopg://USER:PASS@HOST/avmit`` (``pip install
optuna-dashboard``; for the default storage ``optuna-dashboard sqlite:///search/yamnet_gru/
search.db``).

Test hook (used by tests/test_search_optuna.py to SIGKILL a worker while it trains): when
``AVMIT_PSYCH_SEARCH_HOLD`` names a folder and ``<folder>/hold-<i>`` exists, a worker about to
train trial ``i`` writes its process id to ``<folder>/holding-<i>`` and waits, its heartbeat
going on, until ``hold-<i>`` is removed. Unset (the normal case), it costs one ``os.environ``
look-up per trial.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import socket
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from .._atomic import atomic_path
from ..dataset.schema import DatasetError, read_yaml, write_csv
from .config import ModelConfig, save_config

_SEARCHABLE = ("bottleneck", "activation", "rnn_units", "dropout", "learning_rate")

#: Seconds between a running trial's heartbeats.
DEFAULT_HEARTBEAT_S = 60
#: Times a trial whose worker died is re-enqueued at once (after that, when a worker starts).
MAX_RETRY = 3
#: results.csv is re-written after a trial if this many seconds have passed since it last was
#: (and when the worker stops), so that exporting stays a small part of a short trial's time.
EXPORT_EVERY_S = 30.0
HOLD_ENV = "AVMIT_PSYCH_SEARCH_HOLD"

#: The per-trial results kept as trial user attributes and exported to results.csv, in order.
RESULT_COLUMNS = ("oob_loss", "oob_top1", "oob_top5", "best_epoch", "epochs_run",
                  "n_in_bag_unique", "n_out_of_bag", "seed")
EXTRA_COLUMNS = ("optuna_trial", "attempts", "train_seed", "worker", "train_s")


def load_space(path) -> dict:
    """Read a search space YAML: ``trials``, ``patience`` and ``space`` (lists of choices, or
    ``{uniform: [low, high]}``)."""
    path = Path(path)
    spec = read_yaml(path, what="search space file", example="analysis/search/recognition.yaml")
    if not isinstance(spec, dict) or not isinstance(spec.get("space"), dict):
        raise DatasetError("a search space needs a 'space' mapping", path=path)
    unknown = set(spec) - {"trials", "patience", "space"}
    if unknown:
        raise DatasetError(f"unknown key '{sorted(unknown)[0]}'", path=path,
                           fix="keys are trials, patience and space")
    for key, choice in spec["space"].items():
        if key not in _SEARCHABLE:
            raise DatasetError(f"'{key}' cannot be searched", path=path, column=key,
                               fix=f"searchable: {', '.join(_SEARCHABLE)}")
        ok = (isinstance(choice, list) and choice) or (
            isinstance(choice, dict) and set(choice) == {"uniform"}
            and len(choice["uniform"]) == 2 and choice["uniform"][0] < choice["uniform"][1])
        if not ok:
            raise DatasetError(f"'{key}' needs a list of values or {{uniform: [low, high]}}",
                               path=path, column=key)
    spec.setdefault("trials", 300)
    spec.setdefault("patience", 8)
    return spec


@contextlib.contextmanager
def _quiet_optuna():
    """Optuna without its INFO lines (study created, trial finished) and experimental-feature
    warnings (heartbeats): the search prints its own progress."""
    import optuna
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            yield optuna
    finally:
        optuna.logging.set_verbosity(level)


def distributions(space: dict) -> dict:
    """The Optuna distribution of each searched value, in sorted order of the names: a list is
    a categorical choice, ``{uniform: [low, high]}`` a float drawn uniformly."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution
    return {key: (FloatDistribution(*map(float, space[key]["uniform"]))
                  if isinstance(space[key], dict) else CategoricalDistribution(space[key]))
            for key in sorted(space)}


def plan_params(space: dict, seed: int, n: int) -> list[dict]:
    """The hyperparameters of trials ``0 .. n-1``: the first ``n`` draws of
    ``optuna.samplers.RandomSampler(seed)``, each value uniform over its choices or interval.

    The draws come in order from one sampler, so the plan of ``n`` trials is the start of the
    plan of any larger number.
    """
    with _quiet_optuna() as optuna:
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=int(seed)))
        dists = distributions(space)
        return [dict(study.ask(dists).params) for _ in range(int(n))]


def sample_params(space: dict, seed: int, trial: int) -> dict:
    """Trial ``trial``'s hyperparameters (see :func:`plan_params`)."""
    return plan_params(space, seed, int(trial) + 1)[int(trial)]


def bootstrap(n: int, seed: int, trial: int) -> tuple[np.ndarray, np.ndarray]:
    """(in-bag indices drawn with replacement, out-of-bag indices) for one trial."""
    rng = np.random.default_rng([int(seed), 37, int(trial)])
    in_bag = rng.integers(0, n, n)
    out_of_bag = np.setdiff1d(np.arange(n), in_bag)
    return in_bag, out_of_bag


def run_trial(cfg: ModelConfig, data, *, params: dict, trial: int, seed: int = 0,
              patience: int = 8, epochs: int | None = None, work_dir=None) -> dict:
    """Train and score one surrogate model; a pure function of its arguments.

    ``params`` are the trial's hyperparameters (:func:`plan_params`); the resample is
    :func:`bootstrap` of ``(seed, trial)`` and the training seed ``seed + trial``."""
    from .training import train

    trial_cfg = cfg.replace(**params, patience=patience, seed=int(seed) + int(trial),
                            name=f"{cfg.name}_trial{trial:04d}",
                            **({"epochs": int(epochs)} if epochs else {}))
    in_bag, oob = bootstrap(len(data), seed, trial)
    tmp = Path(tempfile.mkdtemp(prefix=f"trial{trial:04d}-", dir=work_dir))
    try:
        result = train(trial_cfg, data.take(in_bag), data.take(oob), tmp, verbose=0)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    m = result.metrics
    return {"trial": int(trial), **params, "oob_loss": m["val_loss"],
            "oob_top1": m["val_accuracy"], "oob_top5": m.get("val_top5"),
            "best_epoch": m["best_epoch"], "epochs_run": m["epochs_run"],
            "n_in_bag_unique": int(len(np.unique(in_bag))), "n_out_of_bag": int(len(oob)),
            "seed": int(seed)}


# -- storage ------------------------------------------------------------------------------------
def default_storage(out_dir) -> str:
    """The embedded default: the SQLite file ``search.db`` in the output folder."""
    return f"sqlite:///{Path(out_dir).resolve() / 'search.db'}"


def storage_url(url: str) -> str:
    """``url`` as SQLAlchemy takes it: ``postgresql://`` and ``postgres://`` use psycopg 3
    (installed with the toolkit) unless psycopg2 is installed."""
    import importlib.util
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix) and importlib.util.find_spec("psycopg2") is None:
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def shown_url(url: str) -> str:
    """The URL with its password hidden, for messages."""
    try:
        from sqlalchemy.engine import make_url
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is shown as given
        return url


def open_storage(url: str, *, heartbeat: int | None = DEFAULT_HEARTBEAT_S,
                 grace: int | None = None):
    """An ``optuna.storages.RDBStorage`` with heartbeats every ``heartbeat`` seconds (None or 0:
    none), trials silent for ``grace`` seconds (default twice the heartbeat) failed and retried
    up to :data:`MAX_RETRY` times."""
    url = storage_url(url)
    with _quiet_optuna() as optuna:
        from sqlalchemy.engine import make_url
        try:
            backend = make_url(url).get_backend_name()
        except Exception as err:  # noqa: BLE001 - sqlalchemy raises several kinds
            raise DatasetError(f"not a storage URL ({err})", path=url,
                               fix="give sqlite:///PATH, postgresql+psycopg://USER@HOST/DB "
                                   "or mysql+pymysql://USER@HOST/DB") from None
        if backend not in ("sqlite", "postgresql", "mysql"):
            raise DatasetError(f"'{backend}' storage is not supported", path=shown_url(url),
                               fix="give sqlite:///PATH, postgresql+psycopg://USER@HOST/DB "
                                   "or mysql+pymysql://USER@HOST/DB")
        engine_kwargs = {"connect_args": {"timeout": 120}} if backend == "sqlite" else {}
        heartbeat = int(heartbeat) if heartbeat else None
        try:
            # Several workers opening a new database at once would each create its tables.
            with storage_lock(url, "tables"):
                if backend == "sqlite":
                    _sqlite_wal(make_url(url).database)
                return optuna.storages.RDBStorage(
                    url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat,
                    grace_period=int(grace) if (grace and heartbeat) else None,
                    heartbeat_stale_trial_callback=optuna.storages.
                    RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY) if heartbeat else None)
        except DatasetError:
            raise
        except Exception as err:  # noqa: BLE001 - driver errors: one line naming the URL
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise DatasetError(f"cannot open the search storage ({type(err).__name__}: "
                               f"{first})", path=shown_url(url),
                               fix="check the URL, that the database server runs and that "
                                   "its driver is installed") from None


def _sqlite_wal(database: str | None) -> None:
    """Put a SQLite storage in write-ahead-log mode: a commit is one fsync of the log instead
    of the journal's several, and readers never wait for a writer. The mode stays with the
    file; a file another process holds open in the old mode is left as it is."""
    if not database or database == ":memory:":
        return
    import sqlite3
    with contextlib.closing(sqlite3.connect(database, timeout=5)) as con:
        if con.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            with contextlib.suppress(sqlite3.OperationalError):
                con.execute("PRAGMA journal_mode=WAL")


@contextlib.contextmanager
def storage_lock(url: str, what: str, *, timeout_s: float = 3600.0):
    """Hold a lock named ``what`` that one process at a time can hold on this storage, released
    when the holder leaves the block or dies: PostgreSQL ``pg_advisory_lock``, MySQL
    ``GET_LOCK``, SQLite an exclusive transaction on the file ``<database>.lock`` (a separate
    file, so the storage's own writes in this process never wait on it; one lock per file)."""
    import sqlalchemy
    from sqlalchemy.engine import make_url
    url = storage_url(url)
    u = make_url(url)
    backend = u.get_backend_name()
    key = int.from_bytes(hashlib.blake2b(f"avmit_psych search {what}".encode(),
                                         digest_size=8).digest(), "big", signed=True)
    if backend == "sqlite":
        if not u.database or u.database == ":memory:":
            yield  # one process only
            return
        import sqlite3
        con = sqlite3.connect(u.database + ".lock", timeout=timeout_s, isolation_level=None)
        try:
            con.execute("BEGIN EXCLUSIVE")
            try:
                yield
            finally:
                con.execute("ROLLBACK")
        finally:
            con.close()
        return
    if backend not in ("postgresql", "mysql"):
        raise DatasetError(f"'{backend}' storage is not supported", path=shown_url(url),
                           fix="use SQLite, PostgreSQL or MySQL")
    engine = _LOCK_ENGINES.get(url)
    if engine is None:  # one per URL: a new server connection per lock would cost ~10 ms
        engine = _LOCK_ENGINES[url] = sqlalchemy.create_engine(
            url, pool_size=1, max_overflow=2, pool_pre_ping=True)
    with engine.connect() as con:
        if backend == "postgresql":
            lock = "SELECT pg_advisory_lock(:k)", {"k": key}
            unlock = "SELECT pg_advisory_unlock(:k)", {"k": key}
        else:
            lock = "SELECT GET_LOCK(:k, :t)", {"k": str(key), "t": int(timeout_s)}
            unlock = "SELECT RELEASE_LOCK(:k)", {"k": str(key)}
        con.execute(sqlalchemy.text(lock[0]), lock[1])
        try:
            yield
        finally:
            con.execute(sqlalchemy.text(unlock[0]), unlock[1])
            con.commit()


_LOCK_ENGINES: dict = {}


def plan_lock(url: str, study_name: str):
    """The lock under which a study's plan is made, extended or repaired (:func:`storage_lock`)."""
    return storage_lock(url, f"plan {study_name}")


# -- the plan -----------------------------------------------------------------------------------
def data_fingerprint(data) -> str:
    """A digest of the data a search resamples (labels and embeddings), so that workers joining
    a study are checked to search the same data."""
    h = hashlib.blake2b(digest_size=12)
    for array in (data.labels, data.audio, data.visual):
        a = np.ascontiguousarray(array)
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def make_plan(cfg: ModelConfig, data, spec: dict, *, seed: int, epochs: int | None) -> dict:
    """What every worker of a study must agree on (the study's ``plan`` user attribute)."""
    return {"seed": int(seed), "space": spec["space"], "patience": int(spec["patience"]),
            "epochs": int(epochs) if epochs else None, "config": cfg.to_dict(),
            "n_rows": int(len(data)), "data": data_fingerprint(data)}


def _same_plan(stored: dict, plan: dict) -> str | None:
    """The first thing on which ``plan`` differs from the study's, or None."""
    ours = json.loads(json.dumps(plan))
    for key in ours:
        if key == "config" and isinstance(stored.get(key), dict):
            for k in ours[key]:
                if stored[key].get(k) != ours[key][k]:
                    return (f"config value {k} ({stored[key].get(k)!r} there, "
                            f"{ours[key][k]!r} here)")
        elif stored.get(key) != ours[key]:
            what = {"data": "data (another --data-csv or --tfrecords)",
                    "n_rows": "number of data rows"}.get(key, key)
            if key in ("seed", "patience", "epochs", "n_rows"):
                return f"{what} ({stored.get(key)!r} there, {ours[key]!r} here)"
            return what
    return None


def _index(trial) -> int | None:
    value = trial.user_attrs.get("index")
    return int(value) if value is not None else None


def prepare_study(storage, url: str, study_name: str, plan: dict, n_trials: int, *,
                  out_dir=None):
    """Create or join the study and make sure its plan holds trials ``0 .. n_trials-1``.

    Runs under :func:`plan_lock`: the first worker creates the study and enqueues the plan, a
    worker asking for more trials enqueues the missing ones, a worker finding planned trials
    that failed (an error, Ctrl-C) and are not waiting or running again re-enqueues them, each
    exactly once however many workers start together. Returns the ``optuna.Study``.
    """
    with _quiet_optuna() as optuna:
        from optuna.trial import TrialState
        with plan_lock(url, study_name):
            try:
                storage.get_study_id_from_name(study_name)
                new = False
            except KeyError:
                new = True
            if new and out_dir is not None and (Path(out_dir) / "results.csv").exists():
                raise DatasetError(
                    f"results.csv here does not come from study '{study_name}' in "
                    f"{shown_url(url)}", path=Path(out_dir) / "results.csv",
                    fix="give a new --out (or move results.csv away), or the --storage and "
                        "--study that made it")
            study = optuna.create_study(
                study_name=study_name, storage=storage, direction="minimize",
                sampler=optuna.samplers.RandomSampler(seed=plan["seed"]), load_if_exists=True)
            stored = study.user_attrs.get("plan")
            if stored is None:
                if study.get_trials(deepcopy=False):
                    raise DatasetError(f"study '{study_name}' was not made by this search",
                                       path=shown_url(url), fix="give another --study")
                study.set_user_attr("plan", json.loads(json.dumps(plan)))
            else:
                differs = _same_plan(stored, plan)
                if differs:
                    raise DatasetError(
                        f"study '{study_name}' searches with another {differs}",
                        path=shown_url(url),
                        fix="run with the study's settings (the 'plan' attribute) or give "
                            "another --study")
            trials = study.get_trials(deepcopy=False)
            planned = 1 + max((_index(t) for t in trials if _index(t) is not None), default=-1)
            params = plan_params(plan["space"], plan["seed"], max(planned, n_trials))
            dists = distributions(plan["space"])

            def enqueue(i):
                # Enqueued with its parameters set (as Study.enqueue_trial does, and with the
                # distributions), so taking it writes nothing but its state.
                study.add_trial(optuna.trial.create_trial(
                    state=TrialState.WAITING, params=params[i], distributions=dists,
                    user_attrs={"index": i}))

            for i in range(planned, n_trials):
                enqueue(i)
            alive = {_index(t) for t in trials if t.state in
                     (TrialState.COMPLETE, TrialState.WAITING, TrialState.RUNNING)}
            for i in range(min(planned, n_trials)):
                if i not in alive:  # failed by an error or Ctrl-C: run it again
                    enqueue(i)
            if n_trials > study.user_attrs.get("n_trials", 0):
                study.set_user_attr("n_trials", int(n_trials))
            return study


# -- workers ------------------------------------------------------------------------------------
class _Heartbeat:
    """Record a running trial's heartbeat at once and every ``interval`` seconds after, in a
    thread of its own (the training never waits for it)."""

    def __init__(self, storage, trial_id: int, interval: int | None):
        self.storage, self.trial_id, self.interval = storage, trial_id, interval
        self.seconds = 0.0
        self._stop = threading.Event()
        self._thread = None

    def _beat(self) -> None:
        t = time.perf_counter()
        try:
            self.storage.record_heartbeat(self.trial_id)
        except Exception:  # noqa: BLE001 - a missed beat is retried at the next interval
            pass
        self.seconds += time.perf_counter() - t

    def _run(self) -> None:
        self._beat()
        while not self._stop.wait(self.interval):
            self._beat()

    def __enter__(self):
        if self.interval:
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name=f"heartbeat-{self.trial_id}")
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()


def _hold(index: int) -> None:
    """The test hook of the module docstring."""
    folder = os.environ.get(HOLD_ENV)
    if not folder:
        return
    hold = Path(folder) / f"hold-{index}"
    if hold.exists():
        with atomic_path(Path(folder) / f"holding-{index}") as tmp:
            tmp.write_text(str(os.getpid()))
        while hold.exists():
            time.sleep(0.05)


class _Queue:
    """This worker's view of the waiting planned trials (index < n_trials), read from the
    storage when it runs out, so that taking a trial costs a few queries, not a read of every
    waiting trial."""

    def __init__(self, storage, study_id: int, n_trials: int):
        self.storage, self.study_id, self.n_trials = storage, study_id, n_trials
        self.waiting: list[tuple[int, int, dict]] = []

    def _refresh(self) -> None:
        from optuna.trial import TrialState
        trials = self.storage.get_all_trials(self.study_id, deepcopy=False,
                                             states=(TrialState.WAITING,))
        self.waiting = sorted((t.number, _index(t), dict(t.params)) for t in trials
                              if _index(t) is not None and _index(t) < self.n_trials)

    def pop(self):
        """Take a waiting trial: (its id, number, index, parameters), or None when none is
        left. Optuna's WAITING -> RUNNING transition is a compare-and-set (the trial's row
        locked for update): two workers never take the same trial."""
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState
        for refreshed in (False, True):
            if refreshed:
                self._refresh()
            while self.waiting:
                number, index, params = self.waiting.pop(0)
                trial_id = self.storage.get_trial_id_from_study_id_trial_number(
                    self.study_id, number)
                try:
                    if self.storage.set_trial_state_values(trial_id, state=TrialState.RUNNING):
                        return trial_id, number, index, params
                except UpdateFinishedTrialError:
                    pass
        return None


def _running(study, n_trials: int) -> int:
    from optuna.trial import TrialState
    return sum(1 for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
               if (_index(t) or 0) < n_trials)


def results_table(study, n_trials: int | None = None) -> pd.DataFrame:
    """One row per planned trial that has finished: ``trial`` (the index), the
    hyperparameters, the out-of-bag scores and the columns of :data:`EXTRA_COLUMNS`
    (``attempts`` counts the runs of that index, failed ones included)."""
    from optuna.trial import TrialState
    trials = [t for t in study.get_trials(deepcopy=False) if _index(t) is not None
              and (n_trials is None or _index(t) < n_trials)]
    attempts: dict[int, int] = {}
    for t in trials:
        if t.state in (TrialState.COMPLETE, TrialState.FAIL, TrialState.RUNNING):
            attempts[_index(t)] = attempts.get(_index(t), 0) + 1
    rows, seen = [], set()
    for t in sorted(trials, key=lambda t: t.number):
        i = _index(t)
        if t.state != TrialState.COMPLETE or i in seen or "result" not in t.user_attrs:
            continue
        seen.add(i)
        a = t.user_attrs["result"]
        rows.append({"trial": i, **{k: t.params[k] for k in sorted(t.params)},
                     **{k: a.get(k) for k in RESULT_COLUMNS}, "optuna_trial": t.number,
                     "attempts": attempts.get(i, 1), **{k: a.get(k) for k in EXTRA_COLUMNS[2:]}})
    if not rows:
        return pd.DataFrame(columns=["trial", *RESULT_COLUMNS, *EXTRA_COLUMNS])
    return pd.DataFrame(rows).sort_values("trial", kind="stable").reset_index(drop=True)


def export(study, cfg: ModelConfig, out_dir, n_trials: int, *,
           final: bool = True) -> pd.DataFrame:
    """Write results.csv from the study; with ``final`` also ranked.csv and best_config.yaml
    (the base config with the best trial's values), and record the chosen configuration on
    the study when every trial has finished."""
    out_dir = Path(out_dir)
    results = results_table(study, n_trials)
    write_csv(results, out_dir / "results.csv")
    if final and len(results):
        ranked = results.sort_values("oob_loss", kind="stable")
        write_csv(ranked, out_dir / "ranked.csv")
        best = ranked.iloc[0]
        params = {k: _plain(best[k]) for k in _SEARCHABLE if k in best.index}
        save_config(cfg.replace(**params), out_dir / "best_config.yaml")
        if len(results) == n_trials:
            study.set_user_attr("chosen", {"trial": int(best["trial"]), "params": params,
                                           "oob_loss": float(best["oob_loss"])})
    return results


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def search(cfg: ModelConfig, data, space_path, out_dir, *, trials: int | None = None,
           epochs: int | None = None, seed: int = 0, storage: str | None = None,
           study: str | None = None, heartbeat: int | None = DEFAULT_HEARTBEAT_S,
           grace: int | None = None, progress: bool = True) -> pd.DataFrame:
    """Run (or join) the random search as an Optuna study; return one row per trial.

    ``storage``: an Optuna RDB storage URL (default :func:`default_storage`); ``study``: the
    study's name (default: the config's name); ``trials``: the study's total number of trials
    (default: the space's). Other processes may run the same call on the same storage and
    study at the same time: they share the trials (see the module docstring). Returns when no
    planned trial is waiting or running; ``results.attrs["worker"]`` says what this worker did:
    trials run, and seconds training (``train_s``), in storage calls taking and finishing
    trials (``storage_s``), in heartbeats (their own thread), exporting results.csv, in storage
    calls once no trial was left to take (``poll_s``) and sleeping while the others' last
    trials ran (``wait_s``).
    """
    spec = load_space(space_path)
    n_trials = int(trials or spec["trials"])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    url = storage_url(storage or default_storage(out_dir))
    name = study or cfg.name
    plan = make_plan(cfg, data, spec, seed=seed, epochs=epochs)
    rdb = open_storage(url, heartbeat=heartbeat, grace=grace)
    stats = {"trials_run": 0, "train_s": 0.0, "storage_s": 0.0, "heartbeat_s": 0.0,
             "export_s": 0.0, "poll_s": 0.0, "wait_s": 0.0}
    t0 = time.perf_counter()
    the_study = prepare_study(rdb, url, name, plan, n_trials, out_dir=out_dir)
    stats["prepare_s"] = time.perf_counter() - t0
    worker = f"{socket.gethostname()}:{os.getpid()}"
    poll_s = max(1, min(int(heartbeat), 10)) if heartbeat else 1
    queue = _Queue(rdb, rdb.get_study_id_from_name(name), n_trials)
    exported, checked = time.monotonic(), -math.inf
    from optuna.trial import TrialState
    from tqdm.auto import tqdm
    bar = tqdm(total=n_trials, desc=f"search {name}", disable=not progress, initial=len(
        the_study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) if progress else 0)
    with _quiet_optuna() as optuna:
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState
        while True:
            t = time.perf_counter()
            if heartbeat and time.monotonic() - checked >= heartbeat:
                # At most once a heartbeat interval (a trial goes stale only after the grace
                # period), under the plan lock, so that failing a stale trial and re-enqueueing
                # it (the retry callback) never interleave with a worker repairing the plan.
                with plan_lock(url, name):
                    optuna.storages.fail_stale_trials(the_study)
                checked = time.monotonic()
            popped = queue.pop()
            if popped is None:
                others = _running(the_study, n_trials) if heartbeat else 0
                stats["poll_s"] += time.perf_counter() - t  # once no trial is left to take
                if not others:
                    break
                time.sleep(poll_s)
                stats["wait_s"] += poll_s
                checked = -math.inf
                continue
            trial_id, number, index, params = popped
            with _Heartbeat(rdb, trial_id, heartbeat) as beat:
                stats["storage_s"] += time.perf_counter() - t
                t = time.perf_counter()
                try:
                    _hold(index)
                    row = run_trial(cfg, data, params=params, trial=index, seed=seed,
                                    patience=int(spec["patience"]), epochs=epochs,
                                    work_dir=out_dir)
                except BaseException as err:
                    # Under the plan lock, so that no worker repairing the plan sees the failed
                    # trial before it is back in the queue.
                    with contextlib.suppress(Exception), plan_lock(url, name):
                        rdb.set_trial_state_values(trial_id, state=TrialState.FAIL)
                        if isinstance(err, KeyboardInterrupt):
                            # Stopped, not broken: back in the queue for the other workers.
                            optuna.storages.RetryHeartbeatStaleTrialCallback()(
                                the_study, rdb.get_trial(trial_id))
                    raise
                train_s = time.perf_counter() - t
                stats["train_s"] += train_s
                t = time.perf_counter()
                result = {k: _plain(row[k]) for k in RESULT_COLUMNS}
                result.update(train_seed=int(seed) + index, worker=worker,
                              train_s=round(train_s, 3))
                loss = float(row["oob_loss"])
                try:
                    # What Study.tell does, without its two extra reads of the trial.
                    rdb.set_trial_user_attr(trial_id, "result", result)
                    rdb.set_trial_state_values(trial_id, state=TrialState.COMPLETE,
                                               values=[loss if math.isfinite(loss) else math.inf])
                    stats["trials_run"] += 1
                except UpdateFinishedTrialError:
                    # Another worker's heartbeat check failed this trial (this worker was
                    # silent too long) and enqueued it again; the rerun's result counts.
                    pass
            stats["heartbeat_s"] += beat.seconds
            stats["storage_s"] += time.perf_counter() - t
            bar.update()
            if time.monotonic() - exported >= EXPORT_EVERY_S:
                t = time.perf_counter()
                export(the_study, cfg, out_dir, n_trials, final=False)
                stats["export_s"] += time.perf_counter() - t
                exported, checked = time.monotonic(), -math.inf
        t = time.perf_counter()
        results = export(the_study, cfg, out_dir, n_trials)
        stats["export_s"] += time.perf_counter() - t
    bar.close()
    stats.update(study=name, storage=shown_url(url), worker=worker,
                 total_s=time.perf_counter() - t0)
    results.attrs["worker"] = stats
    return results
