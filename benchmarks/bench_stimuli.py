"""Benchmark suite generation: stimuli per second for the default suite with 2 workers, against
ffmpeg command lines doing the same manipulations and encoding (2 at a time).

Ours: ``avmit_psych.stimuli.generate`` on synthetic probe clips (3 s, 320x240, 30 fps, AAC
stereo), the default suite ``stimuli/suites/avmit_test_960.yaml`` (27 conditions per video),
generation only and then verification. ffmpeg: one command per stimulus with its filters
(adelay/atrim for offsets, anoisesrc + amix for noise, the noise filter for pixel noise, a
second input for swaps, drawbox for grey frames, volume=0 for silence), the same encoder
settings (libx264 CRF 18 preset medium yuv420p, AAC 192k without a low-pass).

Like with like. The baseline is given the toolkit's job where the toolkit does more than one
ffmpeg filter would:

- ``audio_noise``: the SNR is defined against the clip's *active* RMS
  (``stimuli.manipulations``) and the toolkit corrects the noise level for AAC coding. The
  baseline does the same job with ffmpeg: it decodes each source once to measure its active
  RMS and peak, scales signal and noise together so nothing clips, and re-runs its
  (audio-only) ffmpeg command, measuring each AAC round trip, until the SNR is within
  0.05 dB of the request, as the toolkit does (``generate.calibrated_audio_noise``).
- ``av_offset``: delays and cuts in samples, rounded as the toolkit rounds.

Before any time is reported, :func:`check_same_job` measures both outputs of every matched
stimulus (offsets by cross-correlation, SNR as ``stimuli.verify`` does, each with its own added
noise) and fails unless both hit the request and agree with each other. Two conditions are not
matched: ffmpeg's ``noise`` filter is not achromatic Gaussian noise of a pixel SD, and drawbox
fills with mid-grey, not the clip's mean grey. So the headline ratio is for the matched
conditions (none, av_offset, audio_noise, semantic_swap, visual_only), and the whole-suite
ratio, which includes the two unmatched ones, is printed beside it with that caveat. (The
toolkit makes each part in its own run, so it decodes every source twice; the baseline measures
every source once per part.)

Run: ``.venv/bin/python benchmarks/bench_stimuli.py [--videos 8]``; figures are printed and
written to benchmarks/results/stimuli.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from avmit_psych.dataset import schema, synthetic  # noqa: E402
from avmit_psych.media import ffmpeg_exe, probe  # noqa: E402
from avmit_psych.stimuli import generate, suite as S  # noqa: E402
from avmit_psych.stimuli import manipulations as M  # noqa: E402
from avmit_psych.stimuli import verify as V  # noqa: E402
from avmit_psych.media import read_clip  # noqa: E402

SUITE = HERE.parent / "stimuli" / "suites" / "avmit_test_960.yaml"
VIDEO_ENCODE = ["-c:v", "libx264", "-preset", "medium", "-crf", "18", "-pix_fmt", "yuv420p"]
#: conditions where the baseline does the toolkit's job (checked by :func:`check_same_job`)
MATCHED = ("none", "av_offset", "audio_noise", "semantic_swap", "visual_only")
#: "the same": both within ``stimuli.verify.TOLERANCES`` of the request (0.5 dB, 0.5 ms), and
#: within these of each other. Both aim at 0.05 dB, but at -20 dB the AAC round trip can swing
#: by a few tenths from one noise level to the next and the 5 calibration rounds then stop
#: short (the toolkit's last round is kept), so SNRs agree to the verification tolerance;
#: offsets are whole samples (0.023 ms at 44.1 kHz) both ways.
SNR_AGREE_DB = V.TOLERANCES["snr_db"]
OFFSET_AGREE_MS = 0.1


def audio_encode(rate: int) -> list[str]:
    """AAC 192k as ``media.encode`` writes it: no low-pass, so noise keeps its energy."""
    return ["-c:a", "aac", "-b:a", "192k", "-cutoff", str(rate // 2), "-ar", str(rate)]


@dataclass
class SourceAudio:
    """What the baseline measures once per source (ffmpeg decode + the toolkit's definition of
    active RMS): the audio cut to the video's duration, its rate, active RMS and peak."""
    audio: np.ndarray = field(repr=False)
    rate: int
    active_rms: float
    peak: float

    @property
    def n_samples(self) -> int:
        return len(self.audio)

    @property
    def channels(self) -> int:
        return self.audio.shape[1]


