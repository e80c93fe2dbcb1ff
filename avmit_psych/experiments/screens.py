"""PsychoPy presenters: they draw, play and listen, nothing more (the logic is elsewhere).

:class:`HumanVsDnnScreen` presents the human-vs-DNN test (``human_vs_dnn.HumanVsDnnPresenter``)
and :class:`AnnotationScreen` the annotation task (``annotation.AnnotationIO``); the trials,
their data rows and the session loops are in :mod:`.human_vs_dnn` and :mod:`.annotation`.
:func:`prepare_devices` and :func:`open_window` get a session's sound and window ready.

PsychoPy is imported when a presenter is made, never when this module is imported.
Key presses of the simulated participant go through PsychoPy's own input path: they are
dispatched as pyglet ``on_key_press`` events to the window, whose handler files them in
PsychoPy's key buffer exactly as a keyboard would.
"""
from __future__ import annotations

from pathlib import Path

from ..dataset.schema import DatasetError
from .annotation import QUIT_KEY, RATING_KEYS, REPLAY_KEY
from .session import Aborted

_PYGLET_KEYS = {**{str(d): f"_{d}" for d in range(10)}, "space": "SPACE",
                "escape": "ESCAPE", "return": "RETURN", "left": "LEFT", "right": "RIGHT"}


def press(win, key: str) -> None:
    """Press ``key`` through the window's pyglet event handlers (PsychoPy's input path)."""
    from pyglet.window import key as pkey
    symbol = getattr(pkey, _PYGLET_KEYS.get(key, key.upper()))
    win.winHandle.dispatch_event("on_key_press", symbol, 0)


def mouse_down(win, x_pix: float, y_pix: float) -> None:
    """Move the mouse to window pixel coordinates (origin at the centre) and press the left
    button, as pyglet would: the pointer position, then an ``on_mouse_press`` event."""
    w, h = win.size
    px, py = int(x_pix + w / 2), int(y_pix + h / 2)
    win.winHandle._mouse_x, win.winHandle._mouse_y = px, py
    win.winHandle.dispatch_event("on_mouse_motion", px, py, 0, 0)
    win.winHandle.dispatch_event("on_mouse_press", px, py, 1, 0)


def mouse_up(win) -> None:
    """Release the left button where the pointer is."""
    handle = win.winHandle
    handle.dispatch_event("on_mouse_release", handle._mouse_x, handle._mouse_y, 1, 0)


class Screenshots:
    """Save what a participant sees (the back buffer, read before the flip) as PNG files."""

    def __init__(self, win, folder=None):
        self.win = win
        self.folder = Path(folder) if folder else None
        self.taken: set[str] = set()

    def want(self, name: str) -> bool:
        return self.folder is not None and name not in self.taken

    def take(self, name: str) -> None:
        if not self.want(name):
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        self.win.getMovieFrame(buffer="back")
        self.win.saveMovieFrames(str(self.folder / f"{name}.png"))
        self.taken.add(name)


