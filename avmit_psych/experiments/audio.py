"""Audio output with a scheduled, latency-compensated start: PsychToolbox or sounddevice.

The experiments play a clip's sound so that it reaches the ear at a planned time relative to
the clip's first frame. A backend is asked to start the sound at an absolute time and reports
when it did; the audio delay it does not know about (the DAC, the headphone amplifier, a USB
or Bluetooth link: measured on the bench with ``calibrate``) is compensated by starting that
much earlier.

Configuration (the ``audio:`` mapping of ``experiments/*.yaml``; :func:`read_audio_config`)::

    audio:
      backend: auto           # ptb | sounddevice | auto (ptb where it opens, else sounddevice)
      device: null            # output device: a name (or part of it) or an index; null: default
      latency_mode: 3         # PsychToolbox latency class 0-4; sounddevice: 0 'high', else 'low'
      sample_rate: 48000      # Hz
      latency_ms: null        # measured delay to compensate (calibrate); null: none (0 ms)
      timing_tolerance_ms: 2.0   # a trial off by more is flagged timing_ok = False

Backends
--------
- :class:`PtbOutput` drives PsychPortAudio through ``psychtoolbox.audio.Stream`` (2 channels,
  ``latency_class=latency_mode``). ``start(when=t)`` makes PsychToolbox start the sound so that
  its first sample leaves the device at ``t`` on ``GetSecs``'s clock (PsychToolbox already
  allows for the latency it predicts); ``status['StartTime']`` then reports when it did.
  PsychoPy's own ptb ``Sound`` is not used: on the ALSA null device it opens the device's 128
  channels and refuses a 2-column buffer.
- :class:`SoundDeviceOutput` keeps one ``sounddevice.OutputStream`` running (silence when idle).
  Its callback gets, for every block, the time the block's first sample reaches the DAC
  (``time_info.outputBufferDacTime``, on the stream's clock; PortAudio includes the stream's
  output latency); the clip's first sample is written at the sample offset whose DAC time is
  the requested start, so the start is exact to a sample when the request comes in time (at
  least :attr:`AudioOutput.min_lead_s` ahead). Limits: the DAC time is PortAudio's estimate
  from the host API; a request that comes too late starts at the next block (the error is
  reported); a host API that reports no DAC time falls back to the stream's clock plus
  ``stream.latency``.

Clocks
------
Every time this module takes or returns is on PsychoPy's global clock
(``psychopy.core.getTime()``, the clock ``win.flip()`` returns). PsychoPy's time base *is*
``psychtoolbox.GetSecs`` when PsychToolbox is installed (``psychopy.clock.getTime is
psychtoolbox.GetSecs``; ``core.getTime() = GetSecs() - monotonicClock.getLastResetTime()``;
on Linux both are ``CLOCK_REALTIME``, as is PortAudio's stream clock). That is not assumed:
each backend's clock is related to PsychoPy's by reading the two back to back (the closest of
5 bracketed readings, a few microseconds) whenever a start is scheduled
(:func:`clock_offset`).

On the ALSA null device (tests, CI; :mod:`.headless`) both backends open for real. The null
device consumes audio as fast as it is given: PsychToolbox then spins a core while its engine
runs, so :class:`PtbOutput` sets run mode 0 there (the engine stops after each sound; only the
lead before a scheduled start is spent spinning), and :class:`SoundDeviceOutput` sleeps in its
callback for each block's duration, as a sound card would make it wait.
"""
from __future__ import annotations

import abc
import logging
import sys
import time
import weakref
from dataclasses import dataclass, fields
from typing import Callable

import numpy as np

from ..dataset.schema import DatasetError

log = logging.getLogger(__name__)

#: The backends a config may name (``auto``, or no ``backend`` key: ptb where it opens).
BACKENDS = ("ptb", "sounddevice")
AUTO = "auto"
LATENCY_MODES = (0, 1, 2, 3, 4)
#: Extra margin, beyond the backend's own latency, by which a start must be requested ahead.
SCHEDULE_MARGIN_S = 0.010
#: More for PsychToolbox with its engine stopped between sounds (null device): a cold start.
COLD_START_MARGIN_S = 0.010


