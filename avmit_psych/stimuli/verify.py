"""Verifying a suite: every stimulus decoded and measured against what the manifest says.

Checks (tolerances in ``TOLERANCES``):

- every stimulus: the file's SHA-256 equals the manifest's; frame count and sample rate equal
  the source's; duration within one frame; frame rate equal.
- ``av_offset``: the achieved offset, from the cross-correlation of the output audio with the
  source audio (peak refined by parabolic interpolation), within 0.5 ms of the request.
- ``audio_noise``: the achieved SNR within 0.5 dB: the output is fitted on the source audio and
  the seeded noise (regenerated from the manifest's seed and colour); the fitted source part
  is the signal (active RMS, as :mod:`.manipulations` defines it), all the rest is noise.
- ``visual_noise``: the SD of (output - source) pixels within 10 % (at least 1 grey level, the
  re-encoding floor) of the SD the seeded noise has after clipping on this very source.
- ``semantic_swap``: output audio correlates > 0.99 with the donor's; the donor's class differs.
- ``audio_only``: frames constant (within 2 grey levels); ``visual_only``: audio peak below
  -90 dBFS.
- frames not meant to change (none, av_offset, audio_noise, semantic_swap, visual_only): PSNR
  against the source above 30 dB (a CRF <= 18 re-encode).
- a plug-in (:mod:`.effects`) with a ``verify:`` function: that function's measurement of the
  stimulus against its source (both as moviepy clips) within the suite's ``tolerance`` of the
  requested level (text levels: equal). The plug-ins are read from the suite the folder was
  made with (``suite.json``); a plug-in without a verifier gets the checks every stimulus gets.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

import json

from .._atomic import sha256_file
from ..media import MediaError
from . import effects as E
from . import manipulations as M
from ..media import read_clip
from .suite import MANIPULATIONS, parse_suite

TOLERANCES = {"offset_ms": 0.5, "snr_db": 0.5, "pixel_sd_rel": 0.10, "pixel_sd_abs": 1.0,
              "swap_corr": 0.99, "silence_dbfs": -90.0, "psnr_db": 30.0, "constant_levels": 2}
FRAMES_UNCHANGED = {"none", "av_offset", "audio_noise", "semantic_swap", "visual_only"}


def psnr_db(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def measured_offset_ms(output: np.ndarray, reference: np.ndarray, sample_rate_hz: int, *,
                       max_ms: float = 2500.0) -> float:
    """Lag (ms, + = output later) that best aligns ``output`` with ``reference``."""
    from scipy.signal import correlate
    x = np.asarray(output, np.float64)
    y = np.asarray(reference, np.float64)
    x = x.mean(axis=1) if x.ndim == 2 else x
    y = y.mean(axis=1) if y.ndim == 2 else y
    n = min(len(x), len(y))
    x, y = x[:n] - x[:n].mean(), y[:n] - y[:n].mean()
    corr = correlate(x, y, mode="full", method="fft")
    lags = np.arange(-n + 1, n)
    limit = int(max_ms * sample_rate_hz / 1000)
    window = np.abs(lags) <= limit
    corr, lags = corr[window], lags[window]
    k = int(np.argmax(corr))
    frac = 0.0
    if 0 < k < len(corr) - 1:
        a, b, c = corr[k - 1], corr[k], corr[k + 1]
        denom = a - 2 * b + c
        frac = 0.5 * (a - c) / denom if denom != 0 else 0.0
    return float((lags[k] + frac) * 1000.0 / sample_rate_hz)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    n = min(len(a), len(b))
    a, b = a[:n] - a[:n].mean(), b[:n] - b[:n].mean()
    return float(np.sum(a * b) / np.sqrt(np.sum(a * a) * np.sum(b * b)))


def _plugin_check(row: dict, cond, out, source) -> tuple[object, object, list[str]]:
    """(measured, expected, problems) of a plug-in stimulus by the plug-in's verifier."""
    try:
        measure = E.load_function(cond.verifier)
        measured = measure(E.from_decoded(out), E.from_decoded(source), seed=int(row["seed"]),
                           **cond.params_dict)
    except Exception as err:  # noqa: BLE001 - a verifier that fails fails the stimulus
        return np.nan, row["level"], [f"verifier '{cond.verifier}' failed: "
                                      f"{type(err).__name__}: {err}"]
    try:
        requested = float(row["level"])
    except (TypeError, ValueError):
        requested = str(row["level"])
    if isinstance(requested, str):
        ok = str(measured) == requested
        return measured, requested, [] if ok else [f"measured {measured}, requested {requested}"]
    measured = float(measured)
    if not abs(measured - requested) <= cond.tolerance:
        return measured, requested, [f"{cond.manipulation} measured {measured:.4g} "
                                     f"{cond.unit}, requested {requested:g} "
                                     f"(tolerance {cond.tolerance:g})"]
    return measured, requested, []


