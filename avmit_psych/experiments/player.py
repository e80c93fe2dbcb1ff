"""An audiovisual clip player for psychophysics: whole clip decoded first, frames as textures,
each frame held for its share of screen refreshes, audio scheduled to reach the ear with the
first frame (latency compensated), and every flip time recorded.

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
The clip's sound (stereo, resampled to the output's rate) goes through an
:class:`~avmit_psych.experiments.audio.AudioOutput` (PsychToolbox or sounddevice, from the
experiment config's ``audio:``). After the first frame is drawn the player fixes the time of
its flip, far enough ahead for the audio to be scheduled before it:
``first flip = now + max(one refresh, latency_ms - planned_offset_ms + output.min_lead_s)``
(paced flips: that time; vsync: the vertical blank at or after it, from
``win.getFutureFlipTime``), asks the output to start the sound at
``first flip + planned_offset_ms - latency_ms`` (PsychToolbox: ``start(when=...)``;
sounddevice: the clip's first sample written where the stream's DAC time is that time), then
waits and flips (paced: the flip is called early by the window's typical flip duration, known
from the window's previous playback, so a window's first playback lands ~1-3 ms late under
Xvfb; vsync: half a refresh before that blank). ``planned_offset_ms`` is 0 for AVMIT stimuli:
the file itself holds any audiovisual offset, so sound and first frame are to reach the
participant together.

Every playback reports what the backend measured: the start it reported against the start
requested (``audio_start_error_ms``), the first flip against its planned time
(``first_flip_error_ms``), the lead of the audio start over the planned flip
(``scheduled_lead_ms``, ~``latency_ms``), dropped frames (a first flip more than half a
refresh after its planned time counts as one: a missed vertical blank) and the SD of the flip
intervals. It is flagged ``timing_ok = False`` when a frame was dropped or the audio start
error exceeds the output's ``timing_tolerance_ms`` (default 2 ms). The first flip's error is
in ``av_onset_asynchrony_ms``. Under Xvfb flips are timed by the clock, not by a display, so
the flip figures there say how well the pacing kept time.

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

from ..dataset import schema

#: Refresh rate the player paces to when flips are not tied to a display refresh (Xvfb).
NOMINAL_REFRESH_HZ = 60.0
#: A measured "refresh rate" above this means flips are not waiting for vsync.
MAX_DISPLAY_REFRESH_HZ = 300.0
#: The default output rate (``audio.sample_rate``); clips are resampled to the output's rate.
AUDIO_RATE_HZ = 48_000
ANCHORS = ("center", "bottom-left", "bottom-right", "top-left", "top-right", "bottom-center",
           "top-center", "center-left", "center-right")

_measured_refresh: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
#: per window: the typical duration of a paced flip (s), so a first flip can be called early
_flip_cost: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


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
        scheduled refresh ``onset + ceil(k * refresh / fps) / refresh``; with audio the first
        frame too, when its flip came more than half a refresh after its planned time (a
        missed vertical blank: the sound, scheduled for that time, leads the picture).
    duration_s : last flip + one refresh - onset.
    refresh_hz : the refresh rate the schedule used; paced: whether flips were paced by the
        clock (no vsync).
    audio_start : the backend's reported time of the sound's first sample at the output
        (PsychToolbox's ``StartTime``; sounddevice: the DAC time of the sample); None without
        audio, or if it never started.
    audio_first_block : no longer measured (was: when PsychoPy's sounddevice callback first
        took samples); always None.
    early_keys : ``(time, value)`` for every flip after which ``check_keys`` returned
        something truthy.
    first_flip_planned : the time the first flip was planned for (the audio was scheduled
        against it); None without audio.
    planned_offset_ms : intended sound-at-the-ear minus first-flip time (0 for AVMIT clips).
    latency_ms : the audio latency compensated (the config's ``audio.latency_ms``, else 0).
    audio : the output's :meth:`~avmit_psych.experiments.audio.AudioOutput.report` (backend,
        device, latency_mode, requested_start, reported_start, schedule_error_ms,
        output_latency_ms ...); empty without audio.
    timing_tolerance_ms : the tolerance ``timing_ok`` used.
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
    first_flip_planned: float | None = None
    planned_offset_ms: float = 0.0
    latency_ms: float = 0.0
    audio: dict = field(default_factory=dict)
    timing_tolerance_ms: float = 2.0

    @property
    def av_onset_asynchrony_ms(self) -> float:
        """Estimated sound at the ear minus first-frame onset, in ms: the backend's reported
        audio start + ``latency_ms`` - onset (NaN without audio)."""
        if self.audio_start is None:
            return float("nan")
        return (self.audio_start + self.latency_ms / 1000.0 - self.onset) * 1000.0

    @property
    def audio_backend(self) -> str:
        return str(self.audio.get("backend", ""))

    @property
    def audio_start_error_ms(self) -> float:
        """The backend's reported start minus the requested start, in ms (NaN without
        audio)."""
        return float(self.audio.get("schedule_error_ms", float("nan")))

    @property
    def first_flip_error_ms(self) -> float:
        """The first flip's time minus its planned time, in ms (NaN without audio)."""
        if self.first_flip_planned is None:
            return float("nan")
        return (self.onset - self.first_flip_planned) * 1000.0

    @property
    def scheduled_lead_ms(self) -> float:
        """How much earlier than the planned first flip the audio started (the backend's
        reported start), in ms: ``latency_ms - planned_offset_ms`` when on time."""
        if self.audio_start is None or self.first_flip_planned is None:
            return float("nan")
        return (self.first_flip_planned - self.audio_start) * 1000.0

    @property
    def frame_interval_sd_ms(self) -> float:
        """SD of the intervals between successive flips, in ms (NaN with fewer than 3 flips)."""
        if len(self.flip_times) < 3:
            return float("nan")
        return float(np.std(np.diff(self.flip_times), ddof=1) * 1000.0)

    @property
    def timing_ok(self) -> bool:
        """No dropped frame (the first one included: see ``dropped_frames``) and, with audio,
        the backend's reported start within ``timing_tolerance_ms`` of the requested start
        (an audio that never started: False)."""
        if self.dropped_frames > 0:
            return False
        if not self.audio:
            return True
        error = self.audio_start_error_ms
        return math.isfinite(error) and abs(error) <= self.timing_tolerance_ms

    def to_row(self) -> dict:
        """The playback columns of a trial's data row (ms figures to 0.1 microsecond)."""
        return {"onset": self.onset, "dropped_frames": self.dropped_frames,
                "frames_shown": self.frames_shown,
                "av_onset_asynchrony_ms": self.av_onset_asynchrony_ms,
                "playback_s": self.duration_s,
                "planned_offset_ms": self.planned_offset_ms,
                "latency_ms": self.latency_ms,
                "scheduled_lead_ms": _ms(self.scheduled_lead_ms),
                "audio_start_error_ms": _ms(self.audio_start_error_ms),
                "frame_interval_sd_ms": _ms(self.frame_interval_sd_ms),
                "timing_ok": self.timing_ok,
                "audio_backend": self.audio_backend}


