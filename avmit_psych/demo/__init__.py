"""The built-in demo: a small human-vs-DNN study made from the toolkit's own parts.

It sits on top of the layers (it uses every stage) and nothing in the library imports it;
``python -m avmit_psych demo`` and ``python -m avmit_psych.analysis compare`` without inputs
build or reuse it.

- :mod:`.study` — the build, stage by stage, cached per seed (``build_demo_study``).
- :mod:`.participants` — the simulated participants and their data files.
- :mod:`.encoders` — the random-weight encoders with standardised embeddings.
"""
