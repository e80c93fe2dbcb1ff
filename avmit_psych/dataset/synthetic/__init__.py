"""Seeded synthetic AVMIT-like data for the demo, the tests and the benchmarks, one module per
thing it makes:

- :mod:`.ratings` — an annotation campaign: raw ratings of a video pool by simulated raters
  (``simulate_ratings``).
- :mod:`.embeddings` — audio and visual embedding sequences in the released TFRecord layout,
  with split CSVs (``simulate_embeddings``, ``write_embedding_dataset``).
- :mod:`.clips` — probe videos with known audiovisual events (``write_probe_clips``).
- :mod:`.observers` — humans' trials and models' predictions on one suite from psychometric
  observers (``simulate_comparison``).

The names below are re-exported so ``synthetic.simulate_ratings(...)`` keeps working; import
from the module that makes what you need to load no more than that.
"""
from .clips import PROBE_CLICK_MS, PROBE_FLASH_S, probe_clip_arrays, write_probe_clips
from .embeddings import SYNTHETIC_TIMESTEPS, simulate_embeddings, write_embedding_dataset
from .observers import (COMPARISON_BASE, COMPARISON_CONDITIONS, COMPARISON_OBSERVER,
                        comparison_stimuli, psychometric_p_correct, simulate_comparison)
from .ratings import (EXCLUSION_REASONS, PAPER_N_GROUND_TRUTH, PAPER_N_RATERS, PAPER_N_VIDEOS,
                      SYNTHETIC_CLASSES, SYNTHETIC_EXTRA_CLASSES, SyntheticRatings,
                      simulate_ratings)

__all__ = [
    "COMPARISON_BASE", "COMPARISON_CONDITIONS", "COMPARISON_OBSERVER", "EXCLUSION_REASONS",
    "PAPER_N_GROUND_TRUTH", "PAPER_N_RATERS", "PAPER_N_VIDEOS", "PROBE_CLICK_MS",
    "PROBE_FLASH_S", "SYNTHETIC_CLASSES", "SYNTHETIC_EXTRA_CLASSES", "SYNTHETIC_TIMESTEPS",
    "SyntheticRatings", "comparison_stimuli", "probe_clip_arrays", "psychometric_p_correct",
    "simulate_comparison", "simulate_embeddings", "simulate_ratings", "write_embedding_dataset",
    "write_probe_clips",
]
