"""The search as an Optuna study shared by workers (issue 16, item 1).

Two workers are two real ``python -m avmit_psych.analysis search`` processes on one storage (a
SQLite file, and a throwaway PostgreSQL server from tests/services.py). Each trial's result is
checked against the same trial run alone (one worker in this process, same seed). The kill is
made deterministic with the search's documented test hook (``AVMIT_PSYCH_SEARCH_HOLD``): a
worker about to train a held trial waits, heartbeat going, until the test releases it or kills
it with SIGKILL.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import REPO, requires_tf

GRU = REPO / "analysis" / "configs" / "recognition" / "vggish_vgg16_gru_avmit.yaml"
N_TRIALS = 4
SEED = 5
SCORES = ["oob_loss", "oob_top1", "oob_top5", "best_epoch", "epochs_run", "n_in_bag_unique",
          "n_out_of_bag"]
PARAMS = ["activation", "bottleneck", "dropout", "learning_rate", "rnn_units"]
#: Only a guard against a hung worker; no test asserts how long anything takes.
HANG_GUARD_S = 900

SPACE = """\
trials: 300
patience: 8
space:
  bottleneck: [8, 16]
  activation: [relu, swish]
  rnn_units: [8, 16]
  dropout: [0.1, 0.3]
  learning_rate: {uniform: [1.0e-3, 5.0e-3]}
"""


def _space(tmp_path) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(SPACE)
    return path


# -- the plan (no TensorFlow) -------------------------------------------------------------------
def test_plan_is_random_sampler_draws_in_order(tmp_path):
    import optuna

    from avmit_psych.models import search
    space = search.load_space(_space(tmp_path))["space"]
    plan = search.plan_params(space, 3, 30)
    # independently: Optuna's RandomSampler(3) suggesting the values in sorted order
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    study.optimize(lambda t: (t.suggest_categorical("activation", ["relu", "swish"]),
                              t.suggest_categorical("bottleneck", [8, 16]),
                              t.suggest_categorical("dropout", [0.1, 0.3]),
                              t.suggest_float("learning_rate", 1e-3, 5e-3),
                              t.suggest_categorical("rnn_units", [8, 16]))[3], n_trials=30)
    assert plan == [t.params for t in study.trials]
    assert search.plan_params(space, 3, 7) == plan[:7]  # a longer plan extends a shorter one
    assert search.sample_params(space, 3, 12) == plan[12]
    assert plan != search.plan_params(space, 4, 30)


PREPARE = textwrap.dedent("""\
    import sys
    sys.path.insert(0, {repo!r})
    from avmit_psych.models import search
    url, n = sys.argv[1], int(sys.argv[2])
    space = search.load_space({space!r})
    plan = {{"seed": 1, "space": space["space"], "patience": 8, "epochs": None,
             "config": {{"name": "x"}}, "n_rows": 10, "data": "d"}}
    search.prepare_study(search.open_storage(url, heartbeat=2), url, "s", plan, n)