def _decode_audio(path, channels: int | None = None) -> np.ndarray:
    args = [ffmpeg_exe(), "-v", "error", "-nostdin", "-i", str(path), "-vn", "-f", "f32le",
            "-acodec", "pcm_f32le"]
    args += ["-ac", str(channels)] if channels else []
    raw = subprocess.run(args + ["-"], check=True, capture_output=True).stdout
    x = np.frombuffer(raw, dtype="<f4").astype(np.float64)
    return x.reshape(-1, channels or 2)


def measure_source(path) -> SourceAudio:
    info = probe(path)
    channels, rate = int(info.audio_channels or 2), int(info.audio_sample_rate_hz)
    audio = _decode_audio(path, channels)
    # the toolkit cuts or pads the audio to the clip's duration: do the same
    n = int(round(info.duration_s * rate)) if info.duration_s else len(audio)
    audio = M.fit_length(audio, n)
    return SourceAudio(audio, rate, M.active_rms(audio, rate), float(np.abs(audio).max()))


def _noise_sources(src: SourceAudio, seed: int, color: str) -> tuple[str, str]:
    """Filtergraph text for unit-amplitude anoisesrc noise, independent per channel
    (seeds seed, seed + 1, ...), merged into one stream labelled [nz]."""
    parts = [f"anoisesrc=a=1:c={color}:r={src.rate}:d={src.n_samples / src.rate:.6f}"
             f":seed={seed + c}[n{c}]" for c in range(src.channels)]
    merged = ("".join(f"[n{c}]" for c in range(src.channels)) +
              f"amerge=inputs={src.channels}[nz]") if src.channels > 1 else "[n0]anull[nz]"
    return ";".join(parts), merged


def unit_noise(src: SourceAudio, seed: int, color: str) -> np.ndarray:
    """The unit-amplitude noise the baseline adds for ``seed`` (rendered by ffmpeg itself)."""
    nodes, merged = _noise_sources(src, seed, color)
    raw = subprocess.run([ffmpeg_exe(), "-v", "error", "-nostdin", "-filter_complex",
                          f"{nodes};{merged}", "-map", "[nz]", "-f", "f32le", "-acodec",
                          "pcm_f32le", "-"], check=True, capture_output=True).stdout
    z = np.frombuffer(raw, dtype="<f4").astype(np.float64).reshape(-1, src.channels)
    return M.fit_length(z, src.n_samples)


def noise_graph(src: SourceAudio, seed: int, color: str, signal_gain: float,
                noise_gain: float) -> str:
    """[0:a] x signal_gain + unit noise x noise_gain, cut to the source's samples -> [a]."""
    nodes, merged = _noise_sources(src, seed, color)
    return (f"{nodes};{merged};[nz]volume={noise_gain:.10g}[nv];"
            f"[0:a]volume={signal_gain:.10g}[sv];"
            f"[sv][nv]amix=inputs=2:normalize=0:duration=first,"
            f"atrim=end_sample={src.n_samples}[a]")


def noise_levels(src: SourceAudio, unit: np.ndarray, target_db: float) -> tuple[float, float]:
    """(signal gain, noise gain) for ``target_db`` against the active RMS, both scaled down
    together when signal + noise could peak above 0.99 (the toolkit's rule; SNR unchanged)."""
    unit_rms = float(np.sqrt(np.mean(unit ** 2)))
    a = src.active_rms / 10 ** (target_db / 20) / unit_rms
    peak = src.peak + a * float(np.abs(unit).max())
    g = min(1.0, M.PEAK_LIMIT / peak)
    return g, g * a


def ffmpeg_audio_noise(path, out, src: SourceAudio, snr_db: float, *, seed: int,
                       color: str = "white", max_rounds: int = 5,
                       tolerance_db: float = generate.SNR_CALIBRATION_DB) -> float:
    """The baseline's audio_noise job: ffmpeg mixes at the request, an audio-only AAC round
    trip is measured and the noise level corrected until within ``tolerance_db`` (as
    ``generate.calibrated_audio_noise``), then the stimulus is encoded. Returns the target
    used."""
    unit = unit_noise(src, seed, color)
    target = snr_db
    with tempfile.TemporaryDirectory(prefix=".ff-aac-") as tmp:
        m4a = Path(tmp) / "a.m4a"
        for _ in range(max_rounds):
            g_s, g_n = noise_levels(src, unit, target)
            subprocess.run([ffmpeg_exe(), "-y", "-v", "error", "-nostdin", "-i", str(path),
                            "-filter_complex", noise_graph(src, seed, color, g_s, g_n),
                            "-map", "[a]", *audio_encode(src.rate), str(m4a)], check=True)
            trip = M.fit_length(_decode_audio(m4a, src.channels), src.n_samples)
            achieved = M.measured_snr_db(trip, src.audio, src.rate, added_noise=unit)
            if abs(achieved - snr_db) <= tolerance_db:
                break
            target -= achieved - snr_db
    g_s, g_n = noise_levels(src, unit, target)
    subprocess.run([ffmpeg_exe(), "-y", "-v", "error", "-nostdin", "-i", str(path),
                    "-filter_complex", noise_graph(src, seed, color, g_s, g_n),
                    "-map", "0:v", "-map", "[a]", *VIDEO_ENCODE, *audio_encode(src.rate),
                    str(out)], check=True)
    return target