def suite_plugins(out_dir) -> dict:
    """{manipulation name: its plug-in Condition} of the suite a folder was generated with
    (from its ``suite.json``; empty if there is none)."""
    stamp = Path(out_dir) / "suite.json"
    if not stamp.exists():
        return {}
    text = json.loads(stamp.read_text()).get("suite_yaml", "")
    if not text:
        return {}
    suite = parse_suite(text, stamp)
    return {c.manipulation: c for c in suite.conditions if c.plugin}


def verify_row(row: dict, out_dir: Path, source, donor=None, plugin=None) -> dict:
    """Measure one stimulus (``source``/``donor`` are decoded :class:`~.io.Clip` objects;
    ``plugin`` the :class:`~.suite.Condition` of a plug-in manipulation)."""
    result = {"stimulus_id": row["stimulus_id"], "manipulation": row["manipulation"],
              "level": row["level"], "measured": np.nan, "expected": np.nan,
              "psnr_db": np.nan, "frames": np.nan, "duration_s": np.nan, "ok": False,
              "problems": ""}
    problems = []
    path = Path(out_dir) / row["path"]
    try:
        out = read_clip(path)
    except (MediaError, OSError) as err:
        result["problems"] = f"cannot read the stimulus: {err}"
        return result
    if sha256_file(path) != row["sha256"]:
        problems.append("sha256 differs from the manifest")
    result["frames"] = len(out.frames)
    result["duration_s"] = out.duration_s
    if len(out.frames) != len(source.frames):
        problems.append(f"{len(out.frames)} frames, source has {len(source.frames)}")
    if out.fps != source.fps:
        problems.append(f"frame rate {float(out.fps):g}, source {float(source.fps):g}")
    if out.sample_rate_hz != source.sample_rate_hz:
        problems.append(f"sample rate {out.sample_rate_hz}, source {source.sample_rate_hz}")
    m = row["manipulation"]
    n = min(len(out.frames), len(source.frames))
    if m in FRAMES_UNCHANGED and n:
        result["psnr_db"] = psnr_db(out.frames[:n], source.frames[:n])
        if result["psnr_db"] < TOLERANCES["psnr_db"]:
            problems.append(f"frames changed (PSNR {result['psnr_db']:.1f} dB)")
    rate = out.sample_rate_hz
    if m == "av_offset":
        requested = float(row["level"])
        measured = measured_offset_ms(out.audio, source.audio, rate,
                                      max_ms=abs(requested) + 100)
        result.update(measured=measured, expected=requested)
        if abs(measured - requested) > TOLERANCES["offset_ms"]:
            problems.append(f"offset {measured:.2f} ms, requested {requested:g} ms")
    elif m == "audio_noise":
        requested = float(row["level"])
        color = row.get("noise_color") or "white"
        added = M.unit_noise(len(source.audio), source.audio.shape[1], color, int(row["seed"]))
        measured = M.measured_snr_db(out.audio, source.audio, rate, added_noise=added)
        result.update(measured=measured, expected=requested)
        if abs(measured - requested) > TOLERANCES["snr_db"]:
            problems.append(f"SNR {measured:.2f} dB, requested {requested:g} dB")
    elif m == "visual_noise":
        requested = float(row["level"])
        expected_frames = M.visual_noise(source.frames, requested, seed=int(row["seed"]))
        expected = float(np.std(expected_frames[:n].astype(np.float64) -
                                source.frames[:n].astype(np.float64)))
        measured = float(np.std(out.frames[:n].astype(np.float64) -
                                source.frames[:n].astype(np.float64)))
        result.update(measured=measured, expected=expected)
        tol = max(TOLERANCES["pixel_sd_rel"] * expected, TOLERANCES["pixel_sd_abs"])
        if abs(measured - expected) > tol:
            problems.append(f"pixel noise SD {measured:.2f}, expected {expected:.2f}")
    elif m == "semantic_swap":
        corr = _corr(out.audio.mean(axis=1), donor.audio.mean(axis=1)) if donor is not None \
            else np.nan
        result.update(measured=corr, expected=TOLERANCES["swap_corr"])
        if not corr > TOLERANCES["swap_corr"]:
            problems.append(f"audio correlates {corr:.3f} with the donor's")
        if row.get("level") == row.get("label"):
            problems.append("donor class equals the source class")
    elif m == "audio_only":
        spread = int(out.frames.max()) - int(out.frames.min())
        result.update(measured=spread, expected=0)
        if spread > TOLERANCES["constant_levels"]:
            problems.append(f"frames not constant (levels span {spread})")
    elif m == "visual_only":
        peak = float(np.abs(out.audio).max()) if out.audio.size else 0.0
        dbfs = -np.inf if peak == 0 else 20 * np.log10(peak)
        result.update(measured=dbfs, expected=TOLERANCES["silence_dbfs"])
        if dbfs >= TOLERANCES["silence_dbfs"]:
            problems.append(f"audio peaks at {dbfs:.1f} dBFS")
    elif plugin is not None and plugin.verifier:
        measured, expected, found = _plugin_check(row, plugin, out, source)
        result.update(measured=measured, expected=expected)
        problems += found
    elif plugin is None and m not in MANIPULATIONS:
        problems.append(f"unknown manipulation '{m}' (no plug-in of that name in the "
                        f"folder's suite.json)")
    result["ok"] = not problems
    result["problems"] = "; ".join(problems)
    return result