@dataclass(frozen=True)
class AudioConfig:
    """The validated ``audio:`` mapping of an experiment config (:func:`read_audio_config`).

    backend : 'ptb', 'sounddevice' or 'auto' (ptb where it opens, else sounddevice).
    device : output device name (a case-insensitive part of it) or index; None: the default.
    latency_mode : PsychToolbox's latency class (0 none, 1 low, 2 aggressive with exclusive
        device access, 3 most aggressive, 4 critical); sounddevice: 0 -> 'high', else 'low'.
    sample_rate : Hz; every clip is resampled to it.
    latency_ms : the measured audio delay to compensate (sound at the ear minus the backend's
        reported start, from ``calibrate``); None: not measured, nothing compensated.
    timing_tolerance_ms : a trial whose audio start (the backend's report) is off by more than
        this (or that dropped a frame) is flagged ``timing_ok = False``.
    source : the config file, for messages.
    """

    backend: str = AUTO
    device: str | int | None = None
    latency_mode: int = 3
    sample_rate: int = 48_000
    latency_ms: float | None = None
    timing_tolerance_ms: float = 2.0
    source: str = "<config>"

    @property
    def compensation_ms(self) -> float:
        """The latency compensated, in ms (0 when ``latency_ms`` is not set)."""
        return float(self.latency_ms or 0.0)


CONFIG_KEYS = tuple(f.name for f in fields(AudioConfig) if f.name != "source")


def read_audio_config(mapping, path=None) -> AudioConfig:
    """Validate an experiment config's ``audio:`` mapping (None or absent: the defaults).

    Raises one-line :class:`DatasetError` naming the config file and the key (``audio.<key>``)
    for an unknown key, an unknown backend (the choices are listed), a latency mode outside
    0-4, a sample rate that is not a positive integer, a negative or non-numeric
    ``latency_ms`` or ``timing_tolerance_ms``.
    """
    source = str(path) if path is not None else "<config>"
    if mapping is None:
        return AudioConfig(source=source)
    if not isinstance(mapping, dict):
        raise DatasetError(f"'audio' must be a mapping of {', '.join(CONFIG_KEYS)}, not "
                           f"{type(mapping).__name__}", path=path,
                           fix="see experiments/human_vs_dnn.yaml for an example")
    unknown = [k for k in mapping if k not in CONFIG_KEYS]
    if unknown:
        raise DatasetError(f"unknown key audio.{unknown[0]}", path=path,
                           fix=f"the audio keys are: {', '.join(CONFIG_KEYS)}")
    backend = mapping.get("backend")
    backend = AUTO if backend is None else str(backend).strip().lower()
    if backend not in BACKENDS + (AUTO,):
        raise DatasetError(f"audio.backend is {mapping.get('backend')!r}, not a backend this "
                           f"toolkit has; choices: {', '.join(BACKENDS)} (or {AUTO}: ptb where "
                           f"it opens, else sounddevice)", path=path,
                           fix="set audio.backend to ptb or sounddevice")
    device = mapping.get("device")
    if device is not None and not isinstance(device, (str, int)) or isinstance(device, bool):
        raise DatasetError(f"audio.device must be a device name or index, not {device!r}",
                           path=path, fix="give part of the device's name, or leave it null")
    mode = mapping.get("latency_mode", 3)
    if isinstance(mode, bool) or not isinstance(mode, int) or mode not in LATENCY_MODES:
        raise DatasetError(f"audio.latency_mode is {mode!r}; expected an integer 0-4", path=path,
                           fix="0 no low-latency mode ... 3 most aggressive (PsychoPy's "
                               "default), 4 critical")
    rate = mapping.get("sample_rate", 48_000)
    if isinstance(rate, bool) or not isinstance(rate, int) or rate <= 0:
        raise DatasetError(f"audio.sample_rate is {rate!r}; expected a positive integer (Hz)",
                           path=path, fix="e.g. 48000")
    latency = _non_negative(mapping.get("latency_ms"), "latency_ms", path, allow_none=True,
                            fix="the delay `calibrate analyse` measured, or null")
    tolerance = _non_negative(mapping.get("timing_tolerance_ms", 2.0), "timing_tolerance_ms",
                              path, allow_none=False, fix="e.g. 2.0")
    return AudioConfig(backend, device, int(mode), int(rate), latency, tolerance, source)


def _non_negative(value, key, path, *, allow_none: bool, fix: str):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not \
            np.isfinite(value) or value < 0:
        raise DatasetError(f"audio.{key} is {value!r}; expected a number >= 0 (ms)"
                           + (" or null" if allow_none else ""), path=path, fix=fix)
    return float(value)


