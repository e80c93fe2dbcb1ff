"""TFRecord I/O in the released layout, split loading, the cache and bad files."""
from __future__ import annotations

import gzip
import os

import numpy as np
import pandas as pd
import pytest

from avmit_psych.dataset import schema, synthetic, tfrecords
from avmit_psych.dataset.schema import DatasetError

from tests.conftest import requires_tf  # noqa: E402

pytestmark = requires_tf


class _LazyTensorFlow:
    """``tf`` imported on first use, not at collection (see tests/conftest.py)."""

    def __getattr__(self, name):
        if name.startswith("_") or name.startswith("pytest"):
            raise AttributeError(name)  # pytest's collection probes attributes: do not load
        import tensorflow
        return getattr(tensorflow, name)


tf = _LazyTensorFlow()


def _hand_made_record(path, filename, label, audio, visual):
    """A TFRecord written with plain TensorFlow in the released layout (as the authors did)."""
    def bytes_feature(v):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))

    def int_feature(v):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[v]))

    context = tf.train.Features(feature={
        "filename": bytes_feature(filename.encode()), "label": bytes_feature(label.encode()),
        "audio_timesteps": int_feature(len(audio)), "visual_timesteps": int_feature(len(visual)),
    })
    lists = tf.train.FeatureLists(feature_list={
        "audio": tf.train.FeatureList(feature=[bytes_feature(r.astype(np.float32).tobytes())
                                               for r in audio]),
        "visual_object": tf.train.FeatureList(feature=[bytes_feature(r.astype(np.float32).tobytes())
                                                       for r in visual]),
    })
    example = tf.train.SequenceExample(context=context, feature_lists=lists)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
        writer.write(example.SerializeToString())


def test_hand_made_released_record_is_read_correctly(tmp_path):
    rng = np.random.default_rng(0)
    audio, visual = rng.random((3, 128), dtype=np.float32), rng.random((4, 512), dtype=np.float32)
    path = tmp_path / "barking" / "yt-abc_1.tfrecord"
    _hand_made_record(path, "barking/yt-abc_1.mp4", "barking", audio, visual)
    ex = tfrecords.read_example(path)
    assert ex.filename == "barking/yt-abc_1.mp4" and ex.label == "barking"
    np.testing.assert_array_equal(ex.audio, audio)
    np.testing.assert_array_equal(ex.visual, visual)
    padded = tfrecords.pad_timesteps(ex.audio)
    assert padded.shape == (7, 128) and not padded[3:].any()
    np.testing.assert_array_equal(padded[:3], audio)


def test_written_files_parse_with_the_released_feature_spec(tmp_path):
    rng = np.random.default_rng(1)
    audio, visual = rng.random((6, 1024), dtype=np.float32), rng.random((7, 1280), dtype=np.float32)
    path = tfrecords.write_example(tmp_path / "diving" / "v.tfrecord", "swimming/v.mp4", "diving",
                                   audio, visual)
    assert not list(tmp_path.rglob(".*tmp"))
    context_spec, sequence_spec = tfrecords.released_feature_spec()
    (serialised,) = list(tf.data.TFRecordDataset([str(path)], compression_type="GZIP"))
    context, seq = tf.io.parse_single_sequence_example(serialised, context_features=context_spec,
                                                       sequence_features=sequence_spec)
    assert context["label"].numpy() == b"diving"
    assert context["filename"].numpy() == b"swimming/v.mp4"
    assert int(context["audio_timesteps"]) == 6 and int(context["visual_timesteps"]) == 7
    decoded = tf.reshape(tf.io.decode_raw(seq["audio"], tf.float32), [6, -1]).numpy()
    np.testing.assert_array_equal(decoded, audio)
    decoded_v = tf.reshape(tf.io.decode_raw(seq["visual_object"], tf.float32), [7, -1]).numpy()
    np.testing.assert_array_equal(decoded_v, visual)


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    base = tmp_path_factory.mktemp("emb")
    paths = synthetic.write_embedding_dataset(base / "root", base / "csv",
                                              per_class={"AVMIT_train": 4, "test_set": 3})
    return base, paths


def test_load_split_shapes_labels_and_padding(small_dataset, tmp_path):
    base, paths = small_dataset
    split = tfrecords.load_split(paths["AVMIT_train"], base / "root", cache_dir=tmp_path)
    assert split.audio.shape == (64, 7, 128) and split.visual.shape == (64, 7, 512)
    assert split.feature_set == "vggish_vgg16"
    csv = pd.read_csv(paths["AVMIT_train"])
    assert [schema.TEST_CLASSES[i] for i in split.labels] == csv["label"].tolist()
    first = tfrecords.read_example(base / "root" / csv["tfrecord_filename"][0])
    n = len(first.audio)
    np.testing.assert_array_equal(split.audio[0, :n], first.audio)
    assert not split.audio[0, n:].any()


