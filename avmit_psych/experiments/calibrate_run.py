"""The presentation side of the bench check of audiovisual timing (``calibrate run``,
``calibrate --loopback``); ``calibrate analyse REC.wav`` (:mod:`.calibrate`) measures the
recording.

The standard bench check, with the lab's own display, sound card and headphones: a white
square flashes ``n`` times (top-left corner by default, where a photodiode is taped) and the
*same* flip starts a click, scheduled exactly as the experiments schedule a clip's sound (the
square and its click are played by :class:`~avmit_psych.experiments.player.AVPlayer`: a
one-frame clip held for 2 refreshes, its sound a 1-ms full-scale click on both channels, with
the config's latency compensation). The lab records the photodiode and the headphone output on
two input channels of an audio interface into a stereo WAV; the click's onset minus the
light's onset is the audio delay still to compensate (``audio.latency_ms``: with
``latency_ms: null`` the whole delay beyond what the backend predicts; with a value set, what
is left of it).

:func:`loopback` measures the audio path alone: a cable from the output to an input, clicks
played and recorded in one full-duplex PortAudio stream (``sounddevice.playrec``).

Times are on PsychoPy's global clock (``psychopy.core.getTime()``), in seconds.
"""
from __future__ import annotations

import math
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..dataset.schema import DatasetError

#: Columns of the per-flash log (:func:`run_flashes`).
FLASH_COLUMNS = ["flash", "planned_flip", "flip", "off_flip", "first_flip_error_ms",
                 "requested_audio_start", "reported_audio_start", "audio_start_error_ms",
                 "scheduled_lead_ms", "latency_ms", "dropped_frames", "timing_ok"]
CLICK_MS = 1.0
SQUARE_PX = 100
CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")


def click(sample_rate_hz: int, *, click_ms: float = CLICK_MS, total_s: float | None = None,
          level: float = 1.0) -> np.ndarray:
    """A stereo click: ``click_ms`` of full-scale (``level``) DC on both channels, then silence
    up to ``total_s`` (float32, (n, 2))."""
    n_click = max(1, int(round(click_ms / 1000.0 * sample_rate_hz)))
    n = max(n_click, int(round((total_s or 0.0) * sample_rate_hz)))
    audio = np.zeros((n, 2), np.float32)
    audio[:n_click] = level
    return audio


def _configs(config):
    """(experiment config mapping, AudioConfig) from a YAML path, an experiment config
    mapping (its ``audio:`` and ``window:``), or an AudioConfig."""
    from .audio import AudioConfig, read_audio_config
    if isinstance(config, AudioConfig):
        return {}, config
    path = None
    if isinstance(config, (str, Path)):
        from ..dataset.schema import read_yaml
        path = Path(config)
        config = read_yaml(path, what="experiment config",
                           example="experiments/human_vs_dnn.yaml") or {}
    config = dict(config or {})
    return config, read_audio_config(config.get("audio"), path=path)


