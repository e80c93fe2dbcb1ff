"""Small test videos made with the ffmpeg of the imageio-ffmpeg wheel."""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np


def ffmpeg() -> str:
    import imageio_ffmpeg
    return imageio_ffmpeg.get_ffmpeg_exe()


def make_video(path, *, fps="30", duration=3.0, size="64x48", audio="stereo",
               sample_rate=44100, tone_hz=440) -> Path:
    """A test-pattern H.264 clip; audio 'stereo' (tone + different tone), 'mono', 'silent'
    (digital silence) or 'none' (no audio stream)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    args = [ffmpeg(), "-y", "-v", "error", "-f", "lavfi", "-i",
            f"testsrc=size={size}:rate={fps}:duration={duration}"]
    if audio == "stereo":
        args += ["-f", "lavfi", "-i",
                 f"aevalsrc=0.3*sin({tone_hz}*2*PI*t)|0.2*sin({2 * tone_hz}*2*PI*t)"
                 f":s={sample_rate}:d={duration}"]
    elif audio == "mono":
        args += ["-f", "lavfi", "-i", f"sine=frequency={tone_hz}:sample_rate={sample_rate}"
                 f":duration={duration}"]
    elif audio == "silent":
        args += ["-f", "lavfi", "-i", f"anullsrc=r={sample_rate}:cl=stereo:d={duration}"]
    args += ["-t", str(duration), "-c:v", "libx264", "-pix_fmt", "yuv420p"]
    args += ["-c:a", "aac", "-b:a", "192k"] if audio != "none" else ["-an"]
    subprocess.run(args + [str(path)], check=True)
    return path


def make_indexed_video(path, fps: str, duration: float = 3.0, size=(32, 24)) -> Path:
    """A lossless clip whose frame n is uniformly grey at level n (frame index readable back)."""
    path = Path(path)
    num, _, den = fps.partition("/")
    rate = float(num) / float(den or 1)
    n = int(round(duration * rate))
    w, h = size
    frames = np.repeat(np.arange(n, dtype=np.uint8)[:, None, None], h * w, axis=1)
    subprocess.run([ffmpeg(), "-y", "-v", "error", "-f", "rawvideo", "-pix_fmt", "gray",
                    "-s", f"{w}x{h}", "-r", fps, "-i", "-", "-c:v", "ffv1", "-pix_fmt", "gray",
                    str(path)], input=frames.tobytes(), check=True)
    return path


def write_wav(path, samples: np.ndarray, sample_rate: int, subtype: str) -> Path:
    import soundfile
    soundfile.write(str(path), samples, sample_rate, subtype=subtype)
    return Path(path)
