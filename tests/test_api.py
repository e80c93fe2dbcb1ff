"""The public API: every name in ``avmit_psych.__all__`` has a docstring example that runs.

Each name's examples are collected with :class:`doctest.DocTestFinder` and run with
:class:`doctest.DocTestRunner` (ELLIPSIS and NORMALIZE_WHITESPACE on), one test per name; and
``import avmit_psych`` is checked, in a fresh interpreter, not to load the heavy libraries.
"""
from __future__ import annotations

import doctest
import importlib.util
import inspect
import re
import subprocess
import sys
import time

import pytest

import avmit_psych as ap

#: Names whose examples run TensorFlow (skipped, not failed, where it is not installed).
NEEDS_TF = {"extract", "write_tfrecord", "read_tfrecord", "synthetic_embeddings",
            "load_embeddings", "train", "predict", "search"}
HEAVY = ("tensorflow", "psychopy", "moviepy", "dask", "optuna")
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _examples(obj, name: str) -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder(recurse=False)
    return [t for t in finder.find(obj, name, globs={}) if t.examples]


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    """Examples that load embeddings keep their cache in the test's folder."""
    monkeypatch.setenv("AVMIT_PSYCH_CACHE", str(tmp_path / "cache"))


def test_all_names_are_the_api_and_listed_by_dir():
    from avmit_psych import api
    assert len(ap.__all__) == len(set(ap.__all__))
    for name in ap.__all__:
        assert callable(getattr(ap, name)), name
        assert getattr(ap, name) is getattr(api, name)
        assert getattr(ap, name).__module__ == "avmit_psych.api", name
    assert set(ap.__all__) <= set(dir(ap))
    public = {n for n, v in vars(api).items() if inspect.isfunction(v) and
              v.__module__ == api.__name__ and not n.startswith("_")}
    assert public == set(ap.__all__), "api.py's public functions and __all__ differ"
    with pytest.raises(AttributeError):
        ap.no_such_function  # noqa: B018


@pytest.mark.parametrize("name", ap.__all__)
def test_docstring_example_runs(name, capsys):
    if name in NEEDS_TF and importlib.util.find_spec("tensorflow") is None:
        pytest.skip("TensorFlow is not installed")
    obj = getattr(ap, name)
    tests = _examples(obj, f"avmit_psych.{name}")
    assert tests, f"ap.{name} has no '>>>' example in its docstring"
    doc = inspect.getdoc(obj)
    sections = ["Parameters"] if inspect.signature(obj).parameters else []
    for section in sections + ["Returns", "Examples"]:
        assert re.search(rf"^{section}\n-{{3,}}$", doc, re.M), f"ap.{name}: no {section}"
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    start = time.perf_counter()
    for test in tests:
        runner.run(test, out=sys.stdout.write)
    seconds = time.perf_counter() - start
    report = capsys.readouterr().out
    assert runner.failures == 0, f"ap.{name}'s example failed:\n{report}"
    assert runner.tries > 0
    print(f"ap.{name}: {runner.tries} examples in {seconds:.1f} s")


def test_package_docstring_example_runs():
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    for test in _examples(ap, "avmit_psych"):
        runner.run(test)
    assert runner.tries and not runner.failures


def test_import_is_light():
    """``import avmit_psych`` (and listing its API) loads no heavy library: they come with
    the call that needs them."""
    code = ("import sys, avmit_psych as ap; names = dir(ap); "
            "assert set(ap.__all__) <= set(names); "
            "heavy = sorted({'tensorflow', 'psychopy', 'moviepy', 'dask', 'optuna'} & "
            "set(sys.modules)); print(heavy); assert not heavy, heavy; "
            "assert 'avmit_psych.api' not in sys.modules, 'the API loaded eagerly'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_api_functions_load_no_heavy_library_until_called():
    """Getting every API function (what ``from avmit_psych import *`` does) loads the API
    module but still none of the heavy libraries."""
    code = ("import sys; from avmit_psych import *; import avmit_psych as ap; "
            "[getattr(ap, n) for n in ap.__all__]; "
            "assert 'avmit_psych.api' in sys.modules; "
            f"heavy = sorted(set({HEAVY!r}) & set(sys.modules)); assert not heavy, heavy")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


# -- the wrappers give the stage modules' numbers ---------------------------------------------
@pytest.fixture(scope="module")
def comparison():
    trials, predictions = ap.simulate_comparison(n_humans=4, n_models=2, n_stimuli=216, seed=2)
    return trials, predictions, ap.compare(trials, predictions, n_boot=200)


def test_analyses_match_compare_on_its_observations(comparison):
    import pandas as pd
    _, _, result = comparison
    obs = result.observations.trials
    pd.testing.assert_frame_equal(ap.accuracy(obs), result.accuracy)
    pd.testing.assert_frame_equal(ap.single_case(obs, n_boot=200), result.summary)
    pd.testing.assert_frame_equal(ap.psychometric_fit(obs, level="level_value"),
                                  result.psychometric)
    order = ["condition", "observer_a", "observer_b"]
    pd.testing.assert_frame_equal(
        ap.error_consistency(obs, n_boot=200).sort_values(order).reset_index(drop=True),
        result.pairs.sort_values(order).reset_index(drop=True))


def test_analyses_take_the_contracts_columns_as_they_are(comparison):
    """Raw trials and predictions, stacked or not: conditions come from manipulation and
    level, models are named, and the numbers are compare's."""
    import pandas as pd
    trials, predictions, result = comparison
    humans = result.accuracy[result.accuracy["observer_type"] == "human"]
    mine = ap.accuracy(trials, observer="participant")
    columns = ["observer", "condition", "level_value", "n_trials", "n_correct", "accuracy",
               "ci_low", "ci_high"]
    pd.testing.assert_frame_equal(mine[columns], humans[columns].reset_index(drop=True))
    stacked = pd.concat([trials.rename(columns={"participant": "observer"}),
                         predictions.rename(columns={"model": "observer"})])
    pd.testing.assert_frame_equal(
        ap.single_case(stacked, models=["model_01", "model_02"], n_boot=200), result.summary)
    with pytest.raises(ValueError, match="which observers are humans"):
        ap.single_case(stacked, n_boot=0)
    with pytest.raises(ValueError, match="no column 'subject'.*observer="):
        ap.accuracy(trials, observer="subject")


def test_sdt_matches_compare_on_correspondence_trials():
    """Simulated same/different trials (the answer key follows from response and correct;
    one-modality stimuli ask no question and are left out) give compare's d' table."""
    import pandas as pd
    suite = {"name": "t", "conditions": {"none": True, "audio_noise": {"levels": [0, -10]},
                                         "semantic_swap": True, "audio_only": True}}
    stimuli = ap.synthetic_manifest(suite, per_class=2)
    trials = ap.simulate_observers(stimuli, n=3, task="correspondence", seed=1) \
        .assign(session=1, block="main")
    result = ap.compare(trials, n_boot=0, psychometric=False)
    pd.testing.assert_frame_equal(ap.sdt(trials, observer="participant", observer_type=None)
                                  .drop(columns="observer_type"),
                                  result.sdt.drop(columns="observer_type"))


def test_single_case_refuses_models_that_are_not_in_the_data(comparison):
    trials, predictions, _ = comparison
    import pandas as pd
    stacked = pd.concat([trials.rename(columns={"participant": "observer"}),
                         predictions.rename(columns={"model": "observer"})])
    with pytest.raises(ValueError, match="none of the models named"):
        ap.single_case(stacked, models="resnet50", n_boot=0)