def run_flashes(config=None, n: int = 50, interval_s: float = 1.0,
                square_px: int = SQUARE_PX, windowed: bool = False, simulate: bool = False, *,
                corner: str = "top-left", log_path=None, win=None, output=None,
                click_ms: float = CLICK_MS, n_flashes: int | None = None) -> dict:
    """Flash a white square ``n`` times, each first flip scheduled with a click.

    Parameters
    ----------
    config : an experiment config (path to its YAML, or the mapping: its ``audio:`` section
        picks backend, device, latency mode, rate and ``latency_ms``; ``window:`` the window
        size), or an :class:`~avmit_psych.experiments.audio.AudioConfig`; None: the defaults.
    n : flashes (default 50); ``n_flashes`` is the same (the name ``calibrate run`` uses).
    interval_s : from one flash's onset to the next (default 1 s).
    square_px : side of the square, pixels.
    windowed : a window of the config's ``window.size`` instead of full screen.
    simulate : no sound card needed: the ALSA null device (tests, CI).
    corner : where the square sits ('top-left' by default, for the photodiode).
    log_path : also write the per-flash table (:data:`FLASH_COLUMNS`) to this CSV.
    win, output : an open window / :class:`~avmit_psych.experiments.audio.AudioOutput` to
        use (default: opened here and closed at the end).
    click_ms : the click's duration (default 1 ms).

    Returns
    -------
    dict with ``backend``, ``device``, ``latency_mode``, ``latency_ms`` (compensation),
    ``sample_rate``, ``refresh_hz``, ``paced`` (flips paced by the clock: no display
    refresh), ``square_px``, ``corner``, ``n``, ``interval_s``, ``click_ms`` and ``flashes``:
    one dict per flash with :data:`FLASH_COLUMNS` -- ``planned_flip`` (the time the square's
    first flip was planned for; the click was scheduled to reach the ear then),
    ``flip`` (its time stamp), ``off_flip`` (the flip that took the square off),
    ``requested_audio_start`` (= planned_flip - latency_ms), ``reported_audio_start`` (the
    backend's: PsychToolbox's ``StartTime``, sounddevice's DAC time of the first sample),
    ``audio_start_error_ms``, ``first_flip_error_ms``, ``scheduled_lead_ms``,
    ``dropped_frames``, ``timing_ok``. The recording's click onset minus light onset, per
    flash, is what ``calibrate analyse`` measures.
    """
    from . import audio, headless
    from .player import AVPlayer, refresh_and_pacing
    from ..media import Clip
    n = int(n_flashes) if n_flashes is not None else int(n)
    if corner not in CORNERS:
        raise ValueError(f"corner must be one of {', '.join(CORNERS)}, not {corner!r}")
    if n < 1 or interval_s <= 0 or square_px < 1:
        raise ValueError("n and square_px must be >= 1 and interval_s > 0")
    cfg, audio_cfg = _configs(config)
    own_output, own_win = output is None, win is None
    if own_output:
        headless.prepare_audio(null_device=simulate)
        output = audio.open_output(audio_cfg)
    try:
        if own_win:
            win = _open_window(cfg, windowed)
        refresh_hz, paced = refresh_and_pacing(win)
        # one clip frame at half the refresh rate: the square stays up for 2 refreshes
        fps = Fraction(refresh_hz).limit_denominator(1000) / 2
        frame = np.full((1, square_px, square_px, 3), 255, np.uint8)
        sound = click(output.sample_rate, click_ms=click_ms, total_s=1.0 / float(fps))
        clip = Clip(frames=frame, fps=fps, audio=sound.astype(np.float64),
                    sample_rate_hz=output.sample_rate, has_audio=True)
        w, h = win.size
        x = -w / 2 if "left" in corner else w / 2
        y = h / 2 if "top" in corner else -h / 2
        rows = []
        from psychopy import core
        with AVPlayer(win, clip, source="calibration square", pos=(x, y), anchor=corner,
                      audio_output=output, refresh_hz=refresh_hz, pace_flips=paced) as player:
            win.flip()    # a black screen to start from
            # the player plans each first flip this far ahead of its call (see player.py)
            lead = max(1.0 / refresh_hz, output.latency_ms / 1000.0 + output.min_lead_s)
            next_onset = core.getTime() + min(interval_s, 0.5)
            for k in range(n):
                _sleep_until(next_onset - lead, core.getTime)
                report = player.play()
                off = win.flip()     # the square off (the window is cleared to black)
                rows.append(_flash_row(k + 1, report, off))
                next_onset = report.onset + interval_s
        result = {"backend": output.backend, "device": output.device,
                  "latency_mode": output.latency_mode, "latency_ms": output.latency_ms,
                  "sample_rate": output.sample_rate, "refresh_hz": refresh_hz,
                  "paced": paced, "square_px": square_px, "corner": corner, "n": n,
                  "interval_s": interval_s, "click_ms": click_ms, "flashes": rows}
    finally:
        if own_win and win is not None:
            win.close()
        if own_output:
            output.close()
    if log_path is not None:
        write_flash_log(result, log_path)
    return result


def _flash_row(k: int, report, off_flip) -> dict:
    a = report.audio
    return {"flash": k, "planned_flip": report.first_flip_planned, "flip": report.onset,
            "off_flip": off_flip, "first_flip_error_ms": report.first_flip_error_ms,
            "requested_audio_start": a.get("requested_start"),
            "reported_audio_start": a.get("reported_start"),
            "audio_start_error_ms": report.audio_start_error_ms,
            "scheduled_lead_ms": report.scheduled_lead_ms, "latency_ms": report.latency_ms,
            "dropped_frames": report.dropped_frames, "timing_ok": report.timing_ok}


