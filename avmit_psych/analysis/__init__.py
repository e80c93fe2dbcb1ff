"""Analyses: annotation reliability, and (as the toolkit grows) human-vs-DNN comparisons.

Run ``python -m avmit_psych.analysis --help`` for the command line.
"""
