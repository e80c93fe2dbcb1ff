"""Experiments: trial logic independent of the screen (timelines, assignment, the crash-safe
data store, a simulated participant) and thin PsychoPy presenters. Nothing here imports
PsychoPy window code at import time.

Built by the PsychoPy-experiments issue.
"""
