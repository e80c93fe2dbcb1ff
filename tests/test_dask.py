"""Extraction and suite generation on Dask (issue 16 point 2): on a 2-process LocalCluster the
files are byte-identical to a single-process run; a worker SIGKILLed in the middle of a shard
(the test hook of avmit_psych._cluster) does not stop the command and leaves every output
right; a rerun writes nothing; --scheduler joins a running scheduler, whose workers build the
encoders once each; bad flags are one line and exit code 2; without the flags Dask is not
imported.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest

from avmit_psych import _cluster
from avmit_psych.dataset import schema, synthetic
from avmit_psych.dataset.schema import DatasetError
from tests.conftest import REPO, requires_tf
from tests.videos import make_video

# imported here, outside capsys: distributed's log handlers then write to the session's stderr,
# not to one test's captured stream
import distributed  # noqa: E402,F401  (a pinned requirement: fail, never skip, when missing)

CLASSES = ["barking", "diving", "drumming"]


# -- helpers ------------------------------------------------------------------------------------
def _files(root, pattern: str) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob(pattern))}


def _stats(root, pattern: str) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in sorted(root.rglob(pattern))}


def _no_temporaries(root) -> bool:
    return not [p for p in root.rglob("*") if ".tmp" in p.name or p.name.startswith(".audio-")]


def _kill_in_shard(monkeypatch, tmp_path, shard: int):
    marker = tmp_path / "killed.pid"
    monkeypatch.setenv(_cluster.KILL_ENV, str(shard))
    monkeypatch.setenv(_cluster.KILL_MARKER_ENV, str(marker))
    return marker


def _pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat") as fh:  # killed but not yet reaped
        return fh.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")


# -- extraction ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("dask_videos")
    rows = []
    for k in range(2):
        for i, label in enumerate(CLASSES):
            name = f"{label}/yt-{label}-{k}.mp4"
            make_video(root / name, tone_hz=300 + 100 * i + 37 * k)
            rows.append({"filename": name, "AVMIT_label": label, "MIT_label": label,
                         "video_location": "training",
                         "tfrecord_filename": schema.tfrecord_filename(label, name)})
    csv = root / "test_set.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    return root, csv


def _extract_args(videos, out, *extra):
    root, csv = videos
    return ["extract", "--videos", root, "--csv", csv, "--out", out, "--audio", "yamnet",
            "--visual", "effnetb0", "--audio-model", "random", "--visual-weights", "random",
            "--quiet", *extra]


@pytest.fixture(scope="module")
def single_extraction(videos, tmp_path_factory):
    """The reference: today's single-process run."""
    from avmit_psych._cli import run
    from avmit_psych.features.__main__ import main
    out = tmp_path_factory.mktemp("single") / "tfr"
    assert run(main, [str(a) for a in _extract_args(videos, out)]) == 0
    return out, pd.read_csv(out / "extract_report.csv")


@requires_tf
def test_extraction_on_two_worker_processes_survives_a_killed_worker(
        videos, single_extraction, cli, tmp_path, monkeypatch):
    single, single_report = single_extraction
    marker = _kill_in_shard(monkeypatch, tmp_path, shard=1)
    out = tmp_path / "tfr"
    r = cli("features", _extract_args(videos, out, "--cluster", "local:2", "--shard-size", "2"))
    assert r.code == 0, r.err
    assert marker.exists(), "the test hook did not kill a worker"
    assert _pid_gone(int(marker.read_text()))
    # byte for byte what one process writes
    assert _files(out, "*.tfrecord") == _files(single, "*.tfrecord")
    assert len(_files(out, "*.tfrecord")) == 6 and _no_temporaries(out)
    report = pd.read_csv(out / "extract_report.csv")
    cols = ["row", "filename", "tfrecord_filename", "video_path"]
    pd.testing.assert_frame_equal(report[cols], single_report[cols])
    written = report["status"] == "written"
    steps = ["audio_timesteps", "visual_timesteps"]
    assert (report.loc[written, steps] == single_report.loc[written, steps]).all().all()
    # shard 1 is rows 3-4: the killed worker wrote row 3 before it died; the shard, run again
    # on a live worker, found that file whole and kept it
    assert report.set_index("row")["status"].to_dict() == {
        1: "written", 2: "written", 3: "skipped", 4: "written", 5: "written", 6: "written"}
    # a rerun writes nothing (no shard is even sent) and says so
    before = _stats(out, "*.tfrecord")
    again = cli("features", _extract_args(videos, out, "--cluster", "local:2"))
    assert again.code == 0, again.err
    assert _stats(out, "*.tfrecord") == before
    rerun = pd.read_csv(out / "extract_report.csv")
    assert (rerun["status"] == "skipped").all()
    assert (rerun["reason"] == "already extracted (verified)").all()
    assert "0 written, 6 already there, 0 failed" in again.out


