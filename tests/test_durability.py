"""TFRecords and outputs that never lie (issue 12, point 2).

- Every malformed TFRecord (wrong value kinds, a flipped byte caught by either CRC, truncated
  files, a missing feature, a wrong embedding size) gives one error line naming the file and the
  record, exit 2 through ``analysis evaluate``; ``--skip-bad`` reads the good rows and lists the
  bad ones.
- Every writer fsyncs the file before, and the folder after, its rename.
- A writer SIGKILLed between its write and its rename (a real process, held there by the
  ``AVMIT_PSYCH_HOLD_BEFORE_RENAME`` hook of ``avmit_psych._atomic``), or an output cut to half
  its length, is redone by the next resumed run (extraction and suite generation), never kept.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from avmit_psych import _atomic
from avmit_psych.dataset import schema, tfrecords
from avmit_psych.dataset.schema import DatasetError
from tests.conftest import REPO, requires_tf

pytestmark = requires_tf

GRU = REPO / "analysis" / "configs" / "recognition" / "vggish_vgg16_gru_avmit.yaml"


def _tf():
    import tensorflow
    return tensorflow


# -- building malformed records ----------------------------------------------------------------
def _feature(kind, value):
    tf = _tf()
    if kind == "bytes":
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
    if kind == "int64":
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
    return tf.train.Feature(float_list=tf.train.FloatList(value=[value]))


def _sequence_example(label="barking", *, audio_size=128, visual_size=512, n_audio=3,
                      n_visual=4, timesteps_kind="int64", label_kind="bytes",
                      step_kind="bytes", drop=(), seed=0):
    """A SequenceExample like the released ones, with one thing changed on request."""
    tf = _tf()
    rng = np.random.default_rng(seed)
    audio = rng.random((n_audio, audio_size), dtype=np.float32)
    visual = rng.random((n_visual, visual_size), dtype=np.float32)
    label_value = label.encode() if label_kind == "bytes" else 7
    ctx = {"filename": _feature("bytes", f"{label}/x.mp4".encode()),
           "label": _feature(label_kind, label_value),
           "audio_timesteps": _feature(timesteps_kind, n_audio if timesteps_kind == "int64"
                                       else float(n_audio)),
           "visual_timesteps": _feature("int64", n_visual)}
    steps = {"audio": [_feature(step_kind, r.tobytes() if step_kind == "bytes" else 0.5)
                       for r in audio],
             "visual_object": [_feature("bytes", r.tobytes()) for r in visual]}
    example = tf.train.SequenceExample(
        context=tf.train.Features(feature={k: v for k, v in ctx.items() if k not in drop}),
        feature_lists=tf.train.FeatureLists(feature_list={
            k: tf.train.FeatureList(feature=v) for k, v in steps.items() if k not in drop}))
    return example.SerializeToString()


def _tf_written(path: Path, payload: bytes) -> Path:
    """``payload`` framed by TensorFlow's own GZIP TFRecord writer (correct CRCs)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _tf().io.TFRecordWriter(str(path), options="GZIP") as writer:
        writer.write(payload)
    return path


def _with_framing_changed(src: Path, dst: Path, change) -> Path:
    """``dst``: ``src`` gunzipped, its TFRecord bytes changed, and gzipped again (so gzip's own
    CRC is fine and only the TFRecord checks can notice)."""
    raw = bytearray(gzip.decompress(src.read_bytes()))
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(gzip.compress(bytes(change(raw))))
    return dst


def _flip(offset):
    def change(raw):
        raw[offset] ^= 0x01
        return raw
    return change


