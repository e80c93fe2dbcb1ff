"""What every experiment session shares, whichever task it runs.

A session talks to the participant only through a *presenter*: an object that shows things
and collects answers. The PsychoPy presenters (:mod:`.screens`) do it with a window; the tests
with a scripted fake. Each experiment's module defines its trial (what is shown, what is
recorded, how it is scored) and its session loop against such an object:
:mod:`.human_vs_dnn` (``HumanVsDnnSession``) and :mod:`.annotation` (``AnnotationSession``).

Here: :class:`Aborted` (the participant pressed Escape), :class:`ShowsMessages` (the part of
a presenter both experiments use) and the session's status file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Protocol


class Aborted(Exception):
    """The participant pressed Escape: the session saves and ends cleanly."""


class ShowsMessages(Protocol):
    def show_message(self, text: str, *, wait: bool = True) -> None:
        """Show ``text``; with ``wait``, until the participant presses space (Escape raises
        :class:`Aborted`)."""


def status_path(data_dir, participant: str, session: int, name: str) -> Path:
    """``<data_dir>/sub-<id>_ses-<n>_<name>-status.txt``: how the last launch ended."""
    return Path(data_dir) / f"sub-{participant}_ses-{session}_{name}-status.txt"


def write_status(data_dir, participant: str, session: int, name: str, status: str) -> Path:
    """Record how the session ended: ``complete``, ``aborted``, ``screening_failed``,
    ``headphone_check_failed`` or ``error: <type>: <message>``."""
    path = status_path(data_dir, participant, session, name)
    path.write_text(status + "\n")
    return path


def run_with_status(session, body: Callable[[], str | None], close: Callable[[], None],
                    name: str) -> str:
    """Run ``body`` (a session's loop; returns its status, None meaning ``complete``), then
    whatever happened: set ``session.status``, ``close()`` the writers and write the status
    file named ``name``. Escape gives ``aborted``; any other exception gives ``error: <type>:
    <message>`` and is raised on (the rows written so far are kept)."""
    status = "complete"
    try:
        status = body() or "complete"
    except Aborted:
        status = "aborted"
    except BaseException as err:
        status = f"error: {type(err).__name__}: {err}"
        raise
    finally:
        session.status = status
        close()
        write_status(session.data_dir, session.participant, session.session, name, status)
    return status


def is_true(value) -> bool:
    """A plan's boolean cell (``True``, ``true``, ``1``, ``yes``) read back from CSV text."""
    return str(value).strip().lower() in ("true", "1", "yes")
