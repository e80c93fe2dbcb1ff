"""Stimulus suites: which manipulations at which levels, read from YAML.

A suite file (see ``stimuli/suites/avmit_test_960.yaml``)::

    name: avmit_test_960
    container: mp4          # mp4 (H.264 + AAC) or mov (H.264 + 16-bit PCM)
    crf: 18                 # H.264 quality, 0-18
    audio_bitrate: 192k     # AAC only, at least 192k
    conditions:
      none: true
      av_offset: {levels: [-400, -200, -100, -50, 0, 50, 100, 200, 400]}     # ms, + = audio lags
      audio_noise: {levels: [10, 5, 0, -5, -10, -15, -20], color: white}      # SNR dB
      visual_noise: {levels: [0, 8, 16, 32, 64, 96, 128]}                      # pixel SD
      blur: {levels: [1, 2, 4]}                                               # sigma, pixels
      contrast: {levels: [0.5, 0.25]}                                         # factor
      semantic_swap: true
      audio_only: true
      visual_only: true
      silent_sources: fail  # audio manipulations of a source without audio: fail | silence

Each (source video, condition) is one stimulus with a stable id and a file name that carries
the condition, e.g. ``barking/barking_1__av_offset_+100ms.mp4``.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..dataset.schema import DatasetError

#: manipulation -> (level unit, allowed range, ARCHITECTURE manipulation name)
MANIPULATIONS = {
    "none": ("", None),
    "av_offset": ("ms", (-2000.0, 2000.0)),
    "audio_noise": ("dB SNR", (-60.0, 60.0)),
    "visual_noise": ("pixel SD", (0.0, 255.0)),
    "blur": ("px sigma", (0.0, 50.0)),
    "contrast": ("factor", (0.0, 1.0)),
    "semantic_swap": ("", None),
    "audio_only": ("", None),
    "visual_only": ("", None),
}
LEVELLED = {k for k, (_, rng) in MANIPULATIONS.items() if rng is not None}
#: visual manipulations keep the source audio; audio ones need it
NEEDS_SOURCE_AUDIO = {"av_offset", "audio_noise"}
_SUITE_KEYS = {"name", "container", "crf", "audio_bitrate", "conditions", "description"}


@dataclass(frozen=True)
class Condition:
    manipulation: str
    level: float | None = None
    color: str = "white"

    @property
    def unit(self) -> str:
        return MANIPULATIONS[self.manipulation][0]

    @property
    def tag(self) -> str:
        """The part of a file name that names the condition."""
        if self.level is None:
            return self.manipulation
        level = self.level
        text = f"{level:+g}" if self.manipulation == "av_offset" else f"{level:g}"
        unit = {"av_offset": "ms", "audio_noise": "dB", "visual_noise": "sd", "blur": "px",
                "contrast": "x"}[self.manipulation]
        if self.manipulation == "audio_noise" and self.color != "white":
            unit += f"_{self.color}"
        return f"{self.manipulation}_{text}{unit}"


@dataclass
class Suite:
    name: str
    conditions: list[Condition]
    container: str = "mp4"
    crf: int = 18
    audio_bitrate: str = "192k"
    silent_sources: str = "fail"
    text: str = ""

    @property
    def extension(self) -> str:
        return "." + self.container


def _bad(path, problem, key=None, fix=None):
    return DatasetError(problem, path=path, column=key, fix=fix)


def load_suite(path) -> Suite:
    """Read and check a suite YAML file (unknown keys, manipulations or levels out of range
    are errors naming the key)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        spec = yaml.safe_load(text)
    except FileNotFoundError:
        raise _bad(path, "suite file not found", fix="e.g. stimuli/suites/avmit_test_960.yaml")
    except yaml.YAMLError as err:
        raise _bad(path, f"not valid YAML ({getattr(err, 'problem', err)})")
    if not isinstance(spec, dict) or not isinstance(spec.get("conditions"), dict):
        raise _bad(path, "a suite needs a 'conditions' mapping", "conditions")
    unknown = set(spec) - _SUITE_KEYS
    if unknown:
        raise _bad(path, f"unknown key '{sorted(unknown)[0]}'", sorted(unknown)[0],
                   f"keys are {', '.join(sorted(_SUITE_KEYS))}")
    container = spec.get("container", "mp4")
    if container not in ("mp4", "mov"):
        raise _bad(path, f"container '{container}' is not mp4 or mov", "container")
    crf = spec.get("crf", 18)
    if not isinstance(crf, int) or not 0 <= crf <= 18:
        raise _bad(path, f"crf must be a whole number 0-18, got {crf!r}", "crf")
    bitrate = str(spec.get("audio_bitrate", "192k"))
    if not bitrate.endswith("k") or not bitrate[:-1].isdigit() or int(bitrate[:-1]) < 192:
        raise _bad(path, f"audio_bitrate must be at least 192k, got {bitrate}", "audio_bitrate")
    conditions: list[Condition] = []
    silent_sources = "fail"
    for key, value in spec["conditions"].items():
        if key == "silent_sources":
            if value not in ("fail", "silence"):
                raise _bad(path, f"silent_sources must be 'fail' or 'silence', got {value!r}",
                           key)
            silent_sources = value
            continue
        if key not in MANIPULATIONS:
            import difflib
            close = difflib.get_close_matches(key, list(MANIPULATIONS), n=1)
            raise _bad(path, f"unknown manipulation '{key}'", key,
                       f"did you mean '{close[0]}'?" if close else
                       f"manipulations are {', '.join(MANIPULATIONS)}")
        if value in (False, None):
            continue
        if key not in LEVELLED:
            if value is not True:
                raise _bad(path, f"'{key}' takes no levels: write '{key}: true'", key)
            conditions.append(Condition(key))
            continue
        if not isinstance(value, dict) or not isinstance(value.get("levels"), list) or \
                not value["levels"]:
            raise _bad(path, f"'{key}' needs a list of levels", key,
                       f"e.g. {key}: {{levels: [...]}}")
        extra = set(value) - {"levels", "color"}
        if extra or ("color" in value and key != "audio_noise"):
            raise _bad(path, f"unknown setting '{sorted(extra or {'color'})[0]}' of {key}", key)
        color = value.get("color", "white")
        if color not in ("white", "pink"):
            raise _bad(path, f"noise color must be white or pink, got {color!r}", key)
        low, high = MANIPULATIONS[key][1]
        for level in value["levels"]:
            if isinstance(level, bool) or not isinstance(level, (int, float)) or \
                    not low <= level <= high:
                raise _bad(path, f"level {level!r} of {key} is outside {low:g} to {high:g} "
                                 f"{MANIPULATIONS[key][0]}", key)
            conditions.append(Condition(key, float(level), color))
    if len(set(conditions)) != len(conditions):
        raise _bad(path, "a condition is listed twice", "conditions")
    if not conditions:
        raise _bad(path, "the suite has no conditions", "conditions")
    return Suite(name=str(spec.get("name", path.stem)), conditions=conditions,
                 container=container, crf=crf, audio_bitrate=bitrate,
                 silent_sources=silent_sources, text=text)


def stimulus_seed(seed: int, stimulus_id: str) -> int:
    """A stable per-stimulus seed (independent of the order stimuli are made in)."""
    return (int(seed) * 1_000_003 + zlib.crc32(stimulus_id.encode("utf-8"))) % (2 ** 32)


def stimulus_id(source_new_filename: str, condition: Condition) -> str:
    stem = source_new_filename.rsplit(".", 1)[0]
    return f"{stem}__{condition.tag}"