#: name -> (how the file is made, the words the error must contain)
MALFORMED = {
    "float_timesteps": ("float audio_timesteps",
                        "record 1, context feature 'audio_timesteps': expected int64, found "
                        "float"),
    "int_label": ("int64 label", "record 1, context feature 'label': expected bytes, found int64"),
    "float_step": ("float audio timestep",
                   "record 1, sequence feature 'audio' timestep 1: expected bytes, found float"),
    "flip_length": ("one flipped byte in the length", "record 1: length CRC mismatch"),
    "flip_length_crc": ("one flipped byte in the length CRC", "record 1: length CRC mismatch"),
    "flip_payload": ("one flipped byte in a float of the data", "record 1: data CRC mismatch"),
    "flip_data_crc": ("one flipped byte in the data CRC", "record 1: data CRC mismatch"),
    "flip_gzip": ("one flipped byte in the compressed file", "not a complete GZIP TFRecord"),
    "truncated_file": ("the file cut to half its length", "not a complete GZIP TFRecord"),
    "truncated_record": ("the TFRecord cut to half, gzipped whole",
                         "truncated TFRecord (record 1 holds"),
    "missing_feature": ("no visual_object feature list",
                        "record 1: not the released layout: missing visual_object"),
    "wrong_size": ("audio embeddings of 100 values",
                   "embedding sizes (100, 512) are not a released set"),
    "two_records": ("two SequenceExamples in one file", "expected one SequenceExample, found 2"),
}


