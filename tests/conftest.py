"""Shared test fixtures: the reference folder, synthetic data and an in-process CLI runner."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO.parent / "shared" / "reference"
AVMIT_REFERENCE = REFERENCE / "avmit"


@pytest.fixture(scope="session")
def avmit_reference() -> Path:
    """../shared/reference/avmit; tests using it are skipped (with the reason) when absent."""
    if not (AVMIT_REFERENCE / "test_set.csv").exists():
        pytest.skip(f"released AVMIT files not found at {AVMIT_REFERENCE} (a user's clone "
                    "without ../shared/reference); CI has them")
    return AVMIT_REFERENCE


@pytest.fixture(scope="session")
def paper_scale():
    """One AVMIT-scale synthetic campaign (57,177 videos), shared by the tests that need it."""
    from avmit_psych.dataset import synthetic
    return synthetic.simulate_ratings(seed=7)


@pytest.fixture(scope="session")
def small_campaign():
    from avmit_psych.dataset import synthetic
    return synthetic.simulate_ratings(3000, seed=3)


@pytest.fixture(scope="session")
def demo_study_parent(tmp_path_factory):
    """One parent folder for the human-vs-DNN demo study (``<parent>/seed-N``), shared by the
    tests that build it, so that a session builds each seed once (~1.5 min a build)."""
    return tmp_path_factory.mktemp("demo_studies")


@pytest.fixture(scope="session")
def main_job(tmp_path_factory, demo_study_parent):
    """The README's main job, ``python -m avmit_psych demo``, run once a session as a user runs
    it (a fresh process, TensorFlow's log level untouched), with a smaller annotation campaign
    (20,000 videos) and 3 training epochs: (CliResult of stdout/stderr, output folder)."""
    import os
    import subprocess
    import sys
    out = tmp_path_factory.mktemp("main_job") / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "avmit_psych", "demo", "--out", str(out), "--n-videos", "20000",
         "--seed", "0", "--epochs", "3", "--demo-root", str(demo_study_parent)],
        capture_output=True, text=True, cwd=REPO, timeout=1800,
        env={k: v for k, v in os.environ.items() if k != "AVMIT_PSYCH_VERBOSE"})
    return CliResult(proc.returncode, proc.stdout, proc.stderr), out


class CliResult:
    def __init__(self, code, out, err):
        self.code, self.out, self.err = code, out, err


@pytest.fixture
def cli(capsys):
    """Run ``python -m avmit_psych.<module>`` in-process: cli('analysis', [...])."""
    import importlib

    from avmit_psych._cli import run

    def invoke(module: str, argv) -> CliResult:
        mod = importlib.import_module(f"avmit_psych.{module}.__main__" if module
                                      else "avmit_psych.__main__")
        code = run(mod.main, [str(a) for a in argv])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return invoke


#: Skip (without importing it) when TensorFlow is not installed. Test modules must not import
#: TensorFlow at collection: once TF's bundled LLVM is loaded, creating an OpenGL context with
#: Mesa's llvmpipe (Xvfb) crashes the process, so in-process window tests run first.
requires_tf = pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None,
                                 reason="TensorFlow is not installed")
WINDOW_TEST_FILES = ("test_player.py", "test_audio_timing.py")


def pytest_collection_modifyitems(session, config, items):
    """Window tests cannot share a process with TensorFlow (Mesa's and TF's LLVM clash, in
    either order): when both kinds are collected, the window tests are skipped here and
    scripts/test.sh runs them in a process of their own."""
    window = [i for i in items if i.path.name in WINDOW_TEST_FILES]
    if window and len(window) < len(items):
        skip = pytest.mark.skip(reason="opens OpenGL windows: run on its own "
                                       "(bash scripts/test.sh does), not with TensorFlow tests")
        for item in window:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server for the session (started in a temporary folder, stopped after).
    Each test takes its own database with ``postgres_server.create_database(name)`` or the
    ``postgres_url`` fixture."""
    from tests.services import PostgresServer, postgres_bindir
    if postgres_bindir() is None:
        pytest.fail("PostgreSQL is not installed: bash scripts/setup.sh installs Debian's "
                    "postgresql package")
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server, request):
    """A fresh database on the session's PostgreSQL server, as a SQLAlchemy/Optuna URL."""
    import re
    import uuid
    name = re.sub(r"[^a-z0-9_]", "_", request.node.name.lower())[:40] + "_" + uuid.uuid4().hex[:6]
    return postgres_server.create_database(name)
