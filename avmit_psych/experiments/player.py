"""An audiovisual clip player for psychophysics: whole clip decoded first, frames as textures,
each frame held for its share of screen refreshes, audio started on the first frame's flip,
and every flip time recorded.

PsychoPy's own ``visual.MovieStim`` is not used: on PsychoPy 2025.2+ it keeps showing the first
frame while its clock runs (psychopy issue #7567; ../shared/recipes/headless-psychopy.md).

Timing model
------------
Refresh ``j`` (0 at the first flip, the *onset*) shows clip frame ``floor(j * fps / refresh)``,
so frame ``k`` is on screen from ``k / fps`` (rounded up to a refresh) and the clip takes
``ceil(n_frames * refresh / fps)`` refreshes: at 60 Hz a 30-fps clip holds every frame for 2
refreshes, a 25-fps clip alternates 3 and 2. Each flip's refresh index is measured from its
time, ``round((t - onset) * refresh)``; a flip that lands late moves the schedule on rather
than slowing the clip down, so a late or skipped frame is counted as *dropped*.

On a real display ``win.flip()`` waits for the vertical blank and the refresh rate comes from
``win.getActualFrameRate()``. Under Xvfb (no vsync) flips return at once, several hundred per
second: the player then paces flips with the clock to a nominal refresh (60 Hz unless
``refresh_hz`` is given), waiting before each flip until ``onset + j / refresh`` less the
typical duration of a flip (median of the last 9; ~1-2 ms under Xvfb), so that flips *return*
on the refresh grid.

Audio start
-----------
The clip's sound (stereo, resampled to ``audio_rate_hz``) is started by ``win.callOnFlip``:
PsychoPy calls ``sound.play()`` inside the first ``win.flip()``, right after the buffer swap
and the flip's time stamp, before returning. ``Sound.play(when=...)`` is not used with the
``sounddevice`` backend: it compares a ``time.monotonic()`` request with PortAudio's stream
clock (wall-clock epoch seconds on Linux/ALSA), so any ``when`` starts the sound at once
(measured: 0.15 ms after ``play(when=0.3)``). With the ``ptb`` backend the player instead asks
PsychToolbox to start the sound at the predicted time of the first flip
(``play(when=<flip time on the ptb clock>)``), PsychToolbox's scheduled start; that path is
checked here only with a stand-in sound, as PsychoPy's ptb backend refuses the ALSA null
device.

Times are on PsychoPy's global clock (``psychopy.core.getTime()``, the clock ``win.flip()``
returns), in seconds.
"""
from __future__ import annotations

import math
import time
import weakref
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np

#: Refresh rate the player paces to when flips are not tied to a display refresh (Xvfb).
NOMINAL_REFRESH_HZ = 60.0
#: A measured "refresh rate" above this means flips are not waiting for vsync.
MAX_DISPLAY_REFRESH_HZ = 300.0
#: Audio is resampled to this rate: PsychoPy's sounddevice backend opens one output stream
#: per sample rate, so one rate for every clip keeps a single stream.
AUDIO_RATE_HZ = 48_000
ANCHORS = ("center", "bottom-left", "bottom-right", "top-left", "top-right", "bottom-center",
           "top-center", "center-left", "center-right")

_measured_refresh: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