def write_flash_log(result: dict, path) -> Path:
    """The per-flash table of :func:`run_flashes` as a CSV (written atomically)."""
    import pandas as pd

    from .._atomic import atomic_path
    path = Path(path)
    table = pd.DataFrame(result["flashes"], columns=FLASH_COLUMNS)
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6f")
    return path


def _open_window(cfg: dict, windowed: bool):
    from . import headless
    if not headless.display_available():
        raise DatasetError(headless.headless_error_message())
    from psychopy import visual
    w = cfg.get("window", {}) or {}
    return visual.Window(size=w.get("size", [1280, 800]), units="pix", winType="pyglet",
                         fullscr=w.get("fullscr", True) and not windowed,
                         monitor=w.get("monitor", "testMonitor"), color=(-1, -1, -1),
                         allowGUI=windowed)


def _sleep_until(t: float, clock) -> None:
    left = t - clock()
    if left > 0:
        time.sleep(left)


def input_devices() -> list[dict]:
    """PortAudio's devices with at least one input channel (``sounddevice.query_devices``)."""
    import sounddevice as sd
    return [dict(d, index=i) for i, d in enumerate(sd.query_devices())
            if d["max_input_channels"] > 0]


def scheduled_click_times(n: int, interval_s: float) -> np.ndarray:
    """When :func:`loopback` sends its clicks, in s from the recording's first sample: click
    ``k`` (1..n) at ``k * interval_s``."""
    return np.arange(1, int(n) + 1) * float(interval_s)


def loopback(config=None, n: int = 20, interval_s: float = 0.5, *, input_device=None,
             input_channel: int = 1, simulate: bool = False, click_ms: float = CLICK_MS,
             n_clicks: int | None = None) -> tuple[np.ndarray, int]:
    """Play ``n`` clicks through the output while recording an input (a cable from the
    output to the input): the audio path alone, no display.

    One full-duplex PortAudio stream (``sounddevice.playrec``) plays and records, so input
    and output samples share one clock: sample ``i`` of the recording was captured while
    sample ``i`` of the output was handed to PortAudio.

    Parameters
    ----------
    config : as for :func:`run_flashes` (its ``audio.device`` and ``audio.sample_rate`` are
        used; the path measured is PortAudio's, whatever ``audio.backend`` says).
    n, interval_s : clicks and their spacing (the first after ``interval_s``;
        :func:`scheduled_click_times`); ``n_clicks`` is the same as ``n``.
    input_device : the input device (name, part of it, or index); default: PortAudio's
        default input.
    input_channel : which input channel the cable goes to (1-based).
    simulate : accept the ALSA null device as input (tests: its input is filler, not a
        recording).
    click_ms : the click's duration.

    Returns
    -------
    (recording, rate): float32 (samples, 2) at ``rate`` Hz: column 0 the clicks as sent to the
    output, column 1 the input channel. Column 1's click onsets minus column 0's (or minus
    :func:`scheduled_click_times`) are the round-trip delay (output, cable, input), e.g.
    ``calibrate.analyse_loopback((recording, rate), scheduled_click_times(n, interval_s),
    channel=1)``.

    Raises
    ------
    DatasetError "no audio input device: ..." when PortAudio lists no input (or, unless
    ``simulate``, only the ALSA null device, whose input records nothing real).
    """
    from . import headless
    _, audio_cfg = _configs(config)
    n = int(n_clicks) if n_clicks is not None else int(n)
    if simulate:
        headless.prepare_audio(null_device=True)
    import sounddevice as sd
    inputs = input_devices()
    if not inputs:
        raise DatasetError("no audio input device: PortAudio lists none on this machine, so "
                           "a loopback cannot record", fix="connect an audio interface with "
                                                           "an input, or record the bench check "
                                                           "with `calibrate run`")
    if headless.null_device_in_use() and not simulate:
        raise DatasetError("no audio input device: only the ALSA null device is there (its "
                           "input records nothing real)",
                           fix="run on the lab machine with the audio interface connected")
    rate = int(audio_cfg.sample_rate)
    clicks = np.zeros((int(round((n + 1) * interval_s * rate)), 2), np.float32)
    one = click(rate, click_ms=click_ms)
    for k in range(1, n + 1):
        start = int(round(k * interval_s * rate))
        clicks[start:start + len(one)] = one
    channels = max(1, int(input_channel))
    try:
        recorded = sd.playrec(clicks, samplerate=rate, channels=channels,
                              device=(input_device, audio_cfg.device), dtype="float32",
                              blocking=True)
    except Exception as err:
        raise DatasetError(f"no audio input device: the loopback stream did not open "
                           f"({type(err).__name__}: {err})",
                           fix="name the input with input_device (python -m sounddevice "
                               "lists them)") from err
    out = np.empty((len(clicks), 2), np.float32)
    out[:, 0] = clicks[:, 0]
    out[:, 1] = recorded[:, channels - 1]
    return out, rate