def ffmpeg_command(cond: S.Condition, src_path: str, donor: str, out: str,
                   src: SourceAudio) -> list[str]:
    """One ffmpeg command for a condition other than audio_noise."""
    base = [ffmpeg_exe(), "-y", "-v", "error", "-nostdin", "-i", src_path]
    enc = VIDEO_ENCODE + audio_encode(src.rate)
    m, level = cond.manipulation, cond.level
    if m == "none":
        return base + enc + [out]
    if m == "av_offset":
        shift = int(round(level * src.rate / 1000))  # samples, rounded as the toolkit rounds
        af = (f"adelay={shift}S:all=1,atrim=end_sample={src.n_samples}" if shift >= 0 else
              f"atrim=start_sample={-shift},asetpts=PTS-STARTPTS,apad,"
              f"atrim=end_sample={src.n_samples}")
        return base + ["-af", af] + enc + [out]
    if m == "visual_noise":
        return base + ["-vf", f"noise=alls={min(int(level), 100)}:allf=t"] + enc + [out]
    if m == "semantic_swap":
        return base + ["-i", donor, "-map", "0:v", "-map", "1:a"] + enc + [out]
    if m == "audio_only":
        return base + ["-vf", "drawbox=c=gray:t=fill"] + enc + [out]
    if m == "visual_only":
        return base + ["-af", "volume=0"] + enc + [out]
    raise ValueError(m)


@dataclass
class BaselineStimulus:
    condition: S.Condition
    source_path: str
    donor_path: str
    path: str
    seed: int


def baseline_plan(suite: S.Suite, paths: list[str], out_dir: Path) -> list[BaselineStimulus]:
    out = []
    for i, src in enumerate(paths):
        for k, cond in enumerate(suite.conditions):
            out.append(BaselineStimulus(cond, src, paths[(i + 1) % len(paths)],
                                        str(out_dir / f"ff_{i}_{k}.mp4"), seed=1000 * i + k))
    return out


def run_baseline(stimuli: list[BaselineStimulus], *, workers: int = 2) -> None:
    """Measure each source once, then make every stimulus, ``workers`` at a time."""
    sources = sorted({s.source_path for s in stimuli})
    with ThreadPoolExecutor(max_workers=workers) as pool:
        measured = dict(zip(sources, pool.map(measure_source, sources)))

        def one(s: BaselineStimulus):
            src = measured[s.source_path]
            if s.condition.manipulation == "audio_noise":
                ffmpeg_audio_noise(s.source_path, s.path, src, s.condition.level, seed=s.seed,
                                   color=s.condition.color)
            else:
                subprocess.run(ffmpeg_command(s.condition, s.source_path, s.donor_path,
                                              s.path, src), check=True)
        list(pool.map(one, stimuli))


def split_suite(suite: S.Suite) -> tuple[S.Suite, S.Suite]:
    """(matched conditions, the others) as two suites with the same settings."""
    matched = [c for c in suite.conditions if c.manipulation in MATCHED]
    other = [c for c in suite.conditions if c.manipulation not in MATCHED]
    return (replace(suite, name=suite.name + "_matched", conditions=matched,
                    text=suite.text + "\n# matched"),
            replace(suite, name=suite.name + "_unmatched", conditions=other,
                    text=suite.text + "\n# unmatched"))