@dataclass
class PlaybackReport:
    """What one playback did; times on PsychoPy's global clock (s).

    onset : time of the first flip (the first frame's onset).
    flip_times : every flip's time, in order.
    flip_frames : the clip frame shown by each flip.
    flip_refreshes : each flip's refresh index, ``round((t - onset) * refresh_hz)``.
    n_frames : frames the playback was to show (the clip, or its first ``max_duration_s``).
    frames_shown : distinct clip frames that were shown.
    dropped_frames : frames never shown, or first shown more than half a refresh after their
        scheduled refresh ``onset + ceil(k * refresh / fps) / refresh``.
    duration_s : last flip + one refresh - onset.
    refresh_hz : the refresh rate the schedule used; paced: whether flips were paced by the
        clock (no vsync).
    audio_start : time the audio start was issued (``sound.play()`` called, or, with a
        scheduled start, the time it was scheduled for); None without audio.
    audio_first_block : time the audio callback first took samples of this clip
        (sounddevice backend only, else None); the samples reach the loudspeaker one output
        latency later.
    early_keys : ``(time, value)`` for every flip after which ``check_keys`` returned
        something truthy.
    """

    onset: float
    flip_times: list[float]
    flip_frames: list[int]
    flip_refreshes: list[int]
    n_frames: int
    frames_shown: int
    dropped_frames: int
    duration_s: float
    refresh_hz: float
    paced: bool
    audio_start: float | None = None
    audio_first_block: float | None = None
    early_keys: list[tuple[float, object]] = field(default_factory=list)

    @property
    def av_onset_asynchrony_ms(self) -> float:
        """Audio start minus first-frame onset, in ms (NaN without audio)."""
        if self.audio_start is None:
            return float("nan")
        return (self.audio_start - self.onset) * 1000.0

    def to_row(self) -> dict:
        """The playback columns of a trial's data row."""
        return {"onset": self.onset, "dropped_frames": self.dropped_frames,
                "frames_shown": self.frames_shown,
                "av_onset_asynchrony_ms": self.av_onset_asynchrony_ms,
                "playback_s": self.duration_s}


def frame_schedule(n_frames: int, fps, refresh_hz: float) -> np.ndarray:
    """The clip frame shown at each refresh: ``floor(j * fps / refresh_hz)`` for
    ``j < ceil(n_frames * refresh_hz / fps)`` (times measured from the onset)."""
    fps = float(fps)
    n_refreshes = max(1, math.ceil(n_frames * refresh_hz / fps - 1e-9))
    frames = np.floor(np.arange(n_refreshes) * fps / refresh_hz + 1e-9).astype(int)
    return np.minimum(frames, n_frames - 1)


def count_dropped_frames(flip_frames, flip_times, n_frames: int, fps,
                         refresh_hz: float) -> int:
    """Frames never shown, or first shown more than half a refresh after their due time
    ``onset + ceil(k * refresh_hz / fps) / refresh_hz`` (onset: the first flip)."""
    period = 1.0 / refresh_hz
    onset = flip_times[0]
    first_shown: dict[int, float] = {}
    for k, t in zip(flip_frames, flip_times):
        first_shown.setdefault(int(k), t)
    dropped = 0
    for k in range(n_frames):
        due = onset + math.ceil(k * refresh_hz / float(fps) - 1e-9) * period
        if k not in first_shown or first_shown[k] - due > period / 2:
            dropped += 1
    return dropped


def measured_refresh_hz(win) -> float | None:
    """``win.getActualFrameRate()``, measured once per window (None if it was unstable)."""
    if win not in _measured_refresh:
        _measured_refresh[win] = win.getActualFrameRate()
    return _measured_refresh[win]