""")


def _prepare_together(script: Path, url: str, n: int, workers: int) -> None:
    procs = [subprocess.Popen([sys.executable, str(script), url, str(n)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(workers)]
    for p in procs:
        out, err = p.communicate(timeout=HANG_GUARD_S)
        assert p.returncode == 0, err


def _check_plan_made_once(url: str, n: int, space) -> None:
    import optuna

    from avmit_psych.models import search
    study = optuna.load_study(study_name="s", storage=url)
    trials = study.trials
    assert sorted(t.user_attrs["index"] for t in trials) == list(range(n))  # none twice
    assert {t.state for t in trials} == {optuna.trial.TrialState.WAITING}
    planned = search.plan_params(space, 1, n)
    assert [t.params for t in sorted(trials, key=lambda t: t.user_attrs["index"])] == planned
    assert study.user_attrs["n_trials"] == n


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_workers_starting_together_enqueue_the_plan_once(backend, tmp_path, request):
    from avmit_psych.models import search
    url = (f"sqlite:///{tmp_path / 'search.db'}" if backend == "sqlite"
           else request.getfixturevalue("postgres_url"))
    space_path = _space(tmp_path)
    script = tmp_path / "prepare.py"
    script.write_text(PREPARE.format(repo=str(REPO), space=str(space_path)))
    _prepare_together(script, url, 12, workers=4)
    space = search.load_space(space_path)["space"]
    _check_plan_made_once(url, 12, space)
    _prepare_together(script, url, 20, workers=3)  # more trials: only the missing ones
    _check_plan_made_once(url, 20, space)


# -- workers (TensorFlow) -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def search_data(tmp_path_factory):
    from avmit_psych.dataset import synthetic
    base = tmp_path_factory.mktemp("search_optuna")
    paths = synthetic.write_embedding_dataset(
        base / "root", base / "csv", seed=4,
        per_class={"MIT16_train": 10, "MIT16_validation": 3})
    return base, [paths["MIT16_train"], paths["MIT16_validation"]], _space(base)


def _args(search_data, out, *extra) -> list[str]:
    base, csvs, space = search_data
    return ["search", "--space", str(space), "--config", str(GRU), "--tfrecords",
            str(base / "root"), "--data-csv", *map(str, csvs), "--out", str(out), "--epochs",
            "1", "--seed", str(SEED), "--trials", str(N_TRIALS), "--no-cache", *map(str, extra)]


@pytest.fixture(scope="module")
def alone(search_data, tmp_path_factory):
    """Every trial run alone: one worker, in this process, its own SQLite file."""
    pytest.importorskip("tensorflow")
    from avmit_psych.dataset import tfrecords
    from avmit_psych.models import config, search
    base, csvs, space = search_data
    cfg = config.load_config(GRU)
    data = tfrecords.Split.concat([tfrecords.load_split(c, base / "root", cache=False)
                                   for c in csvs])
    out = tmp_path_factory.mktemp("alone")
    results = search.search(cfg, data, space, out, trials=N_TRIALS, epochs=1, seed=SEED,
                            progress=False)
    assert results["trial"].tolist() == list(range(N_TRIALS))
    assert results.attrs["worker"]["trials_run"] == N_TRIALS
    return results, cfg, data


class Worker:
    """One ``analysis search`` process, its output in files (a full pipe would block it)."""

    def __init__(self, argv, log: Path, hold: Path):
        env = dict(os.environ, MPLBACKEND="Agg", AVMIT_PSYCH_SEARCH_HOLD=str(hold))
        self.log = log
        self.out, self.err = open(log.with_suffix(".out"), "w"), open(log.with_suffix(".err"),
                                                                      "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "avmit_psych.analysis", *argv],
                                     cwd=REPO, env=env, stdout=self.out, stderr=self.err)

    def wait(self) -> int:
        code = self.proc.wait(timeout=HANG_GUARD_S)
        self.out.close()
        self.err.close()
        return code

    def text(self) -> str:
        return self.log.with_suffix(".out").read_text() + self.log.with_suffix(".err").read_text()


def _wait_holding(hold: Path, indices, workers) -> dict[int, int]:
    """Wait until each held trial's worker is waiting inside it; {index: pid}."""
    deadline = time.monotonic() + HANG_GUARD_S
    while not all((hold / f"holding-{i}").exists() for i in indices):
        for w in workers:
            assert w.proc.poll() is None, f"a worker stopped early:\n{w.text()[-3000:]}"
        assert time.monotonic() < deadline, "the held trials never started"
        time.sleep(0.2)
    return {i: int((hold / f"holding-{i}").read_text()) for i in indices}


def _start_two(search_data, tmp_path, outs, extra):
    hold = tmp_path / "hold"
    hold.mkdir()
    for i in (0, 1):
        (hold / f"hold-{i}").touch()
    workers = [Worker(_args(search_data, out, *extra), tmp_path / f"worker{k}", hold)
               for k, out in enumerate(outs)]
    pids = _wait_holding(hold, (0, 1), workers)
    # a worker holding one trial cannot take another: two workers share the study
    assert sorted(pids.values()) == sorted(w.proc.pid for w in workers)
    return hold, workers, pids


def _storage(backend, tmp_path, request, *, plain_postgresql=False):
    """(storage URL, extra flags, the two workers' --out): SQLite is the default storage in
    the --out both workers share; PostgreSQL is given, each worker with its own --out."""
    if backend == "sqlite":
        out = tmp_path / "out"
        return f"sqlite:///{out / 'search.db'}", [], [out, out]
    url = request.getfixturevalue("postgres_url")
    given = url.replace("postgresql+psycopg://", "postgresql://") if plain_postgresql else url
    return url, ["--storage", given, "--study", "gru_seed5"], [tmp_path / "a", tmp_path / "b"]


