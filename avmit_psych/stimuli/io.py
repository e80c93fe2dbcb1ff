"""Reading a source clip whole, and encoding a stimulus (ffmpeg from imageio-ffmpeg).

Encoding: H.264 (libx264, yuv420p, CRF 18 by default, preset medium, the source's frame size
and frame rate) with AAC at 192 kbit/s in .mp4, or 16-bit PCM in .mov when asked. x264 and
ffmpeg's AAC encoder are deterministic for the same input and settings, and the muxer writes no
creation time, so the same stimulus gives the same file bytes (tests check this).
"""
from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from .._atomic import atomic_path
from ..features import media

CONTAINERS = {"mp4": ("aac", [".mp4"]), "mov": ("pcm_s16le", [".mov"])}


@dataclass
class Clip:
    frames: np.ndarray          # (n_frames, height, width, 3) uint8 RGB
    fps: Fraction
    audio: np.ndarray           # (n_samples, n_channels) float64 in [-1, 1]
    sample_rate_hz: int
    has_audio: bool

    @property
    def duration_s(self) -> float:
        return len(self.frames) / float(self.fps)


def exact_fps(fps: float) -> Fraction:
    """The frame rate as a fraction (29.97 -> 30000/1001)."""
    return Fraction(fps).limit_denominator(1001)