class AnnotationScreen:
    """The annotation screen of the paper's Figure 1, implementing ``AnnotationIO``."""

    def __init__(self, win, *, fast: bool = False, simulator=None, true_ratings=None,
                 screenshots: Screenshots | None = None, video_bottom_left=(40, 40),
                 warning_s: float = 1.5, max_video_s: float | None = None):
        from psychopy import core, visual
        self.win, self.core = win, core
        self.fast = fast
        self.simulator = simulator
        self.true_ratings = true_ratings or {}
        self.shots = screenshots or Screenshots(win)
        w, h = win.size
        self.corner = (-w / 2 + video_bottom_left[0], -h / 2 + video_bottom_left[1])
        self.warning_s = 0.3 if fast else warning_s
        self.max_video_s = 0.5 if fast and max_video_s is None else max_video_s
        self.label = visual.TextStim(win, text="", pos=(0, h / 2 - 60), height=40,
                                     color="white", units="pix")
        self.counter = visual.TextStim(win, text="", pos=(w / 2 - 40, -h / 2 + 40), height=28,
                                       color="white", units="pix", alignText="right",
                                       anchorHoriz="right", anchorVert="bottom")
        self.warning_bg = visual.Rect(win, width=w, height=h, fillColor="darkred",
                                      lineColor=None, units="pix")
        self.warning = visual.TextStim(
            win, units="pix", height=44, color="white", wrapWidth=w * 0.8,
            text="Please do not press a key while the video is playing.\n\n"
                 "Wait until it has finished, then answer.")
        self.message = visual.TextStim(win, text="", units="pix", height=30, color="white",
                                       wrapWidth=w * 0.8)
        self._plan = None
        self._last_player = None

    # -- drawing helpers --
    def _frame(self, label: str, bonus_pence: int):
        self.label.text = label
        self.counter.text = f"Bonus: £{bonus_pence / 100:.2f}"

    def _draw_static(self):
        if self._last_player is not None:
            self._last_player.draw_frame(self._last_player.frame_count - 1)
        self.label.draw()
        self.counter.draw()

    # -- AnnotationIO --
    def play(self, video, *, label: str, bonus_pence: int) -> dict:
        from psychopy import event
        from .player import AVPlayer
        self._frame(label, bonus_pence)
        player = AVPlayer.load(self.win, video.path, pos=self.corner, anchor="bottom-left",
                               max_duration_s=self.max_video_s)
        self._last_player = player
        if self.simulator is not None and self._plan is None:
            self._plan = self.simulator.plan(self.true_ratings.get(video.filename))
        early_plan = list(self._plan["early"]) if self._plan else []
        self._plan and self._plan.__setitem__("early", [])  # early presses only on first play
        event.clearEvents()
        early_keys: list[str] = []
        n_frames = player.frame_count

        def drawn(k):
            self.label.draw()
            self.counter.draw()
            if k == n_frames // 2:
                self.shots.take("annotation_screen")

        def after_flip(k):
            if early_plan and k == max(1, n_frames // 3):
                press(self.win, early_plan.pop(0))
            early_keys.extend(event.getKeys(keyList=list(RATING_KEYS) + [REPLAY_KEY, QUIT_KEY]))

        report = player.play(on_frame_drawn=drawn, check_keys=after_flip)
        row = report.to_row()
        row["early_keys"] = early_keys
        row["ended_at"] = self.core.getTime()
        return row

    def show_early_warning(self) -> None:
        from psychopy import event
        start = self.core.getTime()
        while self.core.getTime() - start < self.warning_s:
            self.warning_bg.draw()
            self.warning.draw()
            self.shots.take("early_press_warning")
            self.win.flip()
        event.clearEvents()

    def wait_key(self, keys):
        from psychopy import event
        due = None
        if self._plan is not None:
            plan = self._plan
            if plan["replays"] > 0:
                plan["replays"] -= 1
                sim_key = REPLAY_KEY
            else:
                sim_key = str(plan["rating"])
                self._plan = None
            rt = plan["rts"].pop(0) if plan["rts"] else 0.5
            due = (self.core.getTime() + (0.05 if self.fast else rt), sim_key)
        while True:
            if due and self.core.getTime() >= due[0]:
                press(self.win, due[1])
                due = None
            got = event.getKeys(keyList=list(keys), timeStamped=True)
            if got:
                key, t = got[0]
                return key, t
            self._draw_static()
            self.win.flip()

    def show_feedback(self, text: str) -> None:
        self.show_message(text, wait=True)

    def show_message(self, text: str, *, wait: bool = True) -> None:
        from psychopy import event
        self.message.text = text + ("\n\nPress space to continue." if wait else "")
        event.clearEvents()
        start = self.core.getTime()
        while True:
            self.message.draw()
            self.win.flip()
            if not wait:
                return
            if self.simulator is not None and self.core.getTime() - start > (
                    0.05 if self.fast else 1.0):
                press(self.win, "space")
            keys = event.getKeys(keyList=["space", QUIT_KEY])
            if QUIT_KEY in keys:
                raise Aborted
            if keys:
                return


class HumanVsDnnScreen:
    """The human-vs-DNN test's screens, implementing ``human_vs_dnn.HumanVsDnnPresenter``:
    fixation and clip, the 4x4 grid of class buttons (mouse or keys, then OK) or the
    same/different keys, messages, and the headphone screen's trials.

    With an ``observer`` (``human_vs_dnn.SimulatedObserver`` or ``PsychometricObserver``) a
    simulated participant answers through PsychoPy's input path: key presses and mouse clicks
    dispatched to the window (the grid by mouse on even trials, by key on odd ones). ``fast``
    shortens the waits and plays only the first 0.5 s of each clip.
    """

    def __init__(self, win, task: str, *, fast: bool = False, observer=None,
                 screenshots: Screenshots | None = None):
        from psychopy import core, event, visual

        from .human_vs_dnn import answer_options, grid_positions
        self.win, self.core, self.event = win, core, event
        self.task, self.fast, self.observer = task, fast, observer
        self.max_clip_s = 0.5 if fast else None
        self.shots = screenshots or Screenshots(win)
        w, h = win.size
        self.fixation = visual.TextStim(win, text="+", height=50, units="pix", color="white")
        self.text = visual.TextStim(win, text="", height=30, units="pix", color="white",
                                    wrapWidth=w * 0.8)
        self.mouse = event.Mouse(win=win)
        bw, bh = min(w * 0.8, 900), min(h * 0.6, 420)
        self.positions = grid_positions(bw, bh, top_px=bh / 2 + 20)
        self.buttons = {}
        if task == "classify":
            for c, key in answer_options(task):
                x, y = self.positions[c]
                rect = visual.Rect(win, width=bw / 4 - 12, height=bh / 4 - 12, pos=(x, y),
                                   units="pix", fillColor=[-0.6, -0.6, -0.4], lineColor="white")
                label = visual.TextStim(win, text=f"{c}\n({key})", pos=(x, y),
                                        height=20, units="pix", color="white")
                self.buttons[c] = (rect, label)
        self.ok = visual.Rect(win, width=160, height=50, pos=(0, -h / 2 + 60), units="pix",
                              fillColor=[-0.2, 0.4, -0.2], lineColor="white")
        self.ok_label = visual.TextStim(win, text="OK (return)", pos=(0, -h / 2 + 60),
                                        height=22, units="pix", color="white")
        self.prompt = visual.TextStim(win, text="", pos=(0, h / 2 - 50), height=30,
                                      units="pix", color="white", wrapWidth=w * 0.9)

    def now(self) -> float:
        return self.core.getTime()

    def _wait(self, seconds):
        end = self.core.getTime() + (min(seconds, 0.05) if self.fast else seconds)
        while self.core.getTime() < end:
            yield

    def show_message(self, text: str, *, wait: bool = True) -> None:
        self.text.text = text + ("\n\nPress space to continue." if wait else "")
        self.event.clearEvents()
        start = self.core.getTime()
        while True:
            self.text.draw()
            self.win.flip()
            if not wait:
                return
            if self.observer and self.core.getTime() - start > (0.05 if self.fast else 1.0):
                press(self.win, "space")
            keys = self.event.getKeys(keyList=["space", QUIT_KEY])
            if QUIT_KEY in keys:
                raise Aborted
            if keys:
                return

    def play_headphone_trial(self, trial) -> tuple[str, float]:
        from psychopy import sound

        from . import headphones as HP
        rate = HP.HEADPHONE_SAMPLE_RATE_HZ
        audio = trial.audio(rate)
        tone = sound.Sound(value=audio, sampleRate=rate, stereo=True)
        self.text.text = HP.LISTEN[trial.test]
        self.text.draw()
        self.win.callOnFlip(tone.play)
        self.win.flip()
        for _ in self._wait(len(audio) / rate):
            self.text.draw()
            self.win.flip()
        tone.stop()
        self.text.text = HP.QUESTIONS[trial.test]
        self.event.clearEvents()
        start = self.core.getTime()
        due = start + (0.05 if self.fast else 0.8)
        while True:
            if self.observer and due and self.core.getTime() >= due:
                press(self.win, trial.answer)  # the simulated observer wears headphones
                due = None
            self.text.draw()
            self.shots.take("headphone_check" if trial.test == "woods" else "headphone_huggins")
            self.win.flip()
            keys = self.event.getKeys(keyList=["1", "2", "3", QUIT_KEY], timeStamped=True)
            if keys:
                if keys[0][0] == QUIT_KEY:
                    raise Aborted
                return keys[0][0], keys[0][1] - start

    def show_stimulus(self, trial) -> dict:
        from .player import AVPlayer
        for _ in self._wait(0.5):
            self.fixation.draw()
            self.win.flip()
        player = AVPlayer.load(self.win, trial.file, max_duration_s=self.max_clip_s)
        report = player.play()
        self.win.flip()
        return {**report.to_row(), "ended_at": self.core.getTime()}

    def collect_response(self, trial) -> tuple[str, float]:
        self.event.clearEvents()
        self.mouse.clickReset()
        start = self.core.getTime()
        planned = None
        if self.observer:
            planned = (self.observer.respond(self.task, trial.stimulus),
                       start + (0.05 if self.fast else self.observer.rt()))
        self.prompt.text = trial.prompt
        if self.task == "correspondence":
            return self._same_or_different(trial, planned)
        return self._class_grid(trial, planned)

    def _same_or_different(self, trial, planned) -> tuple[str, float]:
        keys_of = dict(trial.options)
        answer_of = {key: answer for answer, key in trial.options}
        while True:
            if planned and self.core.getTime() >= planned[1]:
                press(self.win, keys_of[planned[0]])
                planned = None
            self.prompt.draw()
            self.shots.take("correspondence_response")
            self.win.flip()
            keys = self.event.getKeys(keyList=list(answer_of) + [QUIT_KEY], timeStamped=True)
            if keys:
                if keys[0][0] == QUIT_KEY:
                    raise Aborted
                return answer_of[keys[0][0]], keys[0][1]

    def _class_grid(self, trial, planned) -> tuple[str, float]:
        keys_of = dict(trial.options)
        answer_of = {key: answer for answer, key in trial.options}
        chosen, step = None, 0
        while True:
            if planned and self.core.getTime() >= planned[1]:
                # the simulated observer answers with the mouse on even trials and with the
                # button's key on odd ones, then confirms (OK button / return)
                use_mouse = trial.position % 2 == 0
                if step == 0:
                    if use_mouse:
                        mouse_down(self.win, *self.positions[planned[0]])
                    else:
                        press(self.win, keys_of[planned[0]])
                    step, planned = 1, (planned[0], self.core.getTime() + 0.05)
                else:
                    if use_mouse:
                        mouse_down(self.win, *self.ok.pos)
                    else:
                        press(self.win, "return")
                    planned = None
            self.prompt.draw()
            for c, (rect, label) in self.buttons.items():
                rect.fillColor = [0.2, 0.2, 0.8] if c == chosen else [-0.6, -0.6, -0.4]
                rect.draw()
                label.draw()
            if chosen:
                self.ok.draw()
                self.ok_label.draw()
            self.shots.take("classify_response" if chosen is None else "classify_confirm")
            self.win.flip()
            for key, t in self.event.getKeys(keyList=list(answer_of) + ["return", QUIT_KEY],
                                             timeStamped=True):
                if key == QUIT_KEY:
                    raise Aborted
                if key == "return" and chosen:
                    return chosen, t
                if key in answer_of:
                    chosen = answer_of[key]
            if self.mouse.getPressed()[0]:
                for c, (rect, _) in self.buttons.items():
                    if self.mouse.isPressedIn(rect):
                        chosen = c
                if chosen and self.mouse.isPressedIn(self.ok):
                    if self.observer:
                        mouse_up(self.win)
                    return chosen, self.core.getTime()
                self.mouse.clickReset()
                while any(self.mouse.getPressed()):
                    if self.observer:
                        mouse_up(self.win)
                    self.win.flip()


def prepare_devices(audio_config, *, null_device: bool = False):
    """Get a session's sound and screen ready before its window opens: sound set up
    (:func:`.headless.prepare_audio`; with ``null_device`` a machine without a sound card gets
    the ALSA null device), a display checked (:class:`DatasetError` telling how to run under
    Xvfb otherwise), and the session's audio output opened from the config's ``audio:``
    mapping (:func:`.audio.read_audio_config`). Returns the output (its ``facts()`` go to the
    data file's sidecar)."""
    from . import audio, headless
    headless.prepare_audio(null_device=null_device)
    if not headless.display_available():
        raise DatasetError(headless.headless_error_message())
    return audio.session_output(audio_config)


def open_window(window: dict | None = None, *, windowed: bool = False, monitor: str | None = None):
    """The experiment window from a config's ``window:`` mapping (``size``, ``fullscr``,
    ``monitor``, ``color``; pixels, pyglet): full screen unless ``windowed``; ``monitor``
    overrides the config's PsychoPy monitor profile."""
    from psychopy import visual
    w = window or {}
    return visual.Window(size=w.get("size", [1280, 800]), units="pix", winType="pyglet",
                         fullscr=w.get("fullscr", True) and not windowed,
                         monitor=monitor or w.get("monitor", "testMonitor"),
                         color=w.get("color", [-1, -1, -1]), allowGUI=windowed)


def close_devices(win=None) -> None:
    """Close the window (if any) and the session's audio output."""
    from . import audio
    try:
        if win is not None:
            win.close()
    finally:
        audio.close_session_output()
