"""PsychoPy presenters: they draw, play and listen, nothing more (the logic is elsewhere).

PsychoPy is imported when a presenter is made, never when this module is imported.
Key presses of the simulated participant go through PsychoPy's own input path: they are
dispatched as pyglet ``on_key_press`` events to the window, whose handler files them in
PsychoPy's key buffer exactly as a keyboard would.
"""
from __future__ import annotations

from pathlib import Path

from .annotation import QUIT_KEY, RATING_KEYS, REPLAY_KEY

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
                from .annotation import Aborted
                raise Aborted
            if keys:
                return
