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

Plug-ins: a condition can name a lab's own moviepy effect by dotted path (see
:mod:`.effects` for the signatures)::

      mylab.effects:blur: {levels: [1, 2, 4], level_unit: px sigma}
      lab_blur:                             # the manipulation's name in the manifest
        manipulation: mylab.effects:blur    # effect(clip, level, *, seed, **params) -> clip
        levels: [1, 2, 4]                   # numbers or text
        level_unit: px sigma
        params: {kernel: gaussian}          # passed to the effect (and the verifier)
        verify: mylab.effects:measure_blur  # optional: measure(stimulus, source, *, seed,
        tolerance: 0.2                      #   **params) -> level, within tolerance

The manipulation's name is ``name:`` if given, else the key when ``manipulation:`` is given,
else the dotted path. The module must be importable (working folder, ``PYTHONPATH`` or an
installed package); a path that does not import or a function of the wrong signature is an
error naming the suite file and the manipulation, before anything is written.
"""
from __future__ import annotations

import re
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
_PLUGIN_KEYS = {"manipulation", "name", "levels", "level_unit", "params", "verify", "tolerance"}


@dataclass(frozen=True)
class Condition:
    manipulation: str
    level: float | str | None = None
    color: str = "white"
    #: a plug-in: the effect's dotted path, its settings (sorted (key, value) pairs), the
    #: level's unit, the verifier's dotted path and the tolerance of its measurement
    plugin: str = ""
    params: tuple = ()
    level_unit: str = ""
    verifier: str = ""
    tolerance: float | None = None

    @property
    def unit(self) -> str:
        return self.level_unit if self.plugin else MANIPULATIONS[self.manipulation][0]

    @property
    def params_dict(self) -> dict:
        return {k: _thaw(v) for k, v in self.params}

    @property
    def tag(self) -> str:
        """The part of a file name that names the condition."""
        if self.plugin:
            name = _slug(self.manipulation)
            if self.level is None:
                return name
            level = f"{self.level:g}" if isinstance(self.level, float) else self.level
            return f"{name}_{_slug(level)}"
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


def _slug(text) -> str:
    return re.sub(r"[^A-Za-z0-9_+\-]+", "-", str(text)).strip("-") or "x"


def _freeze(value):
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    return value


def _thaw(value):
    return list(_thaw(v) for v in value) if isinstance(value, tuple) else value


def _plugin_conditions(path, key, value) -> list[Condition]:
    """The conditions of one plug-in entry, its functions imported and their signatures
    checked (errors name the suite file and the manipulation)."""
    from . import effects
    spec = value if isinstance(value, dict) else {}
    dotted = str(spec.get("manipulation", key))
    name = str(spec.get("name", key if "manipulation" in spec else dotted))
    if not isinstance(value, dict):
        raise _bad(path, f"plug-in '{name}' needs a mapping with 'levels'", key,
                   f"e.g. {key}: {{levels: [1, 2], level_unit: ...}}")
    extra = set(spec) - _PLUGIN_KEYS
    if extra:
        raise _bad(path, f"unknown setting '{sorted(extra)[0]}' of plug-in '{name}'", key,
                   f"settings are {', '.join(sorted(_PLUGIN_KEYS))}")
    if name in MANIPULATIONS:
        raise _bad(path, f"plug-in name '{name}' is a built-in manipulation", key,
                   "give it another 'name:'")
    levels = spec.get("levels")
    if not isinstance(levels, list) or not levels or any(
            isinstance(v, bool) or not isinstance(v, (int, float, str)) for v in levels):
        raise _bad(path, f"plug-in '{name}' needs a list of levels (numbers or text)", key)
    params = spec.get("params", {}) or {}
    if not isinstance(params, dict):
        raise _bad(path, f"'params' of plug-in '{name}' must be a mapping", key)
    verifier = str(spec.get("verify", "") or "")
    tolerance = spec.get("tolerance")
    if verifier and (isinstance(tolerance, bool) or not isinstance(tolerance, (int, float))
                     or tolerance < 0):
        raise _bad(path, f"plug-in '{name}' has a verifier but no 'tolerance' (a number >= 0)",
                   key, "e.g. tolerance: 0.5 (in the level's unit)")
    try:
        effects.check_effect(dotted, params)
        if verifier:
            effects.check_verifier(verifier, params)
    except effects.PluginError as err:
        raise _bad(path, f"plug-in '{name}': {err}", key)
    frozen = _freeze(params)
    return [Condition(name, float(level) if isinstance(level, (int, float)) else level,
                      plugin=dotted, params=frozen, level_unit=str(spec.get("level_unit", "")),
                      verifier=verifier,
                      tolerance=None if tolerance is None else float(tolerance))
            for level in levels]


def _bad(path, problem, key=None, fix=None):
    return DatasetError(problem, path=path, column=key, fix=fix)


def load_suite(path) -> Suite:
    """Read and check a suite YAML file (unknown keys, manipulations or levels out of range
    are errors naming the key)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _bad(path, "suite file not found", fix="e.g. stimuli/suites/avmit_test_960.yaml")
    return parse_suite(text, path)


def parse_suite(text: str, path="<suite>") -> Suite:
    """A suite from its YAML text (``path`` names it in errors)."""
    path = Path(path)
    try:
        spec = yaml.safe_load(text)
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
        if ":" in str(key) or (isinstance(value, dict) and "manipulation" in value):
            conditions += _plugin_conditions(path, key, value)
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
    if len({c.tag for c in conditions}) != len(conditions):
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