def test_cache_is_used_and_invalidated_by_a_changed_file(small_dataset, tmp_path):
    base, paths = small_dataset
    a = tfrecords.load_split(paths["test_set"], base / "root", cache_dir=tmp_path)
    b = tfrecords.load_split(paths["test_set"], base / "root", cache_dir=tmp_path)
    assert not a.from_cache and b.from_cache
    np.testing.assert_array_equal(a.visual, b.visual)
    assert len(list(tmp_path.glob("*.npz"))) == 1
    # touching one TFRecord (new mtime) makes a new key
    rel = pd.read_csv(paths["test_set"])["tfrecord_filename"][0]
    p = base / "root" / rel
    os.utime(p, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns + 10**9))
    c = tfrecords.load_split(paths["test_set"], base / "root", cache_dir=tmp_path)
    assert not c.from_cache


def _split_csv(tmp_path, rows):
    path = tmp_path / "split.csv"
    pd.DataFrame(rows, columns=["filename", "AVMIT_label", "MIT_label", "video_location",
                                "new_filename", "tfrecord_filename"]).to_csv(path, index=False)
    return path


def _row(label, rel):
    return (f"{label}/x.mp4", label, label, "training", f"{label}/{label}_1.mp4", rel)


@pytest.fixture
def root(tmp_path):
    rng = np.random.default_rng(2)
    r = tmp_path / "root"
    tfrecords.write_example(r / "barking" / "good.tfrecord", "barking/good.mp4", "barking",
                            rng.random((3, 128)), rng.random((4, 512)))
    tfrecords.write_example(r / "barking" / "yamnet.tfrecord", "barking/y.mp4", "barking",
                            rng.random((5, 1024)), rng.random((7, 1280)))
    tfrecords.write_example(r / "barking" / "odd.tfrecord", "barking/o.mp4", "barking",
                            rng.random((3, 100)), rng.random((4, 512)))
    tfrecords.write_example(r / "barking" / "long.tfrecord", "barking/l.mp4", "barking",
                            rng.random((9, 128)), rng.random((9, 512)))
    data = (r / "barking" / "good.tfrecord").read_bytes()
    (r / "barking" / "truncated.tfrecord").write_bytes(data[: len(data) // 2])
    (r / "barking" / "garbage.tfrecord").write_bytes(gzip.compress(b"\x05" * 40))
    return r


@pytest.mark.parametrize("rel, label, expected", [
    ("barking/missing.tfrecord", "barking", "TFRecord file not found"),
    ("barking/truncated.tfrecord", "barking", "not a complete GZIP TFRecord"),
    ("barking/garbage.tfrecord", "barking", "record 1: length CRC mismatch"),
    ("barking/odd.tfrecord", "barking", "embedding sizes (100, 512) are not a released set"),
    ("barking/yamnet.tfrecord", "barking", "expected (128, 512) for vggish_vgg16"),
    ("barking/long.tfrecord", "barking",
     "9 timesteps, more than 7 (named by split.csv row 1). Fix: use --truncate"),
    ("barking/good.tfrecord", "diving", "label 'barking' in the file, 'diving' in the CSV"),
    ("../outside.tfrecord", "barking", "is not under the TFRecord root"),
    ("barking/good.tfrecord", "laughing", "label 'laughing' is not one of the 16 test classes"),
])
def test_bad_tfrecords_give_clear_errors(tmp_path, root, rel, label, expected):
    csv = _split_csv(tmp_path, [_row(label, rel)])
    with pytest.raises(DatasetError) as info:
        tfrecords.load_split(csv, root, feature_set="vggish_vgg16", cache=False)
    assert expected in str(info.value)


def test_truncate_keeps_the_first_timesteps(tmp_path, root):
    csv = _split_csv(tmp_path, [_row("barking", "barking/long.tfrecord")])
    split = tfrecords.load_split(csv, root, truncate=True, cache=False)
    full = tfrecords.read_example(root / "barking" / "long.tfrecord")
    np.testing.assert_array_equal(split.audio[0], full.audio[:7])


def test_skip_bad_lists_skipped_rows(tmp_path, root):
    csv = _split_csv(tmp_path, [_row("barking", "barking/good.tfrecord"),
                                _row("barking", "barking/missing.tfrecord"),
                                _row("barking", "barking/truncated.tfrecord")])
    split = tfrecords.load_split(csv, root, skip_bad=True, cache=False)
    assert len(split) == 1
    assert split.skipped["row"].tolist() == [2, 3]
    assert "not found" in split.skipped["error"][0]
    assert split.rows["tfrecord_filename"].tolist() == ["barking/good.tfrecord"]