def read_clip(path, *, default_sample_rate_hz: int = 44_100) -> Clip:
    """Every frame and the whole audio of a video (float audio at its own rate and channels).

    A video without audio gets silence at ``default_sample_rate_hz`` (stereo), flagged
    ``has_audio=False``.
    """
    info = media.probe(path)
    if info.width is None or not info.fps:
        raise media.MediaError("no video stream or unknown frame rate")
    video_args = ["-map", "0:v:0", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
    channels = info.audio_channels or 2
    audio_bytes = b""
    if info.has_audio:
        raw, audio_bytes = media.video_and_audio(
            path, video_args, ["-f", "f32le", "-acodec", "pcm_f32le", "-ac", str(channels)])
    else:
        proc = subprocess.run([media.ffmpeg_exe(), "-v", "error", "-nostdin", "-i", str(path),
                               *video_args], capture_output=True)
        if proc.returncode != 0:
            lines = proc.stderr.decode(errors="replace").strip().splitlines()
            raise media.MediaError(
                f"cannot decode ({(lines[-1] if lines else 'ffmpeg failed')[-160:]})")
        raw = proc.stdout
    frame_bytes = info.width * info.height * 3
    n = len(raw) // frame_bytes
    if n == 0:
        raise media.MediaError("no decodable video frames")
    frames = np.frombuffer(raw[: n * frame_bytes], np.uint8).reshape(n, info.height, info.width, 3)
    fps = exact_fps(info.fps)
    if info.has_audio:
        samples = np.frombuffer(audio_bytes, dtype="<f4")
        audio = samples[: len(samples) - len(samples) % channels].reshape(-1, channels)
        rate = int(info.audio_sample_rate_hz)
        # the audio track is cut or padded to the video's duration, sample-exact
        n_samples = int(round(n / fps * rate))
        audio = _fit(audio.astype(np.float64), n_samples)
    else:
        rate = default_sample_rate_hz
        audio = np.zeros((int(round(n / fps * rate)), 2))
    return Clip(frames=frames.copy(), fps=fps, audio=audio, sample_rate_hz=rate,
                has_audio=info.has_audio)


def _fit(audio: np.ndarray, n_samples: int) -> np.ndarray:
    if len(audio) >= n_samples:
        return audio[:n_samples]
    out = np.zeros((n_samples, audio.shape[1]))
    out[:len(audio)] = audio
    return out


def encode(path, frames: np.ndarray, fps: Fraction, audio: np.ndarray, sample_rate_hz: int, *,
           container: str = "mp4", crf: int = 18, audio_bitrate: str = "192k",
           preset: str = "medium") -> Path:
    """Write one stimulus (via a temporary name and a rename)."""
    import soundfile

    path = Path(path)
    if container not in CONTAINERS:
        raise ValueError(f"container must be one of {', '.join(CONTAINERS)}")
    audio_codec = CONTAINERS[container][0]
    frames = np.ascontiguousarray(frames, dtype=np.uint8)
    n, h, w, _ = frames.shape
    pad = []
    if h % 2 or w % 2:  # yuv420p needs even sizes: repeat the last row/column
        pad = ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2:0:0,format=yuv420p"]
    audio = np.clip(np.asarray(audio, dtype=np.float64), -1.0, 1.0)
    if audio.ndim == 1:
        audio = audio[:, None]
    with tempfile.TemporaryDirectory(dir=path.parent if path.parent.exists() else None,
                                     prefix=".audio-") as tmp:
        wav = Path(tmp) / "audio.wav"
        soundfile.write(str(wav), audio.astype(np.float32), int(sample_rate_hz), subtype="FLOAT")
        suffix = path.suffix
        with atomic_path(path, suffix=suffix) as tmp_out:
            args = [media.ffmpeg_exe(), "-y", "-v", "error", "-nostdin",
                    "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
                    "-framerate", f"{fps.numerator}/{fps.denominator}", "-i", "pipe:0",
                    "-i", str(wav), "-map", "0:v:0", "-map", "1:a:0", *pad,
                    "-c:v", "libx264", "-preset", preset, "-crf", str(int(crf)),
                    "-pix_fmt", "yuv420p", "-c:a", audio_codec]
            if audio_codec == "aac":
                # no low-pass: the noise (and any content) keeps its energy up to Nyquist
                args += ["-b:a", audio_bitrate, "-cutoff", str(int(sample_rate_hz) // 2)]
            args += ["-ar", str(int(sample_rate_hz)), "-fflags", "+bitexact",
                     "-flags:v", "+bitexact", "-flags:a", "+bitexact",
                     "-map_metadata", "-1", str(tmp_out)]
            proc = subprocess.run(args, input=frames.tobytes(), capture_output=True)
            if proc.returncode != 0:
                raise RuntimeError(f"ffmpeg could not encode {path.name}: "
                                   f"{proc.stderr.decode(errors='replace').strip()[-300:]}")
    return path


def aac_roundtrip(audio: np.ndarray, sample_rate_hz: int, *, audio_bitrate: str = "192k",
                  work_dir=None) -> np.ndarray:
    """The audio as it will come out of the stimulus file: encoded with the same AAC settings
    as :func:`encode` (in an .m4a, so the encoder delay is undone on decoding) and decoded."""
    import soundfile

    audio = np.clip(np.asarray(audio, dtype=np.float64), -1.0, 1.0)
    if audio.ndim == 1:
        audio = audio[:, None]
    with tempfile.TemporaryDirectory(dir=work_dir, prefix=".aac-") as tmp:
        wav, m4a = Path(tmp) / "in.wav", Path(tmp) / "out.m4a"
        soundfile.write(str(wav), audio.astype(np.float32), int(sample_rate_hz), subtype="FLOAT")
        subprocess.run([media.ffmpeg_exe(), "-y", "-v", "error", "-nostdin", "-i", str(wav),
                        "-c:a", "aac", "-b:a", audio_bitrate, "-cutoff",
                        str(int(sample_rate_hz) // 2), "-ar", str(int(sample_rate_hz)),
                        "-flags:a", "+bitexact", "-fflags", "+bitexact", str(m4a)], check=True,
                       capture_output=True)
        raw = subprocess.run([media.ffmpeg_exe(), "-v", "error", "-nostdin", "-i", str(m4a),
                              "-f", "f32le", "-acodec", "pcm_f32le", "-ac",
                              str(audio.shape[1]), "-"], check=True,
                             capture_output=True).stdout
    out = np.frombuffer(raw, dtype="<f4").reshape(-1, audio.shape[1]).astype(np.float64)
    return _fit(out, len(audio))
