"""Stimulus suites: manipulations of the test videos (asynchrony, auditory and visual noise,
semantic swaps, unimodal) as pure functions, the suite runner and its manifest.

Built by the stimulus-suites issue; the manifest columns are fixed in ARCHITECTURE.md.
"""
