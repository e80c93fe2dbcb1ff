"""The extraction runner and the probe command, end to end on small videos."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from tests.conftest import requires_tf  # noqa: E402

pytestmark = requires_tf

from avmit_psych.dataset import schema, tfrecords  # noqa: E402
from tests.conftest import REPO  # noqa: E402
from tests.videos import make_video  # noqa: E402

CLASSES = ["barking", "diving", "drumming"]


def _test_set(root, n_per_class=2, audio="stereo", **kw):
    rows = []
    for label in CLASSES:
        for k in range(n_per_class):
            name = f"{label}/yt-{label}-{k}.mp4"
            make_video(root / name, audio=audio, **kw)
            rows.append({"filename": name, "AVMIT_label": label, "MIT_label": label,
                         "video_location": "training", "new_filename": f"{label}/{label}_{k + 1}.mp4",
                         "tfrecord_filename": schema.tfrecord_filename(label, name)})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    table = _test_set(root)
    csv = root / "test_set.csv"
    table.to_csv(csv, index=False)
    return root, csv, table


def _extract_args(videos, csv, out, audio, visual, *extra):
    return ["extract", "--videos", videos, "--csv", csv, "--out", out, "--audio", audio,
            "--visual", visual, "--audio-model", "random", "--visual-weights", "random",
            "--quiet", *extra]


@pytest.mark.parametrize("audio, visual, sizes, steps", [
    ("vggish", "vgg16", (128, 512), (3, 4)),
    ("yamnet", "effnetb0", (1024, 1280), (5, 7)),
])
def test_extract_writes_released_layout_with_documented_timesteps(clips, cli, tmp_path, audio,
                                                                  visual, sizes, steps):
    videos, csv, table = clips
    out = tmp_path / "tfr"
    r = cli("features", _extract_args(videos, csv, out, audio, visual))
    assert r.code == 0, r.err
    report = pd.read_csv(out / "extract_report.csv")
    assert (report["status"] == "written").all() and len(report) == len(table)
    assert (report["audio_timesteps"] == steps[0]).all()
    assert (report["visual_timesteps"] == steps[1]).all()
    ex = tfrecords.read_example(out / table["tfrecord_filename"][0])
    assert ex.audio.shape == (steps[0], sizes[0]) and ex.visual.shape == (steps[1], sizes[1])
    assert ex.label == "barking" and ex.filename == table["filename"][0]
    # parse with the released feature spec through tf.data, as the authors read them
    import tensorflow as tf
    context_spec, sequence_spec = tfrecords.released_feature_spec()
    (raw,) = list(tf.data.TFRecordDataset([str(out / table["tfrecord_filename"][1])],
                                          compression_type="GZIP"))
    ctx, seq = tf.io.parse_single_sequence_example(raw, context_features=context_spec,
                                                   sequence_features=sequence_spec)
    assert int(ctx["audio_timesteps"]) == steps[0] and int(ctx["visual_timesteps"]) == steps[1]
    visual_vec = tf.io.decode_raw(seq["visual_object"], tf.float32).numpy()
    assert visual_vec.shape == (steps[1], sizes[1])
    # the split loads for training
    split = tfrecords.load_split(csv, out, feature_set=f"{audio}_{visual}", cache=False)
    assert split.audio.shape == (len(table), 7, sizes[0])
    # a second run skips everything
    r = cli("features", _extract_args(videos, csv, out, audio, visual))
    assert r.code == 0
    assert (pd.read_csv(out / "extract_report.csv")["status"] == "skipped").all()


def test_batched_extraction_equals_one_video_at_a_time(clips, tmp_path):
    from avmit_psych.features import encoders, extract
    videos, csv, _ = clips
    jobs = extract.plan(csv, videos)
    audio = encoders.AudioEncoder.load("vggish", "random", seed=1)
    visual = encoders.VisualEncoder.load("vgg16", "random", seed=1)
    extract.extract(jobs, audio, visual, tmp_path / "a", batch_frames=64, progress=False)
    extract.extract(jobs, audio, visual, tmp_path / "b", batch_frames=1, progress=False)
    for job in jobs:
        a = tfrecords.read_example(tmp_path / "a" / job.tfrecord_filename)
        b = tfrecords.read_example(tmp_path / "b" / job.tfrecord_filename)
        np.testing.assert_allclose(a.visual, b.visual, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(a.audio, b.audio, rtol=1e-4, atol=1e-4)


def test_bad_videos_are_reported_and_the_run_goes_on(tmp_path, cli):
    root = tmp_path / "videos"
    good = make_video(root / "barking" / "good.mp4")
    make_video(root / "barking" / "mute.mp4", audio="none")
    make_video(root / "barking" / "short.mp4", duration=0.3)
    (root / "barking" / "empty.mp4").write_bytes(b"")
    (root / "barking" / "corrupt.mp4").write_bytes(b"not a video at all" * 20)
    names = ["good", "mute", "short", "empty", "corrupt", "missing"]
    pd.DataFrame({"filename": [f"barking/{n}.mp4" for n in names], "AVMIT_label": "barking",
                  "MIT_label": "barking", "video_location": "training"}).to_csv(
        tmp_path / "v.csv", index=False)
    out = tmp_path / "out"
    r = cli("features", _extract_args(root, tmp_path / "v.csv", out, "vggish", "vgg16"))
    assert r.code == 1  # something failed
    report = pd.read_csv(out / "extract_report.csv", keep_default_na=False).set_index("filename")
    status = report["status"].to_dict()
    assert status["barking/good.mp4"] == "written" and status["barking/mute.mp4"] == "written"
    assert "no audio stream: 3.00 s of digital silence" in report.loc["barking/mute.mp4", "reason"]
    assert "shorter" in report.loc["barking/short.mp4", "reason"]
    assert report.loc["barking/empty.mp4", "reason"] == "zero-length file"
    assert "corrupt or unreadable" in report.loc["barking/corrupt.mp4", "reason"]
    assert report.loc["barking/missing.mp4", "reason"] == "file not found"
    assert (out / "barking" / "mute.tfrecord").exists()
    mute = tfrecords.read_example(out / "barking" / "mute.tfrecord")
    assert mute.audio.shape == (3, 128)  # embeddings of 3 s of silence
    assert good.exists()


def test_unknown_models_and_wrong_weights_fail_before_any_work(clips, cli, tmp_path):
    videos, csv, _ = clips
    weights = tmp_path / "wrong.weights.h5"
    from avmit_psych.features import encoders
    encoders.VisualEncoder.load("vgg16", "random").model.save_weights(weights)
    r = cli("features", ["extract", "--videos", videos, "--csv", csv, "--out", tmp_path / "o",
                         "--audio", "vggish", "--visual", "effnetb0", "--audio-model", "random",
                         "--visual-weights", weights, "--quiet"])
    assert r.code == 2 and "wrong.weights.h5" in r.err
    assert not (tmp_path / "o").exists()
    proc = subprocess.run([sys.executable, "-m", "avmit_psych.features", "extract", "--videos",
                           str(videos), "--csv", str(csv), "--out", str(tmp_path / "o"),
                           "--audio", "wav2vec", "--visual", "vgg16"], capture_output=True,
                          text=True, cwd=REPO)
    assert proc.returncode == 2 and "invalid choice: 'wav2vec'" in proc.stderr


def test_killed_run_resumes_without_redoing_or_leaving_incomplete_files(tmp_path):
    root = tmp_path / "videos"
    table = _test_set(root, n_per_class=4)
    table.to_csv(tmp_path / "t.csv", index=False)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "avmit_psych.features", *map(str, _extract_args(
        root, tmp_path / "t.csv", out, "vggish", "vgg16", "--batch-frames", "4",
        "--workers", "1"))]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if len(list(out.rglob("*.tfrecord"))) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = {p.relative_to(out).as_posix() for p in out.rglob("*.tfrecord")}
    assert 2 <= len(done_before) < len(table)
    for p in out.rglob("*.tfrecord"):  # whatever is under a final name is complete
        tfrecords.read_example(p)
    mtimes = {p: (out / p).stat().st_mtime_ns for p in done_before}
    rerun = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    report = pd.read_csv(out / "extract_report.csv")
    skipped = set(report.loc[report["status"] == "skipped", "tfrecord_filename"])
    assert skipped == done_before
    assert set(report.loc[report["status"] == "written", "tfrecord_filename"]) == \
        set(table["tfrecord_filename"]) - done_before
    assert all((out / p).stat().st_mtime_ns == t for p, t in mtimes.items())  # not redone
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]  # no leftovers
    for p in out.rglob("*.tfrecord"):
        tfrecords.read_example(p)


def test_probe_command_writes_media_csv(tmp_path, cli):
    root = tmp_path / "videos"
    make_video(root / "barking" / "a.mp4", fps="25", audio="stereo")
    make_video(root / "barking" / "b.mp4", fps="30", audio="silent")
    make_video(root / "barking" / "c.mp4", fps="30", audio="none")
    pd.DataFrame({"filename": ["barking/a.mp4", "barking/b.mp4", "barking/c.mp4",
                               "barking/gone.mp4"],
                  "AVMIT_label": "barking", "MIT_label": "barking",
                  "video_location": "training"}).to_csv(tmp_path / "v.csv", index=False)
    r = cli("features", ["probe", "--videos", root, "--csv", tmp_path / "v.csv", "--out",
                         tmp_path / "media.csv", "--quiet"])
    assert r.code == 1  # one video is missing
    media_table = pd.read_csv(tmp_path / "media.csv").set_index("filename")
    media_table["error"] = media_table["error"].fillna("")
    assert media_table.loc["barking/a.mp4", "fps"] == 25.0
    assert media_table.loc["barking/b.mp4", "audio_peak"] == 0
    assert media_table.loc["barking/a.mp4", "audio_peak"] > 0
    assert not media_table.loc["barking/c.mp4", "has_audio"]
    assert media_table.loc["barking/gone.mp4", "error"] == "file not found"
    fps = schema.read_csv(tmp_path / "media.csv", schema.FPS_METADATA)  # usable by select --fps
    assert fps.set_index("filename").loc["barking/b.mp4", "fps"] == 30.0


def test_a_stimulus_suite_goes_through_extraction_to_predictions(tmp_path, cli):
    """stimuli generate -> features extract (manifest) -> analysis predict: one chain."""
    from avmit_psych.dataset import synthetic
    from avmit_psych.models import architectures, config
    csv = synthetic.write_probe_clips(tmp_path / "videos", tmp_path / "t.csv", per_class=1,
                                      classes=["barking", "diving"])
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\nconditions:\n  none: true\n  av_offset: {levels: [200]}\n")
    r = cli("stimuli", ["generate", "--suite", suite, "--videos", tmp_path / "videos",
                        "--test-set", csv, "--out", tmp_path / "suite", "--quiet"])
    assert r.code == 0, r.err
    manifest = tmp_path / "suite" / "manifest.csv"
    r = cli("features", _extract_args(tmp_path / "suite", manifest, tmp_path / "tfr", "vggish",
                                      "vgg16"))
    assert r.code == 0, r.err
    report = pd.read_csv(tmp_path / "tfr" / "extract_report.csv")
    assert set(report["manipulation"]) == {"none", "av_offset"}
    assert (report["tfrecord_filename"].str.count("/") == 1).all()
    # a (random) trained model predicts the suite, manipulation and level carried through
    cfg = config.load_config(REPO / "analysis" / "configs" / "recognition" /
                             "vggish_vgg16_gru_avmit.yaml")
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    config.save_config(cfg, model_dir / "config.yaml")
    architectures.build_model(cfg).save_weights(model_dir / "model.weights.h5")
    r = cli("analysis", ["predict", "--model", model_dir, "--tfrecords", tmp_path / "tfr",
                         "--manifest", manifest, "--out", tmp_path / "pred.csv"])
    assert r.code == 0, r.err
    pred = pd.read_csv(tmp_path / "pred.csv")
    assert len(pred) == 4 and set(pred["manipulation"]) == {"none", "av_offset"}
    assert set(pred.loc[pred["manipulation"] == "av_offset", "level"]) == {200.0}