def _encoder_loads():
    from avmit_psych.features import extract
    return {repr(spec): n for spec, n in extract.ENCODER_LOADS.items()}


@requires_tf
def test_scheduler_address_joins_a_running_cluster_whose_workers_build_encoders_once(
        videos, single_extraction, cli, tmp_path):
    single, single_report = single_extraction
    from distributed import Client, LocalCluster
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=":0")
    try:
        with Client(cluster) as client:
            out = tmp_path / "tfr"
            r = cli("features", _extract_args(videos, out, "--scheduler",
                                              cluster.scheduler_address, "--shard-size", "1"))
            assert r.code == 0, r.err
            loads = client.run(_encoder_loads)
            assert len(cluster.workers) == 2, "the command must not close a cluster it joined"
    finally:
        _cluster._close_quietly(cluster)
    assert _files(out, "*.tfrecord") == _files(single, "*.tfrecord")
    report = pd.read_csv(out / "extract_report.csv")
    pd.testing.assert_frame_equal(report, single_report)  # the whole report, as one process
    # 6 shards of one video on 2 workers; each worker built the encoders once at most
    counts = [n for per_worker in loads.values() for n in per_worker.values()]
    assert counts and all(n == 1 for n in counts) and len(counts) <= 2
    assert all(len(per_worker) <= 1 for per_worker in loads.values())


# -- suite generation -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def suite_inputs(tmp_path_factory):
    from avmit_psych.stimuli import generate
    base = tmp_path_factory.mktemp("dask_clips")
    csv = synthetic.write_probe_clips(base / "videos", base / "test_set.csv", per_class=2,
                                      classes=["barking", "diving"], size=(64, 48))
    suite = base / "s.yaml"
    suite.write_text("name: s\ncontainer: mp4\nconditions:\n  none: true\n"
                     "  av_offset: {levels: [100]}\n  visual_noise: {levels: [16]}\n"
                     "  semantic_swap: true\n")
    single = base / "single"
    sources = generate.sources_from_test_set(csv, base / "videos")
    generate.generate(suite, sources, single, seed=5, workers=2, progress=False, verify=False)
    return base, csv, suite, single


def _generate_args(suite_inputs, out, *extra):
    base, csv, suite, _ = suite_inputs
    return ["generate", "--suite", suite, "--videos", base / "videos", "--test-set", csv,
            "--out", out, "--seed", "5", "--no-verify", "--quiet", *extra]


def test_suite_on_two_worker_processes_survives_a_killed_worker(suite_inputs, cli, tmp_path,
                                                                 monkeypatch):
    single = suite_inputs[3]
    marker = _kill_in_shard(monkeypatch, tmp_path, shard=1)
    out = tmp_path / "suite"
    r = cli("stimuli", _generate_args(suite_inputs, out, "--cluster", "local:2",
                                      "--shard-size", "2"))
    assert r.code == 0, r.err
    assert marker.exists() and _pid_gone(int(marker.read_text()))
    ours, theirs = pd.read_csv(out / "manifest.csv"), pd.read_csv(single / "manifest.csv")
    assert len(ours) == 16
    pd.testing.assert_frame_equal(ours, theirs)  # checksums and every other column
    assert _files(out, "*.mp4") == _files(single, "*.mp4") and _no_temporaries(out)
    before, journal = _stats(out, "*.mp4"), (out / ".journal.csv").read_bytes()
    again = cli("stimuli", _generate_args(suite_inputs, out, "--cluster", "local:2"))
    assert again.code == 0, again.err
    assert _stats(out, "*.mp4") == before and (out / ".journal.csv").read_bytes() == journal
    pd.testing.assert_frame_equal(pd.read_csv(out / "manifest.csv"), theirs)


def test_suite_through_a_scheduler_address(suite_inputs, cli, tmp_path):
    single = suite_inputs[3]
    from distributed import LocalCluster
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=":0")
    try:
        out = tmp_path / "suite"
        r = cli("stimuli", _generate_args(suite_inputs, out, "--scheduler",
                                          cluster.scheduler_address, "--shard-size", "1"))
        assert r.code == 0, r.err
    finally:
        _cluster._close_quietly(cluster)
    assert _files(out, "*.mp4") == _files(single, "*.mp4")
    pd.testing.assert_frame_equal(pd.read_csv(out / "manifest.csv"),
                                  pd.read_csv(single / "manifest.csv"))


