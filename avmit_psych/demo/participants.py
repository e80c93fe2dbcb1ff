"""The demo study's simulated participants: cue-integration observers drawn from
:data:`DEMO_POPULATION`, run through the experiment's trial lists and written trial by trial
with the experiment's own data writer (no TensorFlow).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from ..dataset import schema
from ..experiments import cue_integration as CI
from ..experiments import human_vs_dnn as H

#: The demo's simulated people: cue-integration observers
#: (:mod:`~avmit_psych.experiments.cue_integration`) with the group means of
#: :class:`~avmit_psych.experiments.cue_integration.CuePopulation`, but for the SNR at which
#: d'_A is half its maximum: ``demo_small``'s auditory noise runs from 30 to 0 dB only, so it
#: is put at 13 dB (at 0 dB d'_A is then 0.1 % of its maximum and the answers rest on vision).
DEMO_POPULATION = CI.CuePopulation(audio_snr50_db=(13.0, 2.5))
N_OBSERVERS = 10


def simulate_observers(n: int = N_OBSERVERS, *, seed: int = 0,
                       population: CI.CuePopulation = DEMO_POPULATION) -> pd.DataFrame:
    """Draw ``n`` cue-integration observers from ``population``; one row per observer.

    Columns: those of :func:`~avmit_psych.experiments.cue_integration.draw_observers`
    (participant ``P01``..., seed and every drawn parameter: sensitivities, noise thresholds,
    binding window, criterion, lapse rate, median RT) and ``observer``, the
    :class:`~avmit_psych.experiments.cue_integration.CueIntegrationObserver` itself.
    """
    table = CI.draw_observers(n, seed, population=population)
    table["observer"] = [CI.CueIntegrationObserver.from_row(r)
                         for r in table.to_dict("records")]
    return table


#: For the simulated onsets: the first stimulus's onset in session time, and the seconds
#: between one trial's response and the next stimulus.
SESSION_START_S = 5.0
INTER_TRIAL_S = 1.0
#: The simulated lab's presentation (see :func:`simulated_timing`): PsychToolbox audio with a
#: calibrated latency of 20 ms compensated, a 60 Hz display. The backend's reported start
#: errs by a normal 0.25 ms SD, the flip intervals vary by 0.1-0.3 ms SD: within the 2 ms
#: tolerance of ``timing_ok``, as a bench-tested setup keeps them.
SIMULATED_AUDIO_BACKEND = "ptb"
SIMULATED_LATENCY_MS = 20.0
SIMULATED_START_ERROR_SD_MS = 0.25


def simulated_timing(rng: np.random.Generator) -> dict:
    """The timing columns of one simulated trial (``schema.TIMING_COLUMNS`` and the AV onset
    asynchrony), as a flawless bench-tested presentation would report them: the sound started
    ``latency_ms`` before the planned first flip, give or take the backend's start error; the
    first flip on time; ``timing_ok`` true. Nothing is measured: the values only give the
    demo's data files the experiment's columns and a plausible spread."""
    error = float(np.clip(rng.normal(0.0, SIMULATED_START_ERROR_SD_MS), -1.0, 1.0))
    return {"av_onset_asynchrony_ms": round(error, 4), "planned_offset_ms": 0.0,
            "latency_ms": SIMULATED_LATENCY_MS,
            "scheduled_lead_ms": round(SIMULATED_LATENCY_MS - error, 4),
            "audio_start_error_ms": round(error, 4),
            "frame_interval_sd_ms": round(float(rng.uniform(0.1, 0.3)), 4),
            "timing_ok": True, "audio_backend": SIMULATED_AUDIO_BACKEND}


def simulate_participants(manifest: pd.DataFrame, out_dir, observers: pd.DataFrame, *,
                          seed: int = 0, task: str = "classify",
                          on_done=None) -> list[Path]:
    """Run every observer through the experiment's trial list and write their data files
    (``on_done()``, when given, is called after each participant's file is finished).

    Each observer answers every stimulus of ``manifest`` once, in the participant's seeded
    order (:func:`~avmit_psych.experiments.human_vs_dnn.trial_list`); rows follow
    ``schema.TRIALS_COLUMNS`` and go through :class:`~avmit_psych.experiments.datafile.TrialWriter`
    (file ``sub-<id>_ses-1_task-<task>_beh.csv``, marked finished). Timing columns hold what a
    flawless presentation would have given: the clip's duration and frame count, no dropped
    frames, onsets of one stimulus after another, and the audio-schedule columns of
    :func:`simulated_timing` (seeded per participant and task). In the ``correspondence``
    task the one-modality stimuli
    (``audio_only``, ``visual_only``) ask no question and are left out, and ``label`` is the
    answer key (same/different, :func:`~avmit_psych.experiments.human_vs_dnn.correct_response`),
    as the experiment writes it; in the ``classify`` task the semantic swaps are left out
    (:func:`asked_in_classification`). Returns the data files.
    """
    from ..experiments.datafile import TrialWriter
    manifest = asked_in_correspondence(manifest) if task == "correspondence" else \
        asked_in_classification(manifest)
    paths = []
    for row in observers.itertuples(index=False):
        observer = dataclasses.replace(row.observer)  # a fresh random stream: calls repeat
        trials = H.trial_list(manifest, row.participant, seed=seed)
        timing_rng = H.participant_rng(seed, row.participant, 97 if task == "classify" else 98)
        clock = SESSION_START_S
        with TrialWriter(out_dir, row.participant, 1, task, schema.TRIALS_COLUMNS) as writer:
            for stim in trials.to_dict("records"):
                response = observer.respond(task, stim)
                rt = round(observer.rt(stim, task=task), 4)
                playback = float(stim["duration_s"])
                writer.write({
                    "participant": row.participant, "session": 1, "task": task,
                    "block": stim["block"], "trial": stim["trial"],
                    "stimulus_id": stim["stimulus_id"],
                    "label": H.correct_response(task, stim),
                    "manipulation": stim["manipulation"], "level": stim["level"],
                    "response": response, "correct": H.score(task, stim, response), "rt": rt,
                    "rt_from_onset": round(playback + rt, 4), "onset": round(clock, 4),
                    "frames_shown": int(round(playback * float(stim["fps"]))),
                    "dropped_frames": 0, "playback_s": playback, "repeat": stim["repeat"],
                    "audio_source": stim.get("audio_source", ""), "error": "",
                    **simulated_timing(timing_rng)})
                clock += playback + rt + INTER_TRIAL_S
            writer.finish()
        paths.append(writer.path)
        if on_done is not None:
            on_done()
    return paths


def asked_in_correspondence(manifest: pd.DataFrame) -> pd.DataFrame:
    """The stimuli that ask a correspondence question (not ``audio_only`` / ``visual_only``)."""
    from ..models.savc import ONE_MODALITY
    return manifest[~manifest["manipulation"].isin(ONE_MODALITY)].reset_index(drop=True)


def asked_in_classification(manifest: pd.DataFrame) -> pd.DataFrame:
    """The stimuli the demo's classification task asks about: all but the semantic swaps.

    The swaps are there for the correspondence task, as its "different" trials. In the
    classification task each would be scored against its picture's class, and compare makes
    one condition of each donor class (``semantic_swap=barking``, ...): 16 conditions of two
    stimuli each in the demo, too few for any statistic.
    """
    return manifest[manifest["manipulation"] != "semantic_swap"].reset_index(drop=True)
