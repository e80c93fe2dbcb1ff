"""Quiet, clear output (issue 17): no TensorFlow C++ log lines on a CPU-only machine unless
--verbose; nothing else written to stderr is lost."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pandas as pd

from tests.conftest import REPO, requires_tf

#: absl/TensorFlow C++ log lines and the notice before absl's logging starts.
NATIVE = re.compile(r"^(?:[IWEF]\d{4} \S+\s+\d+ \S+:\d+\]|WARNING: All log messages before absl)",
                    re.M)
TF_WORDS = ("cuInit", "cudart_stub", "oneDNN custom operations", "cuda_platform")


def _python(code: str, **env) -> subprocess.CompletedProcess:
    full = {**os.environ, **env}
    full.pop("AVMIT_PSYCH_VERBOSE", None) if "AVMIT_PSYCH_VERBOSE" not in env else None
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, env=full, timeout=600)


def test_filter_keeps_everything_but_native_log_lines():
    from avmit_psych._tf import filter_native_log
    text = ("WARNING: All log messages before absl::InitializeLog() is called are written to "
            "STDERR\n"
            "I0000 00:00:1796199535.394105   30956 port.cc:153] oneDNN custom operations are on.\n"
            "UserWarning: something a user should see\n"
            "E0000 00:00:1796199540.086279   30956 cuda_platform.cc:52] failed call to cuInit\n"
            "W1202 08:16:30.123456   30956 some_file.cc:10] a later warning\n"
            "Traceback (most recent call last):\n")
    assert filter_native_log(text) == ("UserWarning: something a user should see\n"
                                       "Traceback (most recent call last):\n")


def test_quiet_block_passes_other_stderr_output_through():
    code = ("import os\nfrom avmit_psych._tf import quiet_native_stderr\n"
            "with quiet_native_stderr():\n"
            "    os.write(2, b'keep me\\nI0000 00:00:1.0   1 port.cc:153] oneDNN notice\\n')\n"
            "    import sys; print('and me', file=sys.stderr)\n")
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "keep me\nand me\n"


@requires_tf
def test_tensorflow_start_up_is_silent_unless_verbose():
    code = ("from avmit_psych import _tf\nk = _tf.keras(); tf = _tf.tensorflow()\n"
            "m = k.Sequential([k.layers.Input((3,)), k.layers.Dense(2)])\n"
            "print(tuple(m(tf.zeros((1, 3))).shape))\n")
    quiet = _python(code)
    assert quiet.returncode == 0 and quiet.stdout.strip() == "(1, 2)"
    assert not NATIVE.search(quiet.stderr), quiet.stderr
    assert not any(word in quiet.stderr for word in TF_WORDS), quiet.stderr
    loud = _python(code, AVMIT_PSYCH_VERBOSE="1")
    assert loud.returncode == 0
    # on a machine without a GPU TensorFlow does log these; --verbose shows them untouched
    assert NATIVE.search(loud.stderr), loud.stderr


@requires_tf
def test_the_main_job_prints_no_tensorflow_internals(main_job):
    """`bash scripts/demo.sh` runs `python -m avmit_psych demo`: the session's run of that
    command as a user runs it (conftest.main_job), everything it printed."""
    proc, _ = main_job
    assert proc.code == 0, proc.err[-3000:]
    output = proc.out + proc.err
    assert "demo finished" in proc.out
    assert not NATIVE.search(output), NATIVE.findall(output)[:5]
    assert not any(word in output for word in TF_WORDS)
    # the long steps show progress: both comparisons' psychometric fits
    assert proc.err.count("psychometric fits") >= 2 and "fit/s" in proc.err


def test_compare_shows_a_progress_bar_for_its_fits_unless_quiet(tmp_path, cli):
    from avmit_psych.dataset.synthetic.observers import simulate_comparison
    trials, predictions = simulate_comparison(n_humans=3, n_models=1, n_stimuli=120, seed=2)
    trials.to_csv(tmp_path / "trials.csv", index=False)
    predictions.to_csv(tmp_path / "predictions.csv", index=False)
    args = ["compare", "--humans", tmp_path / "trials.csv", "--models",
            tmp_path / "predictions.csv", "--bootstrap", "0", "--workers", "1"]
    shown = cli("analysis", [*args, "--out", tmp_path / "shown"])
    assert shown.code == 0, shown.err
    bars = [line for line in shown.err.replace("\r", "\n").splitlines()
            if line.startswith("psychometric fits")]
    n_fits = len(pd.read_csv(tmp_path / "shown" / "psychometric.csv"))
    assert n_fits > 0 and any(f"{n_fits}/{n_fits}" in line for line in bars), shown.err
    quiet = cli("analysis", [*args, "--out", tmp_path / "quiet", "--quiet"])
    assert quiet.code == 0 and "psychometric fits" not in quiet.err
    assert (tmp_path / "quiet" / "psychometric.csv").read_bytes() == \
        (tmp_path / "shown" / "psychometric.csv").read_bytes()


def _is_categorical(axis) -> bool:
    """Tick labels are words (condition or class names), not numbers."""
    texts = [t.get_text().replace("\u2212", "-") for t in axis.get_ticklabels()]
    texts = [t for t in texts if t]
    if not texts:
        return False
    try:
        [float(t) for t in texts]
    except ValueError:
        return True
    return False


def test_every_figure_axis_of_compare_carries_units(tmp_path, monkeypatch):
    """Each numeric axis of compare's figures names its quantity and its unit in brackets
    (dB SNR, pixel SD, ms, proportion, kappa ...); word axes are category names."""
    import matplotlib
    matplotlib.use("Agg")
    from avmit_psych.analysis import figures
    from avmit_psych.analysis.compare import run_comparison, write_comparison
    from avmit_psych.analysis.observers import load_observations
    from avmit_psych.dataset import synthetic
    from tests.test_compare import write_study

    seen = {}
    original = figures._save

    def spy(fig, path):
        fig.canvas.draw()
        seen[path.name] = [(ax.get_xlabel(), _is_categorical(ax.xaxis), ax.get_ylabel(),
                            _is_categorical(ax.yaxis))
                           for ax in fig.axes if ax.has_data() and ax.get_label() != "<colorbar>"]
        return original(fig, path)

    monkeypatch.setattr(figures, "_save", spy)
    trials, predictions = synthetic.simulate_comparison(6, 2, 300, seed=2)
    humans, models = write_study(tmp_path, trials, predictions)
    result = run_comparison(load_observations([humans], [models]), n_boot=50, seed=0)
    write_comparison(result, tmp_path / "cmp")
    assert {"accuracy.png", "psychometric.png", "error_consistency.png"} <= set(seen)
    units = ("(dB SNR)", "(pixel SD", "(ms", "proportion", "(Cohen's", "kappa)")
    for name, axes in seen.items():
        for xlabel, x_words, ylabel, y_words in axes:
            for label, words in ((xlabel, x_words), (ylabel, y_words)):
                if not words:
                    assert any(u in label for u in units), (name, label)