def clock_offset(clock: Callable[[], float], reference: Callable[[], float] | None = None,
                 tries: int = 5) -> float:
    """``clock() - reference()`` at the same instant (reference: PsychoPy's
    ``core.getTime``): the reading of ``clock`` between two readings of ``reference`` that are
    closest together, against their midpoint."""
    if reference is None:
        from psychopy import core
        reference = core.getTime
    best = (np.inf, 0.0)
    for _ in range(tries):
        a = reference()
        b = clock()
        c = reference()
        if c - a < best[0]:
            best = (c - a, b - (a + c) / 2)
    return best[1]


def _as_stereo_float32(audio, source: str = "audio") -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[:, None]
    if audio.ndim != 2 or audio.shape[1] not in (1, 2):
        raise ValueError(f"{source}: audio must be (n,) or (n, 1|2), got {audio.shape}")
    if audio.shape[1] == 1:
        audio = np.repeat(audio, 2, axis=1)
    return np.ascontiguousarray(np.clip(audio, -1.0, 1.0))


class AudioOutput(abc.ABC):
    """One open output device with a scheduled start; make it with :func:`open_output`.

    ``load(audio)`` then ``schedule(at_ear)``: the sound's first sample is to reach the ear at
    ``at_ear`` (PsychoPy's clock, s); the backend is asked to start it ``latency_ms`` earlier.
    ``report()`` says what was asked and what the backend reported.
    """

    backend: str = ""

    def __init__(self, config: AudioConfig):
        self.config = config
        self.sample_rate = int(config.sample_rate)
        self.latency_mode = int(config.latency_mode)
        self.device = ""
        self._owner = None     # a weak reference: the output must not keep a player alive
        self._loaded: np.ndarray | None = None
        self._target: float | None = None
        self._requested: float | None = None
        self._offset = 0.0     # backend clock - PsychoPy clock, measured at schedule time

    # -- what every backend shares ------------------------------------------------------
    @property
    def latency_ms(self) -> float:
        """The compensation applied: the config's ``latency_ms`` (0 when not measured)."""
        return self.config.compensation_ms

    @property
    def timing_tolerance_ms(self) -> float:
        return float(self.config.timing_tolerance_ms)

    def facts(self) -> dict:
        """What a data file's sidecar records about the audio of its session."""
        return {"audio_backend": self.backend, "audio_device": self.device,
                "audio_latency_mode": self.latency_mode, "audio_latency_ms": self.latency_ms,
                "audio_latency_measured": self.config.latency_ms is not None,
                "audio_sample_rate": self.sample_rate,
                "audio_timing_tolerance_ms": self.timing_tolerance_ms}

    def load(self, audio, rate: int | None = None, *, owner=None) -> None:
        """Stop what is playing and load ``audio`` ((n,) or (n, 1|2) float, -1..1) at
        ``rate`` Hz (must be the output's rate: resample first). ``owner`` marks who loaded
        it (:meth:`stop` with an owner stops only that owner's sound)."""
        if rate is not None and int(rate) != self.sample_rate:
            raise ValueError(f"audio at {rate} Hz, but the output runs at {self.sample_rate} Hz:"
                             " resample it first")
        self.stop()
        self._loaded = _as_stereo_float32(audio)
        self._target = self._requested = None
        self._owner = weakref.ref(owner) if owner is not None else None
        self._load(self._loaded)

    def schedule(self, at_ear: float) -> float:
        """Start the loaded sound so that it reaches the ear at ``at_ear`` (PsychoPy's clock):
        the backend is asked to start it at ``at_ear - latency_ms``. Returns that requested
        start. Ask at least :attr:`min_lead_s` ahead, or the start comes late (and
        :meth:`report` says by how much)."""
        if self._loaded is None:
            raise RuntimeError("nothing loaded: call load() before schedule()")
        self._target = float(at_ear)
        self._requested = self._target - self.latency_ms / 1000.0
        self._offset = clock_offset(self._clock)
        self._start(self._requested + self._offset)
        return self._requested

    def play(self, audio, rate: int | None = None, *, at_ear: float | None = None,
             owner=None) -> float:
        """Load ``audio`` and start it as soon as the backend can (or at ``at_ear``): for
        sounds whose start needs no frame, e.g. a headphone screen. Returns the requested
        start."""
        self.load(audio, rate, owner=owner)
        if at_ear is None:
            from psychopy import core
            at_ear = core.getTime() + self.min_lead_s + self.latency_ms / 1000.0
        return self.schedule(at_ear)

    def report(self, wait_s: float = 0.5) -> dict:
        """What the last :meth:`schedule` asked and what the backend reported.

        Keys: ``backend``, ``device``, ``latency_mode``, ``latency_ms`` (compensation),
        ``target`` (sound at the ear), ``requested_start`` (= target - latency),
        ``reported_start`` (the backend's time of the first sample at the output; None if it
        has not started within ``wait_s`` of the requested start), ``schedule_error_ms``
        (reported - requested), ``output_latency_ms`` (the backend's own predicted latency,
        already allowed for in its reported start). Times on PsychoPy's clock (s).
        """
        reported = None
        if self._requested is not None:
            deadline = time.perf_counter() + max(0.0, wait_s)
            from psychopy import core
            deadline += max(0.0, self._requested - core.getTime())
            while True:
                reported = self._reported_start()
                if reported is not None or time.perf_counter() >= deadline:
                    break
                time.sleep(0.001)
        if reported is not None:
            reported -= self._offset
        return {"backend": self.backend, "device": self.device,
                "latency_mode": self.latency_mode, "latency_ms": self.latency_ms,
                "target": self._target, "requested_start": self._requested,
                "reported_start": reported,
                "schedule_error_ms": (reported - self._requested) * 1000.0
                if reported is not None else float("nan"),
                "output_latency_ms": self._output_latency_s() * 1000.0}

    def stop(self, owner=None) -> None:
        """Stop the sound (only if ``owner`` loaded it, when an owner is given)."""
        if owner is not None and (self._owner is None or self._owner() is not owner):
            return
        self._stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- what each backend implements (PtbOutput, SoundDeviceOutput) ---------------------
    @property
    @abc.abstractmethod
    def min_lead_s(self) -> float:
        """How far ahead of the requested start :meth:`schedule` must be called."""
        ...

    @property
    @abc.abstractmethod
    def is_playing(self) -> bool:
        ...

    @abc.abstractmethod
    def close(self) -> None:
        ...

    @abc.abstractmethod
    def _clock(self) -> float:
        ...

    @abc.abstractmethod
    def _load(self, audio: np.ndarray) -> None:
        ...

    @abc.abstractmethod
    def _start(self, when_backend: float) -> None:
        ...

    @abc.abstractmethod
    def _reported_start(self) -> float | None:
        ...

    @abc.abstractmethod
    def _stop(self) -> None:
        ...

    @abc.abstractmethod
    def _output_latency_s(self) -> float:
        ...