def _study(url, extra):
    import optuna
    name = extra[extra.index("--study") + 1] if "--study" in extra else "vggish_vgg16_gru_avmit"
    return optuna.load_study(study_name=name, storage=url)


def _assert_same_as_alone(results: pd.DataFrame, alone_results: pd.DataFrame) -> None:
    assert results["trial"].tolist() == list(range(N_TRIALS))
    pd.testing.assert_frame_equal(results[["trial", *PARAMS, *SCORES]].reset_index(drop=True),
                                  alone_results[["trial", *PARAMS, *SCORES]], check_exact=True)


@requires_tf
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_workers_share_the_trials_each_as_if_run_alone(backend, search_data, alone,
                                                          tmp_path, request):
    import optuna
    # postgresql:// as a user would write it (psycopg 3 is the driver installed)
    url, extra, outs = _storage(backend, tmp_path, request, plain_postgresql=True)
    hold, workers, pids = _start_two(search_data, tmp_path, outs, extra)
    for i in (0, 1):
        (hold / f"hold-{i}").unlink()
    for w in workers:
        assert w.wait() == 0, w.text()[-3000:]
    trials = _study(url, extra).trials
    TS = optuna.trial.TrialState
    assert [t.state for t in trials] == [TS.COMPLETE] * N_TRIALS  # exactly the study's count
    assert sorted(t.user_attrs["index"] for t in trials) == list(range(N_TRIALS))  # none twice
    assert len({t.user_attrs["result"]["worker"] for t in trials}) == 2
    alone_results = alone[0]
    for out in set(outs):  # every worker's export is complete
        results = pd.read_csv(out / "results.csv")
        _assert_same_as_alone(results, alone_results)
        assert (results["attempts"] == 1).all()
        assert (out / "best_config.yaml").exists()
    best = alone_results.sort_values("oob_loss").iloc[0]
    chosen = _study(url, extra).user_attrs["chosen"]
    assert chosen["trial"] == int(best["trial"]) and chosen["oob_loss"] == best["oob_loss"]
    assert _study(url, extra).best_trial.user_attrs["index"] == int(best["trial"])
    assert f"{N_TRIALS} trials; best out-of-bag loss" in workers[0].text()


@requires_tf
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_killed_workers_trial_is_failed_and_rerun_by_the_other(backend, search_data, alone,
                                                                 tmp_path, request):
    import optuna
    url, extra, outs = _storage(backend, tmp_path, request)
    extra = [*extra, "--heartbeat", "1", "--grace", "2"]
    hold, workers, pids = _start_two(search_data, tmp_path, outs, extra)
    victim = next(w for w in workers if w.proc.pid == pids[1])
    survivor = next(w for w in workers if w is not victim)
    os.kill(pids[1], signal.SIGKILL)  # mid-trial: it holds trial 1, heartbeat running
    assert victim.wait() == -signal.SIGKILL
    for i in (0, 1):
        (hold / f"hold-{i}").unlink()
    assert survivor.wait() == 0, survivor.text()[-3000:]

    TS = optuna.trial.TrialState
    trials = _study(url, extra).trials
    failed = [t for t in trials if t.state == TS.FAIL]
    complete = [t for t in trials if t.state == TS.COMPLETE]
    assert len(trials) == N_TRIALS + 1  # nothing else lost, nothing else run twice
    assert [t.user_attrs["index"] for t in failed] == [1]
    assert sorted(t.user_attrs["index"] for t in complete) == list(range(N_TRIALS))
    rerun = next(t for t in complete if t.user_attrs["index"] == 1)
    assert rerun.system_attrs["failed_trial"] == failed[0].number  # Optuna's retry callback
    assert rerun.user_attrs["result"]["worker"].endswith(f":{survivor.proc.pid}")
    assert rerun.params == failed[0].params
    out = outs[workers.index(survivor)]
    results = pd.read_csv(out / "results.csv")
    _assert_same_as_alone(results, alone[0])
    assert results.set_index("trial")["attempts"].to_dict() == {0: 1, 1: 2, 2: 1, 3: 1}


