"""avmit_psych: audiovisual psychophysics with the AVMIT dataset.

Stages (each usable from Python and from ``python -m avmit_psych.<stage>``):
``dataset`` (AVMIT files, ratings pipeline, download), ``analysis`` (reliability and
comparisons). ``python -m avmit_psych demo`` runs the pipeline on built-in synthetic data.
"""
__version__ = "0.1.0"