class PtbOutput(AudioOutput):
    """PsychPortAudio through ``psychtoolbox.audio.Stream``: a sample-accurate scheduled start
    (``start(when=...)``) and its reported ``StartTime``."""

    backend = "ptb"

    def __init__(self, config: AudioConfig):
        super().__init__(config)
        import psychtoolbox
        from psychtoolbox import audio as ptb_audio
        from . import headless
        self._GetSecs = psychtoolbox.GetSecs
        device_id, info = _ptb_device(ptb_audio, config)
        self.stream = ptb_audio.Stream(device_id=device_id, latency_class=self.latency_mode,
                                       freq=self.sample_rate, channels=2)
        self.device = str(info.get("DeviceName", "")) if info else "default"
        if not info:
            index = int(self.stream.status.get("OutDeviceIndex", -1))
            info = next((d for d in ptb_audio.get_devices()
                         if int(d["DeviceIndex"]) == index), {})
            self.device = str(info.get("DeviceName", "default"))
        key = "HighOutputLatency" if self.latency_mode == 0 else "LowOutputLatency"
        self._device_latency_s = float(info.get(key, 0.0) or 0.0)
        self._when: float | None = None
        self.null_device = headless.null_device_in_use()
        if self.null_device:
            # the null device takes samples as fast as they come: a running engine would spin
            # a core for the rest of the session; run mode 0 stops it after each sound
            self.stream.run_mode = 0
        self._closed = False

    @property
    def min_lead_s(self) -> float:
        predicted = max(self._device_latency_s, self._output_latency_s())
        return predicted + SCHEDULE_MARGIN_S + (COLD_START_MARGIN_S if self.null_device else 0)

    @property
    def is_playing(self) -> bool:
        """Playing, or waiting for its scheduled start (PsychPortAudio's ``State`` > 0)."""
        if self._closed:
            return False
        status = self.stream.status
        return bool(status["Active"]) or bool(status["State"])

    def close(self) -> None:
        if not self._closed:
            self._stop()
            self.stream.close()
            self._closed = True

    def _clock(self) -> float:
        return self._GetSecs()

    def _load(self, audio: np.ndarray) -> None:
        self.stream.fill_buffer(audio)

    def _start(self, when_backend: float) -> None:
        self._when = when_backend
        self.stream.start(repetitions=1, when=when_backend, wait_for_start=0)

    def _reported_start(self) -> float | None:
        status = self.stream.status
        start, requested = float(status["StartTime"]), float(status["RequestedStartTime"])
        # the status is this request's once PsychToolbox has started it
        if start > 0 and abs(requested - self._when) < 1e-6:
            return start
        return None

    def _stop(self) -> None:
        if not self._closed:   # also cancels a start still waiting for its time
            self.stream.stop(block_until_stopped=1)

    def _output_latency_s(self) -> float:
        if self._closed:
            return 0.0
        return max(0.0, float(self.stream.status["PredictedLatency"]))