def _make_malformed(root: Path, name: str) -> Path:
    good = root / "barking" / "template.tfrecord"
    if not good.exists():
        _tf_written(good, _sequence_example())
    path = root / "barking" / f"{name}.tfrecord"
    n = len(_sequence_example())
    if name == "float_timesteps":
        return _tf_written(path, _sequence_example(timesteps_kind="float"))
    if name == "int_label":
        return _tf_written(path, _sequence_example(label_kind="int64"))
    if name == "float_step":
        return _tf_written(path, _sequence_example(step_kind="float"))
    if name == "missing_feature":
        return _tf_written(path, _sequence_example(drop=("visual_object",)))
    if name == "wrong_size":
        return _tf_written(path, _sequence_example(audio_size=100))
    if name == "flip_length":
        return _with_framing_changed(good, path, _flip(0))
    if name == "flip_length_crc":
        return _with_framing_changed(good, path, _flip(9))
    if name == "flip_payload":
        # a byte in the middle of the record: inside some float of the embeddings
        return _with_framing_changed(good, path, _flip(12 + n // 2))
    if name == "flip_data_crc":
        return _with_framing_changed(good, path, _flip(12 + n + 2))
    if name == "truncated_record":
        return _with_framing_changed(good, path, lambda raw: raw[: len(raw) // 2])
    if name == "two_records":
        return _with_framing_changed(good, path, lambda raw: raw + raw)
    data = good.read_bytes()
    if name == "truncated_file":
        path.write_bytes(data[: len(data) // 2])
        return path
    if name == "flip_gzip":
        flipped = bytearray(data)
        flipped[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(flipped))
        return path
    raise KeyError(name)


@pytest.fixture(scope="module")
def malformed_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("malformed") / "root"
    paths = {name: _make_malformed(root, name) for name in MALFORMED}
    for k, label in enumerate(["barking", "diving"]):
        tfrecords.write_example(root / label / f"good{k}.tfrecord", f"{label}/good{k}.mp4",
                                label, *_arrays(k))
    return root, paths


def _arrays(seed):
    rng = np.random.default_rng(100 + seed)
    return rng.random((3, 128), dtype=np.float32), rng.random((4, 512), dtype=np.float32)


# -- the CRC itself ----------------------------------------------------------------------------
def test_masked_crc32c_matches_the_standard_and_tensorflow(tmp_path):
    # CRC-32C check value (RFC 3720 / the Castagnoli polynomial): "123456789" -> 0xE3069283
    crc = 0xE3069283
    assert tfrecords.masked_crc32c(b"123456789") == \
        (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF
    # the CRCs TensorFlow's writer stored in a file are the ones we compute
    payload = _sequence_example(seed=3)
    raw = gzip.decompress(_tf_written(tmp_path / "a.tfrecord", payload).read_bytes())
    length_crc, = struct.unpack_from("<I", raw, 8)
    data_crc, = struct.unpack_from("<I", raw, 12 + len(payload))
    assert tfrecords.masked_crc32c(raw[:8]) == length_crc
    assert tfrecords.masked_crc32c(payload) == data_crc


def test_a_flipped_payload_byte_no_longer_reads_back_as_if_fine(malformed_root):
    root, paths = malformed_root
    # the flipped byte sits inside the embeddings: protobuf alone would parse it happily
    tf = _tf()
    raw = gzip.decompress(paths["flip_payload"].read_bytes())
    length, = struct.unpack_from("<Q", raw, 0)
    example = tf.train.SequenceExample()
    example.ParseFromString(raw[12:12 + length])
    assert "audio" in example.feature_lists.feature_list
    with pytest.raises(DatasetError, match="data CRC mismatch"):
        tfrecords.read_example(paths["flip_payload"])


# -- acceptance 1: the table of malformed TFRecords --------------------------------------------
@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_every_malformed_tfrecord_gives_one_line_naming_file_and_record(malformed_root, name):
    root, paths = malformed_root
    csv = _test_csv(root.parent / f"{name}.csv", [("barking", f"barking/{name}.tfrecord")])
    with pytest.raises(DatasetError) as info:
        tfrecords.load_split(csv, root, cache=False)
    message = str(info.value)
    assert message.startswith(f"{paths[name]}: ")
    assert MALFORMED[name][1] in message
    assert f"(named by {name}.csv row 1)" in message
    assert "\n" not in message and "Fix: " in message


def _test_csv(path: Path, rows) -> Path:
    pd.DataFrame([{"filename": f"{label}/{Path(rel).stem}.mp4", "AVMIT_label": label,
                   "MIT_label": label, "video_location": "training",
                   "new_filename": f"{label}/{Path(rel).stem}.mp4", "tfrecord_filename": rel}
                  for label, rel in rows]).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from avmit_psych.models import architectures, config
    cfg = config.load_config(GRU)
    out = tmp_path_factory.mktemp("model")
    config.save_config(cfg, out / "config.yaml")
    architectures.build_model(cfg).save_weights(out / "model.weights.h5")
    return out


GOOD_ROWS = [("barking", "barking/good0.tfrecord"), ("diving", "diving/good1.tfrecord")]


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_evaluate_exits_2_with_one_line_and_writes_nothing(malformed_root, model_dir, cli,
                                                           tmp_path, monkeypatch, name):
    monkeypatch.setenv("AVMIT_PSYCH_CACHE", str(tmp_path / "cache"))
    root, paths = malformed_root
    csv = _test_csv(tmp_path / "test_set.csv",
                    [GOOD_ROWS[0], ("barking", f"barking/{name}.tfrecord"), GOOD_ROWS[1]])
    out = tmp_path / "eval"
    r = cli("analysis", ["evaluate", "--model", model_dir, "--tfrecords", root, "--test-csv",
                         csv, "--out", out])
    assert r.code == 2
    lines = r.err.strip().splitlines()
    assert len(lines) == 1, r.err
    assert lines[0].startswith(f"error: {paths[name]}")
    assert MALFORMED[name][1] in lines[0]
    assert "(named by test_set.csv row 2)" in lines[0]
    assert not out.exists()  # no half-written output


def test_skip_bad_reads_the_good_rows_and_lists_every_bad_one(malformed_root, model_dir, cli,
                                                              tmp_path, monkeypatch):
    monkeypatch.setenv("AVMIT_PSYCH_CACHE", str(tmp_path / "cache"))
    root, paths = malformed_root
    names = sorted(MALFORMED)
    rows = [GOOD_ROWS[0]] + [("barking", f"barking/{n}.tfrecord") for n in names] + \
        [GOOD_ROWS[1]]
    csv = _test_csv(tmp_path / "test_set.csv", rows)
    out = tmp_path / "eval"
    r = cli("analysis", ["evaluate", "--model", model_dir, "--tfrecords", root, "--test-csv",
                         csv, "--out", out, "--skip-bad"])
    assert r.code == 0, r.err
    predictions = pd.read_csv(out / "predictions.csv")
    assert predictions["stimulus_id"].tolist() == ["barking/good0.mp4", "diving/good1.mp4"]
    assert predictions["label"].tolist() == ["barking", "diving"]
    skipped = pd.read_csv(out / "skipped_test.csv")
    assert skipped["row"].tolist() == list(range(2, 2 + len(names)))
    for name, error in zip(names, skipped["error"]):
        assert MALFORMED[name][1] in error and str(paths[name]) in error
    assert f"skipped {len(names)} bad rows of the test CSV" in r.err
    # the good rows hold exactly what was written
    split = tfrecords.load_split(csv, root, skip_bad=True, cache=False)
    np.testing.assert_array_equal(split.audio[0, :3], _arrays(0)[0])
    np.testing.assert_array_equal(split.visual[1, :4], _arrays(1)[1])


def test_a_truncated_split_cache_is_rebuilt_not_trusted(malformed_root, tmp_path):
    root, _ = malformed_root
    csv = _test_csv(tmp_path / "t.csv", GOOD_ROWS)
    first = tfrecords.load_split(csv, root, cache_dir=tmp_path / "cache")
    (cache_file,) = (tmp_path / "cache").glob("*.npz")
    cache_file.write_bytes(cache_file.read_bytes()[: cache_file.stat().st_size // 2])
    again = tfrecords.load_split(csv, root, cache_dir=tmp_path / "cache")
    assert not again.from_cache
    np.testing.assert_array_equal(first.audio, again.audio)


# -- every writer fsyncs the file, renames, fsyncs the folder ------------------------------------
@pytest.fixture
def fs_log(monkeypatch):
    """Record os.open/os.fsync/os.replace calls as ('fsync', path) and ('replace', src, dst)."""
    events, fds = [], {}
    real_open, real_fsync, real_replace, real_close = os.open, os.fsync, os.replace, os.close

    def spy_open(path, flags, *a, **kw):
        fd = real_open(path, flags, *a, **kw)
        fds[fd] = Path(os.fsdecode(path)).resolve()
        return fd

    def spy_close(fd):
        fds.pop(fd, None)
        return real_close(fd)

    def spy_fsync(fd):
        if hasattr(fd, "fileno"):
            fd = fd.fileno()
        path = fds.get(fd)
        if path is None:  # a Python file object: find its path through /proc
            try:
                path = Path(os.readlink(f"/proc/self/fd/{fd}")).resolve()
            except OSError:
                path = None
        events.append(("fsync", path))
        return real_fsync(fd)

    def spy_replace(src, dst, *a, **kw):
        events.append(("replace", Path(src).resolve(), Path(dst).resolve()))
        return real_replace(src, dst, *a, **kw)

    monkeypatch.setattr(os, "open", spy_open)
    monkeypatch.setattr(os, "close", spy_close)
    monkeypatch.setattr(os, "fsync", spy_fsync)
    monkeypatch.setattr(os, "replace", spy_replace)
    return events


def _assert_durable(events, final: Path):
    """The rename onto ``final`` was preceded by an fsync of what was renamed and followed
    by an fsync of ``final``'s folder."""
    final = final.resolve()
    renames = [i for i, e in enumerate(events) if e[0] == "replace" and e[2] == final]
    assert renames, f"{final.name} was not renamed into place: {events}"
    i = renames[-1]
    src = events[i][1]
    synced_before = [e[1] for e in events[:i] if e[0] == "fsync"]
    assert src in synced_before or any(p is not None and src in p.parents
                                       for p in synced_before), \
        f"{src.name} was not fsynced before its rename"
    assert ("fsync", final.parent) in events[i + 1:], f"{final.parent} not fsynced after"


def test_tfrecord_writer_is_durable(fs_log, tmp_path):
    path = tfrecords.write_example(tmp_path / "barking" / "v.tfrecord", "barking/v.mp4",
                                   "barking", *_arrays(0))
    _assert_durable(fs_log, path)


def test_csv_writer_for_predictions_and_suites_is_durable(fs_log, tmp_path):
    path = schema.write_csv(pd.DataFrame({"model": ["m"], "stimulus_id": ["s"]}),
                            tmp_path / "predictions.csv")
    _assert_durable(fs_log, path)


def test_evaluate_output_batch_is_durable(fs_log, tmp_path):
    with schema.OutputBatch(tmp_path / "out") as batch:
        schema.write_csv(pd.DataFrame({"a": [1]}), batch.path("predictions.csv"))
        batch.path("metrics.json").write_text("{}")
    _assert_durable(fs_log, tmp_path / "out" / "predictions.csv")
    _assert_durable(fs_log, tmp_path / "out" / "metrics.json")


def test_stimulus_writer_is_durable(fs_log, tmp_path):
    from fractions import Fraction

    from avmit_psych import media as io
    frames = np.full((3, 16, 16, 3), 128, np.uint8)
    audio = np.zeros((4410, 2))
    path = io.encode(tmp_path / "s" / "x.mp4", frames, Fraction(30), audio, 44100)
    _assert_durable(fs_log, path)


def test_a_stimulus_encode_that_dies_leaves_nothing_in_the_suite_folder(tmp_path, monkeypatch):
    """The audio goes to ffmpeg through a WAV in the system's temporary folder and the video is
    written under a temporary name: an encode stopped half-way (here ffmpeg is killed) leaves
    the suite folder as it was."""
    import subprocess
    from fractions import Fraction

    from avmit_psych import media
    folder = tmp_path / "suite" / "barking"
    folder.mkdir(parents=True)
    (folder / "done.mp4").write_bytes(b"a finished stimulus")
    seen = []
    real_run = subprocess.run

    def killed(args, **kw):
        seen.append(sorted(p.name for p in folder.iterdir()))
        raise KeyboardInterrupt  # Ctrl-C while ffmpeg runs

    monkeypatch.setattr(media.subprocess, "run", killed)
    with pytest.raises(KeyboardInterrupt):
        media.encode(folder / "x.mp4", np.zeros((3, 16, 16, 3), np.uint8), Fraction(30),
                     np.zeros((4410, 2)), 44100)
    monkeypatch.setattr(media.subprocess, "run", real_run)
    # while ffmpeg ran, the folder held the finished stimulus and at most the hidden
    # temporary video name; afterwards only what was there before
    assert all(name == "done.mp4" or name.startswith(".") for names in seen for name in names)
    assert not any(name.startswith((".audio", "audio")) for names in seen for name in names)
    assert sorted(p.name for p in folder.iterdir()) == ["done.mp4"]


def test_model_writers_are_durable(fs_log, tmp_path):
    from avmit_psych.models import architectures, config, training
    cfg = config.load_config(GRU)
    model = architectures.build_model(cfg)
    training.compile_model(model, cfg, steps_per_epoch=1, steps_per_execution=1)
    training._save_weights(model, tmp_path / "model.weights.h5")
    _assert_durable(fs_log, tmp_path / "model.weights.h5")
    model.optimizer.build(model.trainable_variables)
    training._save_checkpoint(model, tmp_path, {"epoch": 1, "best": 1.0, "wait": 0})
    _assert_durable(fs_log, tmp_path / "checkpoint" / "epoch-1")
    _assert_durable(fs_log, tmp_path / "checkpoint" / "state.json")
    synced = {e[1] for e in fs_log if e[0] == "fsync"}
    assert any(p is not None and p.name == "optimizer.npz" for p in synced)


def test_a_finished_run_with_cut_weights_is_repaired_or_refused(tmp_path, cli):
    from avmit_psych.dataset import synthetic
    from avmit_psych.models import config, training
    paths = synthetic.write_embedding_dataset(
        tmp_path / "root", tmp_path / "csv", seed=1,
        per_class={"AVMIT_train": 2, "AVMIT_validation": 1, "test_set": 1})
    train = tfrecords.load_split(paths["AVMIT_train"], tmp_path / "root", cache=False)
    val = tfrecords.load_split(paths["AVMIT_validation"], tmp_path / "root", cache=False)
    cfg = config.load_config(GRU)
    run = tmp_path / "run"
    first = training.train(cfg, train, val, run, epochs=1, verbose=0)
    weights = run / "model.weights.h5"
    whole = weights.read_bytes()
    weights.write_bytes(whole[: len(whole) // 2])
    # rerun of a finished run: the final weights are rewritten from best.weights.h5
    again = training.train(cfg, train, val, run, epochs=1, verbose=0)
    assert again.metrics == first.metrics
    for a, b in zip(first.model.get_weights(), again.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    training.load_trained(run)  # loads again
    # evaluate with cut weights: one line, exit 2, not a traceback
    weights.write_bytes(whole[: len(whole) // 2])
    r = cli("analysis", ["evaluate", "--model", run, "--tfrecords", tmp_path / "root",
                         "--test-csv", paths["test_set"], "--out", tmp_path / "eval"])
    assert r.code == 2 and "the weights do not load" in r.err and str(weights) in r.err
    assert len(r.err.strip().splitlines()) == 1


def test_a_torn_history_line_does_not_swallow_the_next_row(tmp_path):
    path = tmp_path / "history.csv"
    with _atomic.appending(path) as (fh, new):
        assert new
        fh.write("epoch,loss\n1,0.5\n")
    with open(path, "a") as fh:
        fh.write("2,0.4")  # torn by a crash: no line end
    with _atomic.appending(path) as (fh, new):
        assert not new
        fh.write("3,0.3\n")
    assert path.read_text().splitlines() == ["epoch,loss", "1,0.5", "2,0.4", "3,0.3"]


def test_stale_temporaries_of_dead_processes_only_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = tmp_path / "a" / f".x.tfrecord.{dead}.tmp"
    stale_mp4 = tmp_path / "a" / f".y.mp4.{dead}.tmp.mp4"
    live = tmp_path / "a" / f".z.tfrecord.{os.getppid()}.tmp"
    other = tmp_path / "a" / ".notes.tmp"
    for p in (stale, stale_mp4, live, other):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("x")
    assert _atomic.remove_stale_temporaries(tmp_path, "*.tfrecord") == 1
    assert not stale.exists() and stale_mp4.exists() and live.exists() and other.exists()
    assert _atomic.remove_stale_temporaries(tmp_path) == 1
    assert not stale_mp4.exists() and live.exists() and other.exists()
    # a SIGKILLed writer not yet reaped (a zombie) is not writing any more
    zombie = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    of_zombie = tmp_path / "a" / f".w.tfrecord.{zombie.pid}.tmp"
    of_zombie.write_text("x")
    assert _atomic.remove_stale_temporaries(tmp_path) == 0
    zombie.send_signal(signal.SIGKILL)
    time.sleep(0.3)  # dead, not reaped: os.kill(pid, 0) still succeeds
    assert _atomic.remove_stale_temporaries(tmp_path) == 1 and not of_zombie.exists()
    zombie.wait()


def test_temporaries_name_their_machine_and_another_machines_are_left_until_old(tmp_path):
    """Workers on several machines share one folder (Dask): a temporary written elsewhere
    cannot be checked for a live writer, so it stays until FOREIGN_STALE_S old."""
    with _atomic.atomic_path(tmp_path / "b" / "f.tfrecord") as tmp:
        assert _atomic.writer_of(tmp) == (_atomic._host(), os.getpid())
        tmp.write_text("x")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    mine = tmp_path / "b" / f".m.tfrecord.{_atomic._host()}~{dead}.tmp"
    young = tmp_path / "b" / f".y.tfrecord.other-node-7~{dead}.tmp"
    old = tmp_path / "b" / f".o.tfrecord.other-node-7~{dead}.tmp"
    for p in (mine, young, old):
        p.write_text("x")
    past = time.time() - _atomic.FOREIGN_STALE_S - 60
    os.utime(old, (past, past))
    assert _atomic.remove_stale_temporaries(tmp_path) == 2
    assert not mine.exists() and not old.exists() and young.exists()


# -- acceptance 2: a killed writer and a truncated output are redone ----------------------------
def _run_until_held(cmd, pattern: str, marker: Path, timeout_s: float = 300):
    """Start ``cmd`` with the hold hook on ``pattern``, wait until a matching file is written
    and fsynced but not yet renamed, then SIGKILL the whole process group. Returns the
    temporary the writer had written."""
    env = {**os.environ, _atomic.HOLD_ENV: pattern, _atomic.HOLD_MARKER_ENV: str(marker)}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + timeout_s
    try:
        while time.time() < deadline and proc.poll() is None and not marker.exists():
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode(errors="replace")[-2000:]
        assert marker.exists(), "the writer never reached the rename"
        time.sleep(0.2)  # the marker is written just before the hold: let it settle
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    tmp = Path(marker.read_text())
    # the writer may be a worker process: wait until the kernel has it dead too
    host, writer = _atomic.writer_of(tmp)
    assert host == _atomic._host()
    deadline = time.time() + 30
    while _atomic._process_alive(writer) and time.time() < deadline:
        time.sleep(0.05)
    assert not _atomic._process_alive(writer)
    return tmp


def _extract_cmd(videos, csv, out):
    return [sys.executable, "-m", "avmit_psych.features", "extract", "--videos", str(videos),
            "--csv", str(csv), "--out", str(out), "--audio", "vggish", "--visual", "vgg16",
            "--audio-model", "random", "--visual-weights", "random", "--quiet",
            "--batch-frames", "4", "--workers", "1"]


def test_killed_or_truncated_tfrecords_are_redone_by_the_next_extraction(tmp_path):
    from tests.videos import make_video
    videos = tmp_path / "videos"
    rows = []
    for label in ("barking", "diving", "drumming"):
        name = f"{label}/yt-{label}.mp4"
        make_video(videos / name, duration=2.0)
        rows.append({"filename": name, "AVMIT_label": label, "MIT_label": label,
                     "video_location": "training", "new_filename": name,
                     "tfrecord_filename": schema.tfrecord_filename(label, name)})
    pd.DataFrame(rows).to_csv(tmp_path / "t.csv", index=False)
    out = tmp_path / "tfr"
    cmd = _extract_cmd(videos, tmp_path / "t.csv", out)

    # 1. SIGKILL between the write and the rename of the second TFRecord
    tmp = _run_until_held(cmd, "yt-diving.tfrecord", tmp_path / "held")
    held = out / "diving" / "yt-diving.tfrecord"
    assert tmp.parent == held.parent and tmp.exists() and not held.exists()
    assert tfrecords.read_example(tmp).label == "diving"  # written whole, only not renamed
    assert (out / "barking" / "yt-barking.tfrecord").exists()
    rerun = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    report = pd.read_csv(out / "extract_report.csv").set_index("filename")
    assert report["status"].to_dict() == {"barking/yt-barking.mp4": "skipped",
                                          "diving/yt-diving.mp4": "written",
                                          "drumming/yt-drumming.mp4": "written"}
    assert not tmp.exists()
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]
    finished = {r: tfrecords.read_example(out / r) for r in
                pd.read_csv(tmp_path / "t.csv")["tfrecord_filename"]}

    # 2. a finished file cut to half its length (a power cut), and one whose data has a
    #    flipped byte inside a gzip stream that is itself fine: both are redone, not kept
    cut = out / "barking" / "yt-barking.tfrecord"
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    flipped = out / "drumming" / "yt-drumming.tfrecord"
    raw = bytearray(gzip.decompress(flipped.read_bytes()))
    raw[len(raw) // 2] ^= 0x01
    flipped.write_bytes(gzip.compress(bytes(raw)))
    kept_mtime = (out / "diving" / "yt-diving.tfrecord").stat().st_mtime_ns
    rerun = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "2 written, 1 already there, 0 failed" in rerun.stdout
    report = pd.read_csv(out / "extract_report.csv", keep_default_na=False).set_index("filename")
    assert report["status"].to_dict() == {"barking/yt-barking.mp4": "written",
                                          "diving/yt-diving.mp4": "skipped",
                                          "drumming/yt-drumming.mp4": "written"}
    assert "replaced an unreadable earlier TFRecord (not a complete GZIP TFRecord" in \
        report.loc["barking/yt-barking.mp4", "reason"]
    assert "record 1: data CRC mismatch" in report.loc["drumming/yt-drumming.mp4", "reason"]
    assert (out / "diving" / "yt-diving.tfrecord").stat().st_mtime_ns == kept_mtime
    for rel, before in finished.items():
        now = tfrecords.read_example(out / rel)
        np.testing.assert_allclose(now.audio, before.audio, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(now.visual, before.visual, rtol=1e-4, atol=1e-4)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_killed_or_truncated_stimuli_are_redone_by_the_next_suite_run(tmp_path):
    from avmit_psych.dataset import synthetic
    csv = synthetic.write_probe_clips(tmp_path / "videos", tmp_path / "t.csv", per_class=1,
                                      classes=["barking", "diving"], duration_s=2.0)
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\nconditions:\n  none: true\n  av_offset: {levels: [100]}\n")
    out = tmp_path / "suite"
    cmd = [sys.executable, "-m", "avmit_psych.stimuli", "generate", "--suite", str(suite),
           "--videos", str(tmp_path / "videos"), "--test-set", str(csv), "--out", str(out),
           "--workers", "1", "--quiet"]

    # 1. SIGKILL a worker (and its run) between the write and the rename of a stimulus
    tmp = _run_until_held(cmd, "diving_1__av_offset*", tmp_path / "held")
    held = out / "diving" / "diving_1__av_offset_+100ms.mp4"
    assert tmp.parent == held.parent and tmp.stat().st_size > 0 and not held.exists()
    assert not (out / "manifest.csv").exists()
    journal = pd.read_csv(out / ".journal.csv")
    assert "diving/diving_1__av_offset_+100ms" not in set(journal["stimulus_id"])
    rerun = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    manifest = pd.read_csv(out / "manifest.csv")
    assert len(manifest) == 4 and manifest["verified"].all()
    assert held.exists() and not tmp.exists()
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]
    assert {out / p for p in manifest["path"]} == set(out.rglob("*.mp4"))
    shas = dict(zip(manifest["path"], manifest["sha256"]))

    # 2. a finished stimulus cut to half its length: the next run makes it again
    cut = out / "barking" / "barking_1__none.mp4"
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    kept = out / "barking" / "barking_1__av_offset_+100ms.mp4"
    kept_mtime = kept.stat().st_mtime_ns
    rerun = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    manifest = pd.read_csv(out / "manifest.csv")
    assert len(manifest) == 4 and manifest["verified"].all()
    assert _sha(cut) == shas["barking/barking_1__none.mp4"]  # the same bytes as first made
    assert kept.stat().st_mtime_ns == kept_mtime  # a good stimulus is not redone
    journal = pd.read_csv(out / ".journal.csv")
    assert (journal["stimulus_id"] == "barking/barking_1__none").sum() == 2
    assert journal["size"].notna().all()

    # 3. a journal line torn by a crash mid-append: read, the stimulus it named made again
    text = (out / ".journal.csv").read_text().splitlines()
    torn = [line for line in text if line.startswith("diving/diving_1__none,")][-1]
    kept_rows = [line for line in text if not line.startswith("diving/diving_1__none,")]
    (out / ".journal.csv").write_text("\n".join(kept_rows) + "\n" + torn[: len(torn) // 2])
    rerun = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    manifest = pd.read_csv(out / "manifest.csv")
    assert len(manifest) == 4 and manifest["verified"].all()
    assert dict(zip(manifest["path"], manifest["sha256"])) == shas