@requires_tf
def test_an_interrupted_search_reruns_the_interrupted_trial_when_started_again(
        search_data, alone, tmp_path):
    import optuna
    out = tmp_path / "out"
    hold = tmp_path / "hold"
    hold.mkdir()
    (hold / "hold-2").touch()
    first = Worker(_args(search_data, out, "--heartbeat", "0"), tmp_path / "first", hold)
    _wait_holding(hold, (2,), [first])
    first.proc.send_signal(signal.SIGINT)  # Ctrl-C while trial 2 trains
    assert first.wait() == 130, first.text()[-3000:]
    (hold / "hold-2").unlink()
    TS = optuna.trial.TrialState
    study = _study(f"sqlite:///{out / 'search.db'}", [])
    # the interrupted trial is failed and back in the queue (for other workers) at once
    assert [(t.user_attrs["index"], t.state) for t in study.trials] == [
        (0, TS.COMPLETE), (1, TS.COMPLETE), (2, TS.FAIL), (3, TS.WAITING), (2, TS.WAITING)]
    assert study.trials[4].system_attrs["failed_trial"] == 2
    again = Worker(_args(search_data, out), tmp_path / "again", hold)
    assert again.wait() == 0, again.text()[-3000:]
    assert "this worker ran 2 trials" in again.text()  # trial 2 again, and trial 3
    results = pd.read_csv(out / "results.csv")
    _assert_same_as_alone(results, alone[0])
    assert results["attempts"].tolist() == [1, 1, 2, 1]


@requires_tf
def test_a_trial_equals_run_trial_alone(alone):
    import yaml

    from avmit_psych.models import search
    results, cfg, data = alone
    params = search.sample_params(yaml.safe_load(SPACE)["space"], SEED, 2)
    row = search.run_trial(cfg, data, params=params, trial=2, seed=SEED, patience=8, epochs=1)
    got = results.set_index("trial").loc[2]
    assert {k: got[k] for k in PARAMS} == params
    assert [got[k] for k in SCORES] == [row[k] for k in SCORES]


def test_postgresql_urls_use_psycopg_3():
    import importlib.util

    from avmit_psych.models import search
    if importlib.util.find_spec("psycopg2") is None:
        assert search.storage_url("postgresql://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
        assert search.storage_url("postgres://h/db") == "postgresql+psycopg://h/db"
    for url in ("postgresql+psycopg://h/db", "sqlite:///x.db"):
        assert search.storage_url(url) == url
    assert search.shown_url("postgresql+psycopg://u:secret@h/db") == \
        "postgresql+psycopg://u:***@h/db"


# -- bad input ----------------------------------------------------------------------------------
@requires_tf
def test_joining_with_another_seed_is_an_error_naming_the_study(search_data, alone, cli,
                                                                tmp_path):
    out = tmp_path / "s"
    r = cli("analysis", _args(search_data, out, "--trials", "1"))
    assert r.code == 0, r.err
    args = _args(search_data, out, "--trials", "1")
    args[args.index("--seed") + 1] = "6"
    r = cli("analysis", args)
    assert r.code == 2 and r.err.count("\n") == 1
    assert "study 'vggish_vgg16_gru_avmit' searches with another seed (5 there, 6 here)" in r.err
    assert "Fix: run with the study's settings" in r.err


@requires_tf
@pytest.mark.parametrize("storage, expected", [
    ("nonsense", "not a storage URL"),
    ("redis://localhost/0", "'redis' storage is not supported"),
    ("postgresql+psycopg://nobody:secret@127.0.0.1:1/x", "cannot open the search storage"),
])
def test_a_bad_storage_is_one_line_naming_it(search_data, cli, tmp_path, storage, expected):
    r = cli("analysis", _args(search_data, tmp_path / "s", "--storage", storage))
    assert r.code == 2 and r.err.count("\n") == 1, r.err
    assert expected in r.err and "secret" not in r.err


@requires_tf
def test_an_old_results_csv_is_not_overwritten(search_data, cli, tmp_path):
    out = tmp_path / "s"
    out.mkdir()
    (out / "results.csv").write_text("trial,oob_loss,seed\n0,1.5,0\n")
    r = cli("analysis", _args(search_data, out))
    assert r.code == 2 and "results.csv here does not come from study" in r.err
    assert (out / "results.csv").read_text() == "trial,oob_loss,seed\n0,1.5,0\n"