def _resample(audio: np.ndarray, rate_from: int, rate_to: int) -> np.ndarray:
    if rate_from == rate_to:
        return audio
    from scipy.signal import resample_poly
    g = math.gcd(int(rate_from), int(rate_to))
    return resample_poly(audio, rate_to // g, rate_from // g, axis=0)


def _stereo(audio: np.ndarray, source: str) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim == 1:
        audio = audio[:, None]
    if audio.shape[1] == 1:
        return np.repeat(audio, 2, axis=1)
    if audio.shape[1] == 2:
        return audio
    raise ValueError(f"{source}: audio has {audio.shape[1]} channels; the player plays mono "
                     "or stereo (downmix the clip to stereo first)")


class _FrameTextures:
    """One uint8 RGB OpenGL texture per clip frame, shown through a single ImageStim.

    ImageStim draws the texture named by its image's ``colorTexture`` (the hook PsychoPy's
    movie and camera stimuli use); switching frames changes that name. Uploading uint8 avoids
    the float32 -1..1 copy PsychoPy makes of numpy images (4 x the memory, slower).
    """

    def __init__(self, frames: np.ndarray, *, interpolate: bool):
        from pyglet import gl as GL
        n, h, w, _ = frames.shape
        self.ids = (GL.GLuint * n)()
        GL.glGenTextures(n, self.ids)
        GL.glPixelStorei(GL.GL_UNPACK_ALIGNMENT, 1)
        filt = GL.GL_LINEAR if interpolate else GL.GL_NEAREST
        for i in range(n):
            frame = np.ascontiguousarray(frames[i], dtype=np.uint8)
            GL.glBindTexture(GL.GL_TEXTURE_2D, self.ids[i])
            GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_MIN_FILTER, filt)
            GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_MAG_FILTER, filt)
            GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_WRAP_S, GL.GL_CLAMP_TO_EDGE)
            GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_WRAP_T, GL.GL_CLAMP_TO_EDGE)
            GL.glTexImage2D(GL.GL_TEXTURE_2D, 0, GL.GL_RGB8, w, h, 0, GL.GL_RGB,
                            GL.GL_UNSIGNED_BYTE, frame.ctypes.data)
        GL.glBindTexture(GL.GL_TEXTURE_2D, 0)
        self.current = 0

    @property
    def colorTexture(self):  # noqa: N802 (PsychoPy's name)
        return self.ids[self.current]

    @staticmethod
    def delete(ids, stim, own_tex_id) -> None:
        """Free the textures in their window's GL context (nothing to do once the window is
        closed: its context took them along). The ImageStim gets its own texture name back
        first, so its clean-up does not delete a name OpenGL may have handed out again."""
        stim._texID = own_tex_id
        if getattr(stim.win, "_closed", False):
            return
        from pyglet import gl as GL
        stim.win._setCurrent()
        stim.image = None
        GL.glDeleteTextures(len(ids), ids)