def _ptb_device(ptb_audio, config: AudioConfig):
    """PsychPortAudio's device index for ``config.device`` ([] for the default) and its
    description."""
    if config.device is None:
        return [], {}
    outputs = [d for d in ptb_audio.get_devices() if d.get("NrOutputChannels", 0) >= 2]
    if isinstance(config.device, int):
        match = [d for d in outputs if int(d["DeviceIndex"]) == config.device]
    else:
        match = [d for d in outputs if str(config.device).lower() in
                 str(d["DeviceName"]).lower()]
    if not match:
        names = ", ".join(f"{int(d['DeviceIndex'])}: {d['DeviceName']}" for d in outputs)
        raise LookupError(f"no stereo output device matches audio.device "
                          f"{config.device!r} (PsychToolbox sees: {names or 'none'})")
    return int(match[0]["DeviceIndex"]), match[0]


class _Job:
    """One scheduled sound, shared with the audio callback."""

    __slots__ = ("audio", "when", "pos", "started_at")

    def __init__(self, audio: np.ndarray, when: float):
        self.audio, self.when = audio, when
        self.pos = 0
        self.started_at: float | None = None   # DAC time of the first sample (stream clock)


class SoundDeviceOutput(AudioOutput):
    """One ``sounddevice.OutputStream`` kept running; the clip is written into the block whose
    DAC time span holds the requested start, at the sample whose DAC time is the start."""

    backend = "sounddevice"

    def __init__(self, config: AudioConfig, *, pace: bool | None = None):
        super().__init__(config)
        import sounddevice as sd
        from . import headless
        self._job: _Job | None = None
        self._pending: np.ndarray | None = None
        self.pace = headless.null_device_in_use() if pace is None else bool(pace)
        self._due: float | None = None
        self.underflows = 0
        self.stream = sd.OutputStream(samplerate=self.sample_rate, channels=2, dtype="float32",
                                      device=config.device,
                                      latency="high" if self.latency_mode == 0 else "low",
                                      callback=self._callback)
        info = sd.query_devices(self.stream.device)
        self.device = str(info["name"])
        self._latency_s = float(self.stream.latency)
        self.stream.start()
        self._closed = False

    @property
    def min_lead_s(self) -> float:
        return self._latency_s + SCHEDULE_MARGIN_S

    @property
    def is_playing(self) -> bool:
        job = self._job
        return job is not None and job.pos < len(job.audio)

    def close(self) -> None:
        if not self._closed:
            self._job = None
            self.stream.stop()
            self.stream.close()
            self._closed = True

    def _clock(self) -> float:
        return self.stream.time

    def _load(self, audio: np.ndarray) -> None:
        self._pending = audio

    def _start(self, when_backend: float) -> None:
        self._job = _Job(self._pending, when_backend)   # one assignment: the callback sees
        # either the old job or the new one, never half of it

    def _reported_start(self) -> float | None:
        job = self._job
        return None if job is None else job.started_at

    def _stop(self) -> None:
        self._job = None

    def _output_latency_s(self) -> float:
        return self._latency_s

    def _callback(self, outdata, frames, time_info, status) -> None:
        if status.output_underflow:
            self.underflows += 1
        outdata.fill(0.0)
        job = self._job
        if job is not None and job.pos < len(job.audio):
            if job.started_at is None:
                dac = self._dac_time(time_info)
                first = int(round((job.when - dac) * self.sample_rate))
                if first < frames:   # the start falls in this block (or has passed: now)
                    first = max(first, 0)
                    job.started_at = dac + first / self.sample_rate
                    chunk = job.audio[:frames - first]
                    outdata[first:first + len(chunk)] = chunk
                    job.pos = len(chunk)
            else:
                chunk = job.audio[job.pos:job.pos + frames]
                outdata[:len(chunk)] = chunk
                job.pos += len(chunk)
        if self.pace:
            self._sleep_block(frames)

    def _dac_time(self, time_info) -> float:
        """The DAC time of this block's first sample on the stream's clock."""
        dac, now = time_info.outputBufferDacTime, time_info.currentTime
        if dac and now:
            return dac
        return self.stream.time + self._latency_s

    def _sleep_block(self, frames: int) -> None:
        # the null device takes a block at once: wait for its duration, like a card would
        now = time.perf_counter()
        due = self._due
        if due is None or due < now - 0.1:
            due = now
        due += frames / float(self.sample_rate)
        self._due = due
        if due > now:
            time.sleep(due - now)


