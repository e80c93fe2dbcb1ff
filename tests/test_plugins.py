"""Plug-in manipulations: a suite names a lab's moviepy effect (and its verifier) by dotted path;
it is generated, verified and listed in the manifest like a built-in. Bad paths are refused
before anything is written."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from avmit_psych.dataset import synthetic
from avmit_psych.stimuli import effects as E
from avmit_psych import media as io
from avmit_psych.stimuli import generate, suite as S
from avmit_psych.stimuli.verify import measured_offset_ms
from tests import plugin_effects as P


def _suite_file(tmp_path, conditions: str, name="p", container="mp4") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"name: {name}\ncontainer: {container}\nconditions:\n{conditions}")
    return path


PLUGIN_CONDITIONS = """\
  none: true
  av_offset: {levels: [-100, 50]}
  tests.plugin_effects:brightness:
    levels: [10, 30]
    level_unit: grey levels
    verify: tests.plugin_effects:measure_brightness
    tolerance: 1.5
  lab_gain:
    manipulation: tests.plugin_effects:gain_db
    levels: [-6, -12]
    level_unit: dB gain
    verify: tests.plugin_effects:measure_gain_db
    tolerance: 0.2
  dim:
    manipulation: tests.plugin_effects:brightness
    name: half_brightness
    levels: [20]
    params: {scale: 0.5}
    level_unit: grey levels x2
