"""Experiments: study plans (``plan``: counterbalanced lists, sessions, practice, repeats),
running them (``study``: list assignment, plan-bound data files), trial logic independent of the
screen (timelines, assignment, the crash-safe, single-writer data store, simulated
participants) and thin PsychoPy presenters. Nothing here imports PsychoPy window code at import
time.
"""