def _measure(cond: S.Condition, out, source, *, noise: np.ndarray | None, donor=None) -> float:
    rate = source.sample_rate_hz
    m = cond.manipulation
    if m == "av_offset":
        return V.measured_offset_ms(out.audio, source.audio, rate,
                                    max_ms=abs(cond.level) + 100)
    if m == "audio_noise":
        return M.measured_snr_db(out.audio, source.audio, rate, added_noise=noise)
    if m == "semantic_swap":
        return V._corr(out.audio.mean(axis=1), donor.audio.mean(axis=1))
    if m == "visual_only":
        peak = float(np.abs(out.audio).max()) if out.audio.size else 0.0
        return -np.inf if peak == 0 else 20 * np.log10(peak)
    return V.psnr_db(out.frames, source.frames)  # none: frames re-encoded, not changed


def _meets(cond: S.Condition, value: float) -> bool:
    t = V.TOLERANCES
    m = cond.manipulation
    if m == "av_offset":
        return abs(value - cond.level) <= t["offset_ms"]
    if m == "audio_noise":
        return abs(value - cond.level) <= t["snr_db"]
    if m == "semantic_swap":
        return value > t["swap_corr"]
    if m == "visual_only":
        return value < t["silence_dbfs"]
    return value >= t["psnr_db"]


def check_same_job(ours_manifest: pd.DataFrame, ours_dir: Path,
                   baseline: list[BaselineStimulus]) -> pd.DataFrame:
    """Measure both outputs of every matched (source, condition); raise ``AssertionError``
    unless both meet ``stimuli.verify``'s tolerance for the request and, for offsets and SNRs,
    agree within ``OFFSET_AGREE_MS`` / ``SNR_AGREE_DB``. Returns one row per stimulus pair."""
    ours_dir = Path(ours_dir)
    clips: dict = {}

    def clip(path):
        if path not in clips:
            clips[path] = read_clip(path)
        return clips[path]

    man = ours_manifest.assign(level_num=pd.to_numeric(ours_manifest["level"], errors="coerce"))
    rows, problems = [], []
    for s in baseline:
        cond = s.condition
        if cond.manipulation not in MATCHED:
            continue
        sel = (man["source_path"].astype(str) == str(s.source_path)) & \
            (man["manipulation"] == cond.manipulation)
        if cond.level is not None and cond.manipulation in ("av_offset", "audio_noise"):
            sel &= np.isclose(man["level_num"], float(cond.level))
        if sel.sum() != 1:
            raise AssertionError(f"{sel.sum()} toolkit stimuli for {s.source_path} {cond}")
        ours = man[sel].iloc[0]
        source = clip(s.source_path)
        ours_noise = base_noise = None
        if cond.manipulation == "audio_noise":
            ours_noise = M.unit_noise(len(source.audio), source.audio.shape[1], cond.color,
                                      int(ours["seed"]))
            base_noise = unit_noise(measure_source(s.source_path), s.seed, cond.color)
        ours_donor = clip(ours["audio_source_path"]) if cond.manipulation == "semantic_swap" \
            else None
        base_donor = clip(s.donor_path) if cond.manipulation == "semantic_swap" else None
        a = _measure(cond, clip(ours_dir / ours["path"]), source, noise=ours_noise,
                     donor=ours_donor)
        b = _measure(cond, read_clip(s.path), source, noise=base_noise, donor=base_donor)
        row = {"source": Path(s.source_path).name, "manipulation": cond.manipulation,
               "level": cond.level, "toolkit": a, "ffmpeg": b}
        rows.append(row)
        what = f"{row['source']} {cond.manipulation} {cond.level if cond.level is not None else ''}"
        if not _meets(cond, a):
            problems.append(f"{what}: the toolkit's output measures {a:.3f}")
        if not _meets(cond, b):
            problems.append(f"{what}: the ffmpeg baseline's output measures {b:.3f}")
        agree = {"av_offset": OFFSET_AGREE_MS, "audio_noise": SNR_AGREE_DB}.get(
            cond.manipulation)
        if agree is not None and not abs(a - b) <= agree:
            problems.append(f"{what}: toolkit {a:.3f}, ffmpeg {b:.3f} (differ by more than "
                            f"{agree:g})")
    if problems:
        raise AssertionError("the baseline does not do the toolkit's job:\n  " +
                             "\n  ".join(problems))
    return pd.DataFrame(rows)