def open_output(config: AudioConfig | dict | None = None, *, path=None) -> AudioOutput:
    """Open the output the config names.

    ``ptb`` or ``sounddevice``: that backend, or one :class:`DatasetError` naming
    ``audio.backend`` and why it cannot open. ``auto`` (the default): PsychToolbox where it
    opens, else sounddevice with a warning (logged, and one line on stderr).

    Call :func:`.headless.prepare_audio` first on a machine without a sound card.
    """
    if not isinstance(config, AudioConfig):
        config = read_audio_config(config, path)
    where = config.source
    if config.backend in ("ptb", AUTO):
        try:
            return PtbOutput(config)
        except Exception as err:  # ImportError, no device, device busy, PsychPortAudio error
            reason = f"{type(err).__name__}: {_first_line(err)}"
            if config.backend == "ptb":
                raise DatasetError(
                    f"audio.backend is ptb, but PsychToolbox audio cannot open ({reason}); "
                    f"choices: {', '.join(BACKENDS)}", path=where,
                    fix="install psychtoolbox, free the device (another program or a lower "
                        "audio.latency_mode), or set audio.backend: sounddevice") from err
            message = (f"audio.backend auto: PsychToolbox audio cannot open ({reason}); using "
                       f"sounddevice (no sample-accurate scheduled start of its own)")
            log.warning(message)
            print(f"warning: {message}", file=sys.stderr)
    try:
        return SoundDeviceOutput(config)
    except Exception as err:
        raise DatasetError(
            f"audio.backend is {config.backend}, but sounddevice cannot open an output "
            f"({type(err).__name__}: {_first_line(err)}); choices: {', '.join(BACKENDS)}",
            path=where, fix="check audio.device and that a sound card (or, headless, the ALSA "
                            "null device) is there") from err


def _first_line(err) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


_session_output: AudioOutput | None = None


def session_output(config: AudioConfig | dict | None = None, *, path=None) -> AudioOutput:
    """The process's audio output: the one opened here first (from ``config``, default: the
    defaults), kept open for the session. Experiments have one output device; players that
    are given no output use this one."""
    global _session_output
    if _session_output is None or getattr(_session_output, "_closed", False):
        _session_output = open_output(config, path=path)
    return _session_output


def close_session_output() -> None:
    """Close the process's audio output (end of a session or a test module)."""
    global _session_output
    if _session_output is not None:
        _session_output.close()
        _session_output = None


def describe(report: dict) -> str:
    """One line on a scheduled start, for logs."""
    return (f"{report['backend']} ({report['device']}, mode {report['latency_mode']}): "
            f"start error {report['schedule_error_ms']:.3f} ms, compensation "
            f"{report['latency_ms']:.1f} ms, predicted output latency "
            f"{report['output_latency_ms']:.1f} ms")


__all__ = ["AudioConfig", "AudioOutput", "PtbOutput", "SoundDeviceOutput", "BACKENDS",
           "read_audio_config", "open_output", "session_output", "close_session_output",
           "clock_offset", "describe"]
