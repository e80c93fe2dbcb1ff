"""avmit_psych: audiovisual psychophysics with the AVMIT dataset.

``import avmit_psych as ap`` gives one call per step of a study, pingouin-style (a tidy
DataFrame and column names in, a tidy DataFrame out; each documented with a runnable example):

- ratings: ``simulate_ratings``, ``aggregate_ratings``, ``reliability``, ``rater_agreement``,
  ``select``
- stimuli: ``synthetic_videos``, ``synthetic_manifest``, ``generate_suite``, ``verify_suite``
- study: ``plan_study``, ``simulate_observers``, ``simulate_comparison``
- features: ``extract``, ``load_embeddings``, ``write_tfrecord``, ``read_tfrecord``,
  ``synthetic_embeddings``
- models: ``model_config``, ``train``, ``predict``, ``search``
- comparing humans and models: ``observations``, ``compare``, ``accuracy``,
  ``error_consistency``, ``single_case``, ``crawford_howell``, ``sdt``, ``psychometric_fit``

>>> import avmit_psych as ap
>>> ap.crawford_howell(0.6, [0.8, 0.85, 0.9])[["t", "dof"]].round(2)
      t  dof
0 -4.33    2

The names are loaded on first use (:pep:`562`), so ``import avmit_psych`` stays light: it
imports no TensorFlow, PsychoPy, moviepy, Dask or Optuna; the call that needs one imports it.
Each stage is also a package (``avmit_psych.dataset``, ``stimuli``, ``features``, ``models``,
``experiments``, ``analysis``) with a command line, ``python -m avmit_psych.<stage> --help``;
``python -m avmit_psych demo`` runs the pipeline on built-in synthetic data.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: The public API (defined in :mod:`avmit_psych.api`), loaded on first use.
__all__ = [
    "simulate_ratings", "aggregate_ratings", "reliability", "rater_agreement", "select",
    "synthetic_videos", "synthetic_manifest", "generate_suite", "verify_suite",
    "plan_study", "simulate_observers", "simulate_comparison",
    "extract", "write_tfrecord", "read_tfrecord", "synthetic_embeddings", "load_embeddings",
    "model_config", "train", "predict", "search",
    "observations", "compare", "accuracy", "error_consistency", "single_case",
    "crawford_howell", "sdt", "psychometric_fit",
]
_STAGES = ("dataset", "stimuli", "features", "models", "experiments", "analysis", "api")


def __getattr__(name: str):
    if name in __all__:
        value = getattr(importlib.import_module(".api", __name__), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    if name in _STAGES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | set(_STAGES))