def _timed(fn, *args, **kwargs) -> float:
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=8)
    args = parser.parse_args()
    suite = S.load_suite(SUITE)
    matched_suite, other_suite = split_suite(suite)
    classes = list(schema.TEST_CLASSES[:args.videos])
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        csv = synthetic.write_probe_clips(tmp / "videos", tmp / "t.csv", per_class=1,
                                          classes=classes, size=(320, 240))
        sources = generate.sources_from_test_set(csv, tmp / "videos")
        paths = sources["source_path"].tolist()
        n_matched = len(paths) * len(matched_suite.conditions)
        n_other = len(paths) * len(other_suite.conditions)

        times = {}
        for part, part_suite in (("matched", matched_suite), ("other", other_suite)):
            times[f"ours_{part}_s"] = _timed(generate.generate, part_suite, sources,
                                             tmp / f"ours_{part}", seed=0, workers=2,
                                             progress=False, verify=False)
            times[f"verify_{part}_s"] = _timed(generate.generate, part_suite, sources,
                                               tmp / f"ours_{part}", seed=0, workers=2,
                                               progress=False, verify=True)
            (tmp / f"ff_{part}").mkdir()
            plan = baseline_plan(part_suite, paths, tmp / f"ff_{part}")
            times[f"ffmpeg_{part}_s"] = _timed(run_baseline, plan, workers=2)
            if part == "matched":
                matched_plan = plan
        manifest = pd.read_csv(tmp / "ours_matched" / "manifest.csv")
        check = check_same_job(manifest, tmp / "ours_matched", matched_plan)
    ours_all = times["ours_matched_s"] + times["ours_other_s"]
    ff_all = times["ffmpeg_matched_s"] + times["ffmpeg_other_s"]
    n = n_matched + n_other
    noise = check[check["manipulation"] == "audio_noise"]
    offset = check[check["manipulation"] == "av_offset"]
    snr_diff = float(np.max(np.abs(noise["toolkit"] - noise["ffmpeg"]))) if len(noise) else 0
    off_diff = float(np.max(np.abs(offset["toolkit"] - offset["ffmpeg"]))) if len(offset) else 0
    snr_err = {who: float(np.max(np.abs(noise[who] - noise["level"]))) if len(noise) else 0.0
               for who in ("toolkit", "ffmpeg")}
    result = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "platform": platform.platform()},
              "stimuli": n, "matched_stimuli": n_matched, **times,
              "ratio_matched_ours_over_ffmpeg": times["ours_matched_s"] / times[
                  "ffmpeg_matched_s"],
              "ratio_whole_suite_ours_over_ffmpeg": ours_all / ff_all,
              "snr_max_abs_diff_db": snr_diff,
              "snr_max_abs_error_db": snr_err,
              "offset_max_abs_diff_ms": off_diff}
    print(f"default suite, {len(paths)} videos x {len(suite.conditions)} conditions = {n} "
          "stimuli, 2 workers:")
    print(f"  same job, checked before any time is reported ({len(check)} matched stimulus "
          f"pairs measured): SNR off the request by <= {snr_err['toolkit']:.3f} dB (toolkit), "
          f"<= {snr_err['ffmpeg']:.3f} dB (ffmpeg), the two differ by <= {snr_diff:.3f} dB "
          f"(allowed {SNR_AGREE_DB:g}); offsets differ by <= {off_diff:.4f} ms "
          f"(allowed {OFFSET_AGREE_MS:g})")
    print(f"  matched conditions ({', '.join(MATCHED)}): {n_matched} stimuli; the ffmpeg "
          "baseline measures active RMS and calibrates the SNR through AAC as the toolkit does")
    print(f"    avmit_psych generate   {times['ours_matched_s']:7.2f} s  "
          f"{n_matched / times['ours_matched_s']:6.2f} stimuli/s "
          f"(+ verification {times['verify_matched_s']:.2f} s)")
    print(f"    ffmpeg command lines   {times['ffmpeg_matched_s']:7.2f} s  "
          f"{n_matched / times['ffmpeg_matched_s']:6.2f} stimuli/s")
    print(f"    ratio ours / ffmpeg: {result['ratio_matched_ours_over_ffmpeg']:.2f} "
          "(target <= 1.5)")
    print("  whole suite, with visual_noise and audio_only where ffmpeg does a different job "
          "(noise filter, not achromatic Gaussian SD; mid-grey, not the clip's mean):")
    print(f"    avmit_psych generate   {ours_all:7.2f} s  {n / ours_all:6.2f} stimuli/s "
          f"(+ verification {times['verify_matched_s'] + times['verify_other_s']:.2f} s)")
    print(f"    ffmpeg command lines   {ff_all:7.2f} s  {n / ff_all:6.2f} stimuli/s")
    print(f"    ratio ours / ffmpeg: {ours_all / ff_all:.2f} (not like with like)")
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "stimuli.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