#: The playback columns every trial row carries, in :meth:`PlaybackReport.to_row` order, and
#: the audio-schedule timing columns among them (defined in the schema module).
PLAYBACK_COLUMNS, TIMING_COLUMNS = schema.PLAYBACK_COLUMNS, schema.TIMING_COLUMNS


def _ms(value: float) -> float:
    return round(value, 4) + 0.0 if math.isfinite(value) else value   # + 0.0: no "-0.0"


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


def refresh_and_pacing(win, refresh_hz: float | None = None,
                       pace_flips: bool | None = None) -> tuple[float, bool]:
    """The refresh rate a player schedules frames on and whether it paces flips by the clock:
    ``win.getActualFrameRate()`` and no pacing on a real display; 60 Hz and pacing when
    flips are not tied to a display (Xvfb). Given values are kept."""
    if refresh_hz is not None and pace_flips is not None:
        return float(refresh_hz), bool(pace_flips)
    measured = measured_refresh_hz(win)
    unthrottled = measured is None or measured > MAX_DISPLAY_REFRESH_HZ or _software_renderer()
    if pace_flips is None:
        pace_flips = unthrottled
    if refresh_hz is None:
        refresh_hz = NOMINAL_REFRESH_HZ if unthrottled else measured
    return float(refresh_hz), bool(pace_flips)


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
                 max_duration_s: float | None = None, interpolate: bool | None = None,
                 audio_output=None, planned_offset_ms: float = 0.0):
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
        self.output = None
        self.planned_offset_ms = float(planned_offset_ms)
        if clip.has_audio:
            self.output = audio_output if audio_output is not None else _session_output(source)
            audio = _stereo(clip.audio, source)[: int(round(n / self.fps * clip.sample_rate_hz))]
            rate = int(self.output.sample_rate)
            audio = np.clip(_resample(audio, int(clip.sample_rate_hz), rate), -1.0, 1.0)
            self.audio = np.ascontiguousarray(audio, dtype=np.float32)
            self.audio_rate_hz = rate

    # -- construction ------------------------------------------------------------------
    @classmethod
    def load(cls, win, path_or_clip, *, pos=None, anchor: str = "center", size=None,
             **kwargs) -> "AVPlayer":
        """Decode a clip whole (or take a decoded :class:`~avmit_psych.media.Clip`) and
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
        interpolate : linear texture filtering; default only when ``size`` is not native.
        audio_output : the :class:`~avmit_psych.experiments.audio.AudioOutput` to play the
            sound through (its rate is the rate the sound is resampled to); default: the
            session's (:func:`~avmit_psych.experiments.audio.session_output`).
        planned_offset_ms : intended sound-at-the-ear minus first-flip time (default 0: the
            clip's own audiovisual offset is in the file).
        """
        from ..media import Clip, read_clip
        if isinstance(path_or_clip, Clip):
            clip, source = path_or_clip, "clip"
        else:
            clip, source = read_clip(path_or_clip), str(path_or_clip)
        return cls(win, clip, source=source, pos=pos, anchor=anchor, size=size, **kwargs)

    def _timing(self, refresh_hz, pace_flips) -> tuple[float, bool]:
        return refresh_and_pacing(self.win, refresh_hz, pace_flips)

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
        has_audio = self._prepare_audio()
        n_refreshes = len(self.schedule)
        onset = first_planned = None
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
                    if has_audio:
                        first_planned = self._schedule_first_flip_and_audio()
                        self._wait_for_first_flip(first_planned)
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
        if self.pace_flips and len(flip_costs) > 1:
            _flip_cost[win] = _median_tail(flip_costs[1:])
        return self._report(onset, flip_times, flip_frames, flip_refreshes, early,
                            first_planned)

    def _prepare_audio(self) -> bool:
        """Load the clip's sound into the output (stopping what it was playing, e.g. this
        clip's last showing); False when the clip has no sound."""
        if self.output is None:
            return False
        self.output.load(self.audio, self.audio_rate_hz, owner=self)
        return True

    def _schedule_first_flip_and_audio(self) -> float:
        """Fix the first flip's time, far enough ahead to schedule the audio before it, and
        schedule the audio; returns the first flip's planned time (global clock). Called
        after the first frame is drawn, just before its flip."""
        from psychopy import core
        period = 1.0 / self.refresh_hz
        output = self.output
        lead = max(period, (output.latency_ms - self.planned_offset_ms) / 1000.0 +
                   output.min_lead_s)
        if self.pace_flips:
            t_flip = core.getTime() + lead
        else:  # the vertical blank at or after `lead` from now, as PsychoPy predicts it
            t_flip = self.win.getFutureFlipTime(targetTime=lead, clock=None)
        output.schedule(t_flip + self.planned_offset_ms / 1000.0)
        return t_flip

    def _wait_for_first_flip(self, t_flip: float) -> None:
        from psychopy import core
        if self.pace_flips:
            _wait_until(t_flip - _flip_cost.get(self.win, 0.0), core.getTime)
        else:  # a flip called within the refresh before the blank lands on that blank
            _wait_until(t_flip - 0.5 / self.refresh_hz, core.getTime)

    def _report(self, onset, flip_times, flip_frames, flip_refreshes, early, first_planned):
        period = 1.0 / self.refresh_hz
        n = self.frame_count
        audio = self.output.report() if first_planned is not None else {}
        # the first frame is late if its flip missed the (vertical blank) it was planned for
        first_late = first_planned is not None and onset - first_planned > period / 2
        return PlaybackReport(
            onset=onset, flip_times=flip_times, flip_frames=flip_frames,
            flip_refreshes=flip_refreshes, n_frames=n, frames_shown=len(set(flip_frames)),
            dropped_frames=count_dropped_frames(flip_frames, flip_times, n, self.fps,
                                                self.refresh_hz) + int(first_late),
            duration_s=flip_times[-1] + period - onset,
            refresh_hz=self.refresh_hz, paced=self.pace_flips,
            audio_start=audio.get("reported_start"), early_keys=early,
            first_flip_planned=first_planned, planned_offset_ms=self.planned_offset_ms,
            latency_ms=float(audio.get("latency_ms", 0.0)), audio=audio,
            timing_tolerance_ms=self.output.timing_tolerance_ms if self.output is not None
            else 2.0)

    def stop(self) -> None:
        """Stop the audio if this player's sound is still playing (or waiting to start)."""
        if self.output is not None:
            self.output.stop(owner=self)

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


def _session_output(source: str):
    from . import audio, headless
    try:
        return audio.session_output()
    except Exception as err:
        raise RuntimeError(
            f"{source}: cannot open an audio output for the clip's sound "
            f"({type(err).__name__}: {err}); {headless.headless_error_message()}") from err