"""


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    base = tmp_path_factory.mktemp("clips")
    csv = synthetic.write_probe_clips(base / "videos", base / "test_set.csv", per_class=1,
                                      classes=["barking", "diving"])
    return base, csv


@pytest.fixture(scope="module")
def plugin_suite(clips, tmp_path_factory):
    base, csv = clips
    out = tmp_path_factory.mktemp("plugin")
    suite = _suite_file(out, PLUGIN_CONDITIONS)
    sources = generate.sources_from_test_set(csv, base / "videos")
    manifest, failures, verification = generate.generate(suite, sources, out / "suite", seed=1,
                                                         workers=2, progress=False)
    return out / "suite", manifest, failures, verification, sources


def test_plugin_suite_generates_verifies_and_is_in_the_manifest(plugin_suite):
    folder, manifest, failures, verification, sources = plugin_suite
    assert failures.empty
    assert verification["ok"].all(), verification.loc[~verification["ok"], "problems"].tolist()
    assert len(manifest) == len(sources) * 8 and manifest["verified"].all()
    on_disk = pd.read_csv(folder / "manifest.csv")
    bright = on_disk[on_disk["manipulation"] == "tests.plugin_effects:brightness"]
    assert sorted(bright["level"].astype(float)) == [10, 10, 30, 30]
    assert set(bright["level_unit"]) == {"grey levels"}
    gain = on_disk[on_disk["manipulation"] == "lab_gain"]
    assert sorted(gain["level"].astype(float)) == [-12, -12, -6, -6]
    assert set(gain["level_unit"]) == {"dB gain"}
    assert set(on_disk.loc[on_disk["manipulation"] == "half_brightness", "level_unit"]) == \
        {"grey levels x2"}
    from avmit_psych._atomic import sha256_file
    for row in on_disk.itertuples():
        assert sha256_file(folder / row.path) == row.sha256
    assert any("tests-plugin_effects-brightness_30" in p for p in on_disk["path"])
    # the verifiers' measurements are in verify.csv, near the requested levels
    checked = verification[verification["manipulation"].isin(
        ["tests.plugin_effects:brightness", "lab_gain"])]
    assert len(checked) == 8
    assert np.allclose(checked["measured"].astype(float), checked["expected"].astype(float),
                       atol=1.5)


def test_verify_command_measures_plugins_from_the_folders_suite(plugin_suite, cli, tmp_path):
    import shutil
    folder = plugin_suite[0]
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    r = cli("stimuli", ["verify", "--manifest", copy / "manifest.csv"])
    assert r.code == 0, r.err
    table = pd.read_csv(copy / "verify.csv")
    gain = table[table["manipulation"] == "lab_gain"]
    assert gain["ok"].all() and (abs(gain["measured"] - gain["expected"]) < 0.2).all()
    # a stimulus whose realised level is off is caught by the plug-in's verifier
    manifest = pd.read_csv(copy / "manifest.csv")
    i = manifest.index[manifest["manipulation"] == "lab_gain"][0]
    manifest.loc[i, "level"] = -3.0
    manifest.to_csv(copy / "manifest.csv", index=False)
    r = cli("stimuli", ["verify", "--manifest", copy / "manifest.csv"])
    assert r.code == 1
    table = pd.read_csv(copy / "verify.csv")
    assert "lab_gain measured" in table.loc[i, "problems"]


@pytest.mark.parametrize("conditions, expected", [
    ("  nolab.effects:blur: {levels: [1]}\n",
     "plug-in 'nolab.effects:blur': cannot import module 'nolab.effects'"),
    ("  tests.plugin_effects:nothing: {levels: [1]}\n",
     "plug-in 'tests.plugin_effects:nothing': module 'tests.plugin_effects' has no 'nothing'"),
    ("  tests.plugin_effects:not_a_function: {levels: [1]}\n", "is not a function"),
    ("  lab: {manipulation: 'tests.plugin_effects:wrong_signature', levels: [1]}\n",
     "plug-in 'lab': 'tests.plugin_effects:wrong_signature' has the wrong signature"),
    ("  lab: {manipulation: 'tests.plugin_effects:brightness', levels: [1], "
     "params: {sigma: 2}}\n", "has the wrong signature"),
    ("  lab: {manipulation: 'tests.plugin_effects:brightness', levels: [1], "
     "verify: 'tests.plugin_effects:nope', tolerance: 1}\n", "has no 'nope'"),
    ("  lab: {manipulation: 'tests.plugin_effects:brightness', levels: [1], "
     "verify: 'tests.plugin_effects:measure_brightness'}\n", "has a verifier but no 'tolerance'"),
    ("  blur: {manipulation: 'tests.plugin_effects:brightness', levels: [1]}\n",
     "is a built-in manipulation"),
    ("  lab: {manipulation: 'tests.plugin_effects:brightness'}\n", "needs a list of levels"),
])
def test_bad_plugins_exit_2_and_write_nothing(tmp_path, cli, clips, conditions, expected):
    base, csv = clips
    suite = _suite_file(tmp_path, conditions)
    r = cli("stimuli", ["generate", "--suite", suite, "--videos", base / "videos", "--test-set",
                        csv, "--out", tmp_path / "out", "--quiet"])
    assert r.code == 2, r.err
    assert expected in r.err and str(suite) in r.err
    assert len(r.err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


# -- built-ins through the moviepy path ----------------------------------------------------------
@pytest.fixture(scope="module")
def source(clips):
    base, csv = clips
    sources = generate.sources_from_test_set(csv, base / "videos")
    return io.read_clip(sources.loc[0, "source_path"])


@pytest.mark.parametrize("offset_ms", [-400, -37.5, 0, 100, 250])
def test_av_offset_effect_is_sample_exact(source, offset_ms):
    frames, audio = generate.make_stimulus(source, S.Condition("av_offset", float(offset_ms)), 0)
    shift = int(round(offset_ms * source.sample_rate_hz / 1000))
    assert audio.shape == source.audio.shape
    assert np.array_equal(frames, source.frames)
    if shift >= 0:
        assert np.array_equal(audio[shift:], source.audio[:len(audio) - shift])
        assert not audio[:shift].any()
    else:
        assert np.array_equal(audio[:shift], source.audio[-shift:])
    measured = measured_offset_ms(audio, source.audio, source.sample_rate_hz,
                                  max_ms=abs(offset_ms) + 100)
    assert abs(measured - shift * 1000 / source.sample_rate_hz) < 0.05


def test_visual_noise_effect_matches_the_array_definition(source):
    from avmit_psych.stimuli import manipulations as M
    frames, audio = generate.make_stimulus(source, S.Condition("visual_noise", 16.0), 7)
    assert np.array_equal(frames, M.visual_noise(source.frames, 16.0, seed=7))
    assert np.array_equal(audio, source.audio)


def test_effects_are_functions_on_moviepy_clips(source):
    from moviepy import VideoClip
    clip = E.from_decoded(source)
    for name, effect in E.BUILTIN_EFFECTS.items():
        kwargs = {"donor": clip} if name == "semantic_swap" else {}
        level = {"av_offset": 10.0, "audio_noise": 0.0, "visual_noise": 8.0, "blur": 1.0,
                 "contrast": 0.5}.get(name)
        out = effect(clip, level, seed=0, **kwargs)
        assert isinstance(out, VideoClip), name
        frames, audio = E.render(out, source.fps, len(source.frames), source.sample_rate_hz,
                                 len(source.audio))
        assert frames.shape == source.frames.shape and audio.shape == source.audio.shape
    # a plug-in's audio transform keeps the source's channel count
    frames, audio = E.render(P.gain_db(clip, -6.0, seed=0), source.fps, len(source.frames),
                             source.sample_rate_hz, len(source.audio))
    assert np.allclose(audio, source.audio * 10 ** (-6 / 20))


def test_a_plugin_that_raises_fails_its_stimuli_and_the_rest_is_made(tmp_path, cli, clips):
    base, csv = clips
    suite = _suite_file(tmp_path, "  none: true\n"
                                  "  tests.plugin_effects:broken: {levels: [1]}\n")
    r = cli("stimuli", ["generate", "--suite", suite, "--videos", base / "videos", "--test-set",
                        csv, "--out", tmp_path / "out", "--quiet"])
    assert r.code == 1
    assert "plug-in 'tests.plugin_effects:broken' failed: RuntimeError" in r.err
    manifest = pd.read_csv(tmp_path / "out" / "manifest.csv")
    assert set(manifest["manipulation"]) == {"none"}
    failures = pd.read_csv(tmp_path / "out" / "failures.csv")
    assert len(failures) == 2


def test_generate_help_tells_how_to_add_a_plug_in(capsys):
    from avmit_psych.stimuli.__main__ import build_parser
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["generate", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "plug-in" in text and "manipulation: mylab.effects:blur" in text
    assert "effect(clip, level, *, seed, **params) -> clip" in text