def verify_manifest(manifest: pd.DataFrame, out_dir, *, progress: bool = False,
                    plugins: dict | None = None) -> pd.DataFrame:
    """Verify every row of a manifest (sources decoded once each). ``plugins``: {manipulation
    name: plug-in Condition}, by default those of the folder's ``suite.json``."""
    out_dir = Path(out_dir)
    plugins = suite_plugins(out_dir) if plugins is None else plugins
    rows = []
    cache: dict[str, object] = {}

    def clip(path):
        if path not in cache:
            if len(cache) > 8:
                cache.pop(next(iter(cache)))
            cache[path] = read_clip(path)
        return cache[path]

    for row in manifest.sort_values("source_path", kind="stable").to_dict("records"):
        try:
            source = clip(row["source_path"])
            donor = clip(row["audio_source_path"]) if row["manipulation"] == "semantic_swap" \
                else None
        except (MediaError, OSError) as err:
            rows.append({"stimulus_id": row["stimulus_id"], "manipulation": row["manipulation"],
                         "level": row["level"], "ok": False,
                         "problems": f"cannot read the source: {err}"})
            continue
        rows.append(verify_row(row, out_dir, source, donor,
                               plugins.get(row["manipulation"])))
    table = pd.DataFrame(rows)
    order = {sid: i for i, sid in enumerate(manifest["stimulus_id"])}
    return table.sort_values("stimulus_id", key=lambda s: s.map(order)).reset_index(drop=True)