def add_run_arguments(parser) -> None:
    """The options of ``calibrate run`` / ``calibrate --loopback`` (for the CLI in
    :mod:`.calibrate`); :func:`run_command` runs them."""
    parser.add_argument("--config", type=Path, default=Path("experiments/human_vs_dnn.yaml"),
                        help="experiment config whose audio: and window: are used")
    parser.add_argument("--flashes", type=int, default=50, metavar="N",
                        help="flashes (or, with --loopback, clicks)")
    parser.add_argument("--interval-s", type=float, default=1.0, metavar="S",
                        help="seconds between flashes (or clicks)")
    parser.add_argument("--square-px", type=int, default=SQUARE_PX)
    parser.add_argument("--corner", choices=CORNERS, default="top-left")
    parser.add_argument("--windowed", action="store_true")
    parser.add_argument("--simulate", action="store_true",
                        help="no sound card: the ALSA null device (tests)")
    parser.add_argument("--log", type=Path, help="CSV of what was presented, per flash")
    parser.add_argument("--loopback", action="store_true",
                        help="no screen: record the output through a cable into an input")
    parser.add_argument("--input-device", help="loopback input device (name or index)")
    parser.add_argument("--input-channel", type=int, default=1)
    parser.add_argument("--out", type=Path, help="loopback: the stereo WAV to write")


def run_command(args) -> int:
    """Run ``calibrate run`` (flashes) or ``calibrate --loopback`` from parsed arguments."""
    if args.loopback:
        if args.out is None:
            raise DatasetError("--loopback needs --out REC.wav (the recording to analyse)")
        device = int(args.input_device) if str(args.input_device).isdigit() else \
            args.input_device
        recording, rate = loopback(args.config, n=args.flashes, interval_s=args.interval_s,
                                   input_device=device, input_channel=args.input_channel,
                                   simulate=args.simulate)
        write_wav(args.out, recording, rate)
        print(f"loopback: {args.flashes} clicks recorded to {args.out} (column 1: sent, "
              f"2: input); analyse it with `calibrate analyse {args.out}`")
        return 0
    result = run_flashes(args.config, n=args.flashes, interval_s=args.interval_s,
                         square_px=args.square_px, windowed=args.windowed,
                         simulate=args.simulate, corner=args.corner, log_path=args.log)
    errors = [abs(r["audio_start_error_ms"]) for r in result["flashes"]
              if math.isfinite(r["audio_start_error_ms"])]
    print(f"{result['n']} flashes, {result['backend']} ({result['device']}, mode "
          f"{result['latency_mode']}), compensation {result['latency_ms']:.1f} ms; largest "
          f"audio start error {max(errors, default=float('nan')):.3f} ms"
          + (f"; log in {args.log}" if args.log else ""))
    return 0


def write_wav(path, recording: np.ndarray, rate: int) -> Path:
    """A float32 WAV (written atomically)."""
    from scipy.io import wavfile

    from .._atomic import atomic_path
    path = Path(path)
    with atomic_path(path) as tmp:
        wavfile.write(tmp, int(rate), np.asarray(recording, np.float32))
    return path