# -- flags ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("flags, expected", [
    (["--cluster", "local:0"], "--cluster 'local:0' asks for no workers"),
    (["--cluster", "local:two"], "--cluster 'local:two' is not local:N"),
    (["--cluster", "4"], "--cluster '4' is not local:N"),
    (["--cluster", "slurm:4"], "--cluster 'slurm:4' is not local:N"),
    (["--scheduler", "tcp://a host:8786"], "is not a scheduler address"),
    (["--scheduler", "local:2"], "--scheduler 'local:2' is not a scheduler address"),
    (["--scheduler", "tcp://h:8786", "--cluster", "local:2"], "both given"),
    (["--cluster", "local:2", "--shard-size", "0"], "--shard-size 0 is below 1"),
])
@pytest.mark.parametrize("command", ["features", "stimuli"])
def test_bad_cluster_flags_are_one_line_and_exit_2(cli, tmp_path, command, flags, expected):
    if command == "features":
        argv = _extract_args((tmp_path, tmp_path / "missing.csv"), tmp_path / "o", *flags)
    else:
        argv = ["generate", "--suite", tmp_path / "s.yaml", "--videos", tmp_path,
                "--test-set", tmp_path / "t.csv", "--out", tmp_path / "o", *flags]
    r = cli(command, argv)
    assert r.code == 2
    assert expected in r.err and "Fix:" in r.err
    assert r.err.count("\n") == 1, "the error is exactly one line"
    assert not (tmp_path / "o").exists()


def test_an_unreachable_scheduler_is_a_one_line_error():
    with pytest.raises(DatasetError, match=r"no Dask scheduler answered at tcp://127.0.0.1:9 "
                                           r"within 2 s.*Fix: start one with `dask scheduler`"):
        with _cluster.connect("tcp://127.0.0.1:9", timeout_s=2):
            pass


def test_without_the_flags_dask_is_not_imported(suite_inputs, tmp_path):
    base, csv, suite, _ = suite_inputs
    code = f"""
import sys
import avmit_psych.features.__main__ as features, avmit_psych.stimuli.__main__ as stimuli
from avmit_psych._cli import run
for module, argv in ((features, ["extract", "--help"]), (stimuli, ["generate", "--help"])):
    try:
        module.main(argv)
    except SystemExit:
        pass
assert run(stimuli.main, ["generate", "--suite", {str(suite)!r}, "--videos",
                          {str(base / 'videos')!r}, "--test-set", {str(csv)!r}, "--out",
                          {str(tmp_path / 'out')!r}, "--workers", "1", "--no-verify",
                          "--quiet"]) == 0
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("dask", "distributed"))
assert not loaded, loaded
print("ok")
"""
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-2000:]


# -- the shard runner -----------------------------------------------------------------------------
def _double(shard, factor):
    return [x * factor for x in shard]


def _bad_input(shard):
    raise DatasetError("holds embeddings of sizes (1, 2)", path="/data/x.tfrecord", row=3,
                       fix="give --out a folder of its own")


def _always_fails(shard):
    raise RuntimeError("disk on fire")


def _fails_once(shard, counter):
    from pathlib import Path
    counter = Path(counter) / f"shard{shard[0]}"
    if not counter.exists():
        counter.write_text("tried")
        raise OSError("a network filesystem hiccup")
    return shard


@pytest.fixture(scope="module")
def threads_client():
    from distributed import Client, LocalCluster
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        yield client


def test_shards_results_retries_and_errors(threads_client, tmp_path):
    assert _cluster.shards(list(range(7)), 3) == [[0, 1, 2], [3, 4, 5], [6]]
    got = sorted((i, tuple(r)) for i, _, r, e in _cluster.run_shards(
        threads_client, _double, _cluster.shards([1, 2, 3], 2), 10, progress=False))
    assert got == [(0, (10, 20)), (1, (30,))]
    # an error its retries cure
    got = list(_cluster.run_shards(threads_client, _fails_once, [[1], [2]], str(tmp_path),
                                   retries=1, progress=False))
    assert sorted(r for _, _, r, e in got) == [[1], [2]] and all(e is None for *_, e in got)
    # one they do not: the shard comes back failed, with the reason
    got = list(_cluster.run_shards(threads_client, _always_fails, [[1]], retries=1,
                                   progress=False))
    assert got[0][2] is None and "RuntimeError: disk on fire" in got[0][3]
    # bad input: raised here as it was raised there, not retried
    with pytest.raises(DatasetError) as err:
        list(_cluster.run_shards(threads_client, _bad_input, [[1], [2]], retries=3,
                                 progress=False))
    assert str(err.value) == ("/data/x.tfrecord, row 3 (line 4): holds embeddings of sizes "
                              "(1, 2). Fix: give --out a folder of its own")
