"""Running PsychoPy without a display or a sound card (tests, CI, a server).

A window needs an X display: run under a virtual one,
``xvfb-run -a -s "-screen 0 1280x800x24" python ...``. There flips are not tied to a refresh
(no vsync), so :mod:`.player` paces them with a clock.

Sound needs an output device. With no sound card PortAudio finds none; an ALSA *null* device
(it accepts and discards audio) gives it one. What was checked on Debian 12 (alsa-lib 1.2.8,
PortAudio through ``sounddevice`` 0.5.6, no ``/proc/asound``):

- ``ALSA_CONFIG_PATH="/usr/share/alsa/alsa.conf:<private file>"`` works: ALSA reads every file
  of the colon-separated list, so the system configuration (and with it ``~/.asoundrc``) is
  still loaded and the private file only adds the null device and makes it the default. This
  is what :func:`ensure_alsa_null_device` does; it touches no file outside its own.
- ``ALSA_CONFIG_PATH="<private file>"`` alone also works (the ``null`` and ``plug`` plugins
  are built into alsa-lib) but drops the whole system configuration; used only when no system
  ``alsa.conf`` is found.
- ``$HOME/.asoundrc`` or ``$XDG_CONFIG_HOME/alsa/asoundrc`` holding the same text work too,
  but change ALSA for every program of the user, so they are left to the user.
- ALSA reads its configuration when PortAudio starts (on ``import sounddevice``). Set it up
  before that; if ``sounddevice`` was already imported with no output device, PortAudio is
  restarted so it sees the new one.

The null device consumes audio as fast as it is given, not in real time: a sound "plays" in
milliseconds, and PsychoPy's ``sounddevice`` output stream calls its Python callback flat out
(measured: ~335,000 calls/s, one CPU core, and the GIL taken each time) for as long as it is
open. On a 2-core machine that was enough to make paced flips miss refreshes.
:func:`pace_null_audio_streams` makes the callback sleep for the duration of each block, as a
sound card would make it wait: sounds then last their real duration and the stream costs
almost nothing. :func:`close_sound_streams` closes the streams.

Sound backends. The clips' sound goes through :mod:`.audio` (the config's ``audio.backend``),
which drives PsychToolbox (``psychtoolbox.audio.Stream``) or sounddevice itself; both open the
null device for real (checked with psychtoolbox 3.0.22.2, PortAudio 19.7: PsychToolbox reports
its scheduled ``StartTime``; on the null device its engine is set to stop after each sound, or
it would spin a core). PsychoPy's own ``sound.Sound`` (used for sounds that need no schedule)
is set by :func:`configure_psychopy_audio` before ``psychopy.sound`` is used: ``sounddevice``,
because PsychoPy's ``ptb`` backend refuses the null device ("Number of columns of audio data
matrix doesn't match number of output channels": it opens the device's 128 channels).
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

#: The ALSA null device: a plug in front of ``null``, stereo at 48 kHz.
ALSA_NULL_CONFIG = """\
pcm.nullout { type null }
pcm.!default { type plug slave { pcm "nullout" channels 2 rate 48000 } }
"""
#: Where alsa-lib keeps its main configuration file on common systems.
SYSTEM_ALSA_CONF_CANDIDATES = ("/usr/share/alsa/alsa.conf", "/usr/local/share/alsa/alsa.conf")
XVFB_COMMAND = 'xvfb-run -a -s "-screen 0 1280x800x24"'

_null_device_config: Path | None = None  # set once this process uses the null device


def alsa_null_config_text() -> str:
    """The ALSA configuration that defines a null output device and makes it the default."""
    return ALSA_NULL_CONFIG


def sound_card_present(cards_file="/proc/asound/cards") -> bool:
    """Whether the kernel lists at least one ALSA sound card (a line like `` 0 [PCH ...``)."""
    try:
        text = Path(cards_file).read_text(errors="replace")
    except OSError:
        return False
    return re.search(r"^\s*\d+\s*\[", text, re.MULTILINE) is not None


def _system_alsa_conf() -> str | None:
    candidates = []
    if os.environ.get("ALSA_CONFIG_DIR"):
        candidates.append(os.path.join(os.environ["ALSA_CONFIG_DIR"], "alsa.conf"))
    candidates += SYSTEM_ALSA_CONF_CANDIDATES
    return next((c for c in candidates if os.path.isfile(c)), None)


def _default_config_file() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "avmit_psych" / "alsa-null.conf"


def ensure_alsa_null_device(config_file=None, *, force: bool = False) -> Path | None:
    """Give PortAudio an output device on a machine without a sound card.

    When no card is listed in ``/proc/asound/cards`` (or ``force``), write
    :func:`alsa_null_config_text` to ``config_file`` (default
    ``~/.cache/avmit_psych/alsa-null.conf``) and add it after the system ``alsa.conf`` in
    ``ALSA_CONFIG_PATH`` for this process and its children. If ``sounddevice`` is already
    imported and sees no output device, PortAudio is restarted to read the new configuration.

    Do not call this on a lab machine: there a missing card must be an error, not silence.

    Returns
    -------
    The configuration file used, or None when a sound card is present (nothing changed).
    """
    if not force and sound_card_present():
        return None
    path = Path(config_file) if config_file else _default_config_file()
    text = alsa_null_config_text()
    if not path.exists() or path.read_text() != text:
        from .._atomic import atomic_path
        with atomic_path(path) as tmp:
            tmp.write_text(text)
    current = os.environ.get("ALSA_CONFIG_PATH", "")
    if str(path) not in current.split(":"):
        base = current or _system_alsa_conf()
        os.environ["ALSA_CONFIG_PATH"] = f"{base}:{path}" if base else str(path)
        _restart_portaudio_if_deviceless()
    global _null_device_config
    _null_device_config = path
    return path


def null_device_in_use() -> bool:
    """Whether :func:`ensure_alsa_null_device` set up the null device in this process."""
    return _null_device_config is not None


def _restart_portaudio_if_deviceless() -> None:
    sd = sys.modules.get("sounddevice")
    if sd is None or _has_output_device(sd):
        return
    # PortAudio read ALSA's configuration when sounddevice was imported; with no device found
    # there is no stream to lose, so a restart is safe (these functions are sounddevice's own
    # import-time and exit-time hooks).
    if hasattr(sd, "_terminate") and hasattr(sd, "_initialize"):
        sd._terminate()
        sd._initialize()


def _has_output_device(sd) -> bool:
    try:
        return any(d["max_output_channels"] > 0 for d in sd.query_devices())
    except Exception:
        return False


def audio_output_available() -> bool:
    """Whether PortAudio (``sounddevice``) sees an output device; imports sounddevice."""
    try:
        import sounddevice as sd
    except (ImportError, OSError):
        return False
    return _has_output_device(sd)


def display_available() -> bool:
    """Whether a window can be opened: an X display (``DISPLAY``) or Wayland on Linux; always
    assumed on Windows and macOS."""
    if not sys.platform.startswith("linux"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def headless_error_message() -> str:
    """One sentence telling the user how to run without a display or sound card."""
    return (f"No display found (DISPLAY is not set): run under a virtual screen with "
            f"`{XVFB_COMMAND} <your command>`, and on a machine without a sound card give "
            f"PortAudio an ALSA null device first (avmit_psych.experiments.headless."
            f"ensure_alsa_null_device(), or put these two lines in ~/.asoundrc: "
            f"{' '.join(ALSA_NULL_CONFIG.split())}).")


def configure_psychopy_audio(lib: str = "sounddevice") -> None:
    """Make PsychoPy's ``sound.Sound`` use ``lib`` ('sounddevice' by default; a lab machine
    passes 'ptb'). Call before ``psychopy.sound`` is imported or any Sound is made.

    With 'sounddevice' on the null device set up by :func:`ensure_alsa_null_device`, also
    :func:`pace_null_audio_streams`.
    """
    from psychopy import prefs
    prefs.hardware["audioLib"] = [lib]
    snd = sys.modules.get("psychopy.sound")
    if snd is not None and hasattr(getattr(snd, "Sound", None), "backend"):
        snd.Sound.backend = None  # resolve from prefs again when the next Sound is made
    if lib == "sounddevice" and null_device_in_use():
        pace_null_audio_streams()


def close_sound_streams() -> int:
    """Stop and close PsychoPy's ``sounddevice`` output streams; returns how many.

    Each stream runs an audio callback for as long as it is open. The next Sound made opens a
    new stream; Sounds made before cannot play any more, and sounds still playing are cut off
    (for the end of a session or a test module).
    """
    backend = sys.modules.get("psychopy.sound.backend_sounddevice")
    if backend is None:
        return 0
    labels = list(backend.streams)
    for label in labels:
        _close_stream(backend.streams.pop(label))
    return len(labels)


def _close_stream(stream) -> None:
    sd_stream = getattr(stream, "_sdStream", None)
    if sd_stream is not None:
        sd_stream.stop()
        sd_stream.close()
        del stream._sdStream  # PsychoPy's own clean-up at exit checks for it


def pace_null_audio_streams() -> None:
    """Make PsychoPy's ``sounddevice`` output streams consume audio in real time on the ALSA
    null device: after each block the callback sleeps until the block would have been played
    (``blocksize / sample rate`` later, on a running schedule).

    Only for a machine without a sound card (sleeping in the callback of a real device would
    make it underrun). Streams already open are reopened paced, under the same names, so
    Sounds made before keep working. Imports ``psychopy.sound`` (and so PortAudio): set up the
    null device first.
    """
    import time

    from psychopy.sound import backend_sounddevice as backend
    stream_class = backend._SoundStream
    if getattr(stream_class._callback, "_avmit_paced", False):
        return
    original = stream_class._callback

    def paced_callback(self, toSpk, blockSize, timepoint, status):
        original(self, toSpk, blockSize, timepoint, status)
        now = time.perf_counter()
        due = getattr(self, "_avmit_due", None)
        if due is None or due < now - 0.1:  # first block, or the stream was held up
            due = now
        due += blockSize / float(self.sampleRate)
        self._avmit_due = due
        if due > now:
            time.sleep(due - now)

    paced_callback._avmit_paced = True
    stream_class._callback = paced_callback
    for label, old in list(backend.streams.items()):
        _close_stream(old)
        new = stream_class(old.sampleRate, old.channels, old.blockSize,
                           device=getattr(old, "device", None))
        new.sounds.extend(old.sounds)
        backend.streams[label] = new


def prepare_audio(*, null_device: bool = False, lib: str = "sounddevice") -> None:
    """Get sound ready for an experiment script (before :func:`.audio.open_output`).

    With ``null_device`` (simulated participants, tests, or ``AVMIT_PSYCH_NULL_AUDIO=1``) a
    machine without a sound card gets the ALSA null device, which both backends of
    :mod:`.audio` then open. Otherwise a missing audio output is an error: a lab session must
    never run silently. ``lib`` is PsychoPy's own ``sound.Sound`` backend.
    """
    from ..dataset.schema import DatasetError
    if null_device or os.environ.get("AVMIT_PSYCH_NULL_AUDIO") == "1":
        ensure_alsa_null_device()
    configure_psychopy_audio(lib)
    if not audio_output_available():
        raise DatasetError("no audio output device. " + headless_error_message())