class AVPlayer:
    """Plays one decoded clip in a PsychoPy window; make it with :meth:`load`."""

    def __init__(self, win, clip, *, source: str = "clip", pos=None, anchor: str = "center",
                 size=None, refresh_hz: float | None = None, pace_flips: bool | None = None,
                 max_duration_s: float | None = None, audio_rate_hz: int | None = AUDIO_RATE_HZ,
                 interpolate: bool | None = None, sound_backend_kwargs: dict | None = None):
        from psychopy import visual
        if anchor not in ANCHORS:
            raise ValueError(f"anchor must be one of {', '.join(ANCHORS)}, not {anchor!r}")
        self.win = win
        self.source = source
        self.fps = Fraction(clip.fps)
        frames = clip.frames
        if frames.ndim != 4 or frames.shape[3] != 3 or len(frames) == 0:
            raise ValueError(f"{source}: frames must be (n, height, width, 3) RGB, "
                             f"got shape {frames.shape}")
        n = len(frames)
        if max_duration_s is not None:
            n = max(1, min(n, math.ceil(max_duration_s * self.fps - 1e-9)))
            frames = frames[:n]
        self.frames = frames
        height, width = frames.shape[1:3]
        self.native_size = (width, height)
        if size is None:
            size = self.native_size
        size = (float(size[0]), float(size[1]))
        if pos is None:
            pos = (0.0, 0.0) if anchor == "center" else _corner(win, anchor)
        if interpolate is None:
            interpolate = tuple(size) != tuple(map(float, self.native_size))
        self.refresh_hz, self.pace_flips = self._timing(refresh_hz, pace_flips)
        self.schedule = frame_schedule(n, self.fps, self.refresh_hz)

        win._setCurrent()
        t0 = time.perf_counter()
        self._textures = _FrameTextures(frames, interpolate=interpolate)
        self.stim = visual.ImageStim(win, image=None, units="pix", pos=pos, size=size,
                                     anchor=anchor, interpolate=interpolate,
                                     name=f"AVPlayer:{Path(source).name}", autoLog=False)
        own_tex_id = self.stim._texID
        self.stim.image = self._textures
        self._finalizer = weakref.finalize(self, _FrameTextures.delete, self._textures.ids,
                                           self.stim, own_tex_id)
        self._finalizer.atexit = False  # at exit the GL context goes anyway
        # draw every frame once (then clear) so the driver has really uploaded the textures
        for k in range(n):
            self.draw_frame(k)
        win.clearBuffer()
        from pyglet import gl as GL
        GL.glFinish()
        self.upload_s = time.perf_counter() - t0

        self.audio = None
        self.sound = None
        if clip.has_audio:
            audio = _stereo(clip.audio, source)[: int(round(n / self.fps * clip.sample_rate_hz))]
            rate = int(audio_rate_hz or clip.sample_rate_hz)
            audio = np.clip(_resample(audio, int(clip.sample_rate_hz), rate), -1.0, 1.0)
            self.audio, self.audio_rate_hz = audio, rate
            self.sound = _make_sound(audio, rate, source, **(sound_backend_kwargs or {}))
        self._first_block: list[float] = []
        if self.sound is not None and hasattr(self.sound, "_nextBlock"):
            self._wrap_first_block()

    # -- construction ------------------------------------------------------------------
    @classmethod
    def load(cls, win, path_or_clip, *, pos=None, anchor: str = "center", size=None,
             **kwargs) -> "AVPlayer":
        """Decode a clip whole (or take a decoded :class:`~avmit_psych.stimuli.io.Clip`) and
        prepare it for playback in ``win``.

        Parameters
        ----------
        win : psychopy.visual.Window.
        path_or_clip : a video file (any container ffmpeg reads) or a ``Clip``.
        pos : where the ``anchor`` point of the video goes, in pixels from the window centre
            (PsychoPy 'pix' units whatever the window's units). Default: the window centre for
            ``anchor='center'``, else the window's matching corner.
        anchor : which point of the video ``pos`` places: 'center', 'bottom-left' (the
            annotation screen: left and bottom edges fixed whatever the video's size), ...
        size : (width, height) in pixels; default the clip's native size (no resampling).
        refresh_hz : refresh rate to schedule frames on; default ``win.getActualFrameRate()``,
            or 60 Hz when that shows flips are not tied to a display (Xvfb).
        pace_flips : pace flips with the clock; default: when flips are not tied to a display.
        max_duration_s : play only the first frames up to this duration (and their audio).
        audio_rate_hz : rate the audio is resampled to (default 48 kHz); None keeps the clip's.
        interpolate : linear texture filtering; default only when ``size`` is not native.
        sound_backend_kwargs : extra keyword arguments for ``psychopy.sound.Sound``.
        """
        from ..stimuli.io import Clip, read_clip
        if isinstance(path_or_clip, Clip):
            clip, source = path_or_clip, "clip"
        else:
            clip, source = read_clip(path_or_clip), str(path_or_clip)
        return cls(win, clip, source=source, pos=pos, anchor=anchor, size=size, **kwargs)

    def _timing(self, refresh_hz, pace_flips) -> tuple[float, bool]:
        if refresh_hz is not None and pace_flips is not None:
            return float(refresh_hz), bool(pace_flips)
        measured = measured_refresh_hz(self.win)
        unthrottled = measured is None or measured > MAX_DISPLAY_REFRESH_HZ or \
            _software_renderer()
        if pace_flips is None:
            pace_flips = unthrottled
        if refresh_hz is None:
            refresh_hz = NOMINAL_REFRESH_HZ if unthrottled else measured
        return float(refresh_hz), bool(pace_flips)

    def _wrap_first_block(self) -> None:
        # the sounddevice backend's callback pulls each block through sound._nextBlock
        from psychopy import core
        original, first = self.sound._nextBlock, self._first_block

        def next_block(*args, **kwargs):
            if not first:
                first.append(core.getTime())
            return original(*args, **kwargs)

        self.sound._nextBlock = next_block

    # -- drawing -----------------------------------------------------------------------
    @property
    def frame_count(self) -> int:
        """Frames this player shows (the clip's, or its first ``max_duration_s``)."""
        return len(self.frames)

    @property
    def duration_s(self) -> float:
        return self.frame_count / float(self.fps)

    def draw_frame(self, k: int) -> None:
        """Draw frame ``k`` into the back buffer (no flip), e.g. the last frame after play."""
        if not 0 <= k < self.frame_count:
            raise IndexError(f"{self.source}: frame {k} out of range 0..{self.frame_count - 1}")
        if self._textures.current != k:
            self._textures.current = k
            self.stim._needUpdate = True  # legacy GL bakes the texture into a display list
        self.stim.draw()

    # -- playback ----------------------------------------------------------------------
    def play(self, *, on_frame_drawn: Callable[[int], object] | None = None,
             on_flip: Callable[[int, float], object] | None = None,
             check_keys: Callable[[int], object] | None = None) -> PlaybackReport:
        """Play the clip from its first frame; returns when its last refresh has been flipped
        (the last frame stays on screen until the caller flips again; a last frame skipped by
        a late flip is shown once more, and counted as dropped).

        Parameters
        ----------
        on_frame_drawn : ``f(k)`` after frame ``k`` is drawn and before the flip, every
            refresh: draw more stimuli here, or read the back buffer
            (``win.getMovieFrame(buffer='back')``) for a screenshot.
        on_flip : ``f(k, t)`` right after each flip, with the flip time.
        check_keys : ``f(k)`` after each flip (after ``on_flip``); a truthy result is kept in
            ``early_keys`` with its time and playback carries on.
        """
        from psychopy import core
        win, period = self.win, 1.0 / self.refresh_hz
        flip_times: list[float] = []
        flip_frames: list[int] = []
        flip_refreshes: list[int] = []
        early: list[tuple[float, object]] = []
        self._first_block.clear()
        audio_start: list[float] = []
        audio_mode = self._prepare_audio()
        n_refreshes = len(self.schedule)
        onset = None
        flip_costs: list[float] = []
        j = 0
        last = self.frame_count - 1
        # past the schedule's end only if a late flip skipped the last frame: show it once
        try:
            while j < n_refreshes or flip_frames[-1] != last:
                k = int(self.schedule[j]) if j < n_refreshes else last
                self.draw_frame(k)
                if on_frame_drawn is not None:
                    on_frame_drawn(k)
                if onset is None:
                    if audio_mode == "on_flip":
                        win.callOnFlip(self._start_audio, audio_start)
                    elif audio_mode == "scheduled":
                        t_first = self._schedule_audio_start(audio_start)
                        if self.pace_flips:
                            _wait_until(t_first, core.getTime)
                elif self.pace_flips:
                    # the flip is called early by the typical time a flip takes, so that it
                    # *returns* (is time-stamped) on the refresh grid
                    _wait_until(onset + j * period - _median_tail(flip_costs), core.getTime)
                t_call = core.getTime()
                t = win.flip()
                if t is None:  # waitBlanking=False windows return None
                    t = core.getTime()
                if onset is None:
                    onset = t
                    # the first flip after loading can be slow: a capped first estimate
                    flip_costs.append(min(t - t_call, period / 4))
                else:
                    flip_costs.append(t - t_call)
                landed = int(round((t - onset) * self.refresh_hz))
                flip_times.append(t)
                flip_frames.append(k)
                flip_refreshes.append(landed)
                if on_flip is not None:
                    on_flip(k, t)
                if check_keys is not None:
                    got = check_keys(k)
                    if got:
                        early.append((core.getTime(), got))
                j = max(j, landed) + 1
        except BaseException:
            self.stop()  # e.g. the participant quit from a hook: no sound left playing
            raise
        return self._report(onset, flip_times, flip_frames, flip_refreshes, early,
                            audio_start[0] if audio_start else None)

    def _start_audio(self, audio_start: list) -> None:
        from psychopy import core
        audio_start.append(core.getTime())
        self.sound.play()

    def _prepare_audio(self) -> str | None:
        """Stop a sound left playing (a replay); return how the audio will start:
        "scheduled" (ptb backend), "on_flip" (any other backend) or None (no audio)."""
        if self.sound is None:
            return None
        if getattr(self.sound, "isPlaying", False):
            self.sound.stop()
        return "scheduled" if type(self.sound).__module__.endswith("backend_ptb") else "on_flip"

    def _schedule_audio_start(self, audio_start: list) -> float:
        """Ask PsychToolbox to start the sound at the first flip's time; returns that time
        (global clock). Called after the first frame is drawn, just before its flip."""
        from psychopy import core, logging
        if self.pace_flips:  # the paced first flip is made to happen one refresh from now
            t_flip = core.getTime() + 1.0 / self.refresh_hz
        else:  # the next vertical blank, as PsychoPy predicts it
            t_flip = self.win.getFutureFlipTime(clock=None)
        self.sound.play(when=t_flip + logging.defaultClock.getLastResetTime())
        audio_start.append(t_flip)
        return t_flip

    def _report(self, onset, flip_times, flip_frames, flip_refreshes, early, audio_start):
        period = 1.0 / self.refresh_hz
        n = self.frame_count
        return PlaybackReport(
            onset=onset, flip_times=flip_times, flip_frames=flip_frames,
            flip_refreshes=flip_refreshes, n_frames=n, frames_shown=len(set(flip_frames)),
            dropped_frames=count_dropped_frames(flip_frames, flip_times, n, self.fps,
                                                self.refresh_hz),
            duration_s=flip_times[-1] + period - onset,
            refresh_hz=self.refresh_hz, paced=self.pace_flips, audio_start=audio_start,
            audio_first_block=self._first_block[0] if self._first_block else None,
            early_keys=early)

    def stop(self) -> None:
        """Stop the audio if it is still playing."""
        if self.sound is not None and getattr(self.sound, "isPlaying", False):
            self.sound.stop()

    def close(self) -> None:
        """Stop the audio and free the textures (also done when the player is collected)."""
        self.stop()
        self._finalizer()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _software_renderer() -> bool:
    """Mesa's software rasterisers (Xvfb) have no vertical sync, whatever rate flips reach."""
    try:
        from pyglet.gl import gl_info
        renderer = (gl_info.get_renderer() or "").lower()
    except Exception:  # no GL context information: assume a real display
        return False
    return any(name in renderer for name in ("llvmpipe", "softpipe", "swrast"))


def _corner(win, anchor: str) -> tuple[float, float]:
    w, h = win.size
    x = -w / 2 if "left" in anchor else (w / 2 if "right" in anchor else 0.0)
    y = -h / 2 if "bottom" in anchor else (h / 2 if "top" in anchor else 0.0)
    return (x, y)


def _median_tail(values: list[float], n: int = 9) -> float:
    return float(np.median(values[-n:])) if values else 0.0


def _wait_until(t_target: float, clock: Callable[[], float]) -> None:
    """Sleep until 2 ms before ``t_target``, then spin (sleep overshoots by up to ~1 ms)."""
    while True:
        left = t_target - clock()
        if left <= 0:
            return
        if left > 0.002:
            time.sleep(left - 0.002)


def _make_sound(audio: np.ndarray, rate: int, source: str, **kwargs):
    from psychopy import sound
    from . import headless
    try:
        return sound.Sound(audio, sampleRate=rate, stereo=True, hamming=False,
                           name=f"AVPlayer:{Path(source).name}", **kwargs)
    except Exception as err:
        raise RuntimeError(
            f"{source}: cannot make the clip's sound ({type(err).__name__}: {err}); "
            f"is there an audio output device? {headless.headless_error_message()}") from err
