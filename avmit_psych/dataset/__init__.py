"""The AVMIT files: schemas, the ratings pipeline, synthetic data and the download.

Run ``python -m avmit_psych.dataset --help`` for the command line.
"""
from .schema import DatasetError, TEST_CLASSES  # noqa: F401
