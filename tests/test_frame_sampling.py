"""The frame-sampling rule (issue 12 point 5): frames every d = 960 / 480 ms as the paper says,
frame index floor(t * fps + 1/2), checked against indices computed by hand."""
from __future__ import annotations

import numpy as np
import pytest

from avmit_psych import media
from tests.videos import make_indexed_video

#: (fps as ffmpeg takes it, interval s) -> indices worked out by hand from t * fps:
#: 25 fps: t * fps = 12k (480 ms), 24k (960 ms): exact.
#: 30 fps: 14.4k -> 0, 14.4, 28.8, 43.2, 57.6, 72.0, 86.4; 28.8k -> 0, 28.8, 57.6, 86.4.
#: 29.97 (30000/1001) fps: 14.3856k -> 0, 14.39, 28.77, 43.16, 57.54, 71.93, 86.31;
#: 28.7712k -> 0, 28.77, 57.54, 86.31.
HAND_COMPUTED = {
    ("25", 0.48): [0, 12, 24, 36, 48, 60, 72],
    ("25", 0.96): [0, 24, 48, 72],
    ("30000/1001", 0.48): [0, 14, 29, 43, 58, 72, 86],
    ("30000/1001", 0.96): [0, 29, 58, 86],
    ("30", 0.48): [0, 14, 29, 43, 58, 72, 86],
    ("30", 0.96): [0, 29, 58, 86],
}


def _rate(fps: str) -> float:
    num, _, den = fps.partition("/")
    return float(num) / float(den or 1)


@pytest.mark.parametrize("fps, interval", sorted(HAND_COMPUTED))
def test_frame_indices_of_a_3_second_clip_match_hand_computed_ones(fps, interval):
    times = media.frame_times(3.0, interval)
    np.testing.assert_allclose(times, np.arange(len(HAND_COMPUTED[fps, interval])) * interval)
    assert media.frame_indices(times, _rate(fps)).tolist() == HAND_COMPUTED[fps, interval]
    # the rounded rate ffmpeg prints ("29.97 fps") gives the same frames as the exact one
    assert media.frame_indices(times, round(_rate(fps), 2)).tolist() == \
        HAND_COMPUTED[fps, interval]


def test_nearest_not_floor_and_ties_go_to_the_later_frame():
    # 29.97 fps, t = 2.40 s: t * fps = 71.93 -> 72 (floor would take 71, 67 ms earlier)
    assert media.frame_indices([2.40], 30000 / 1001).tolist() == [72]
    # exact half: 0.5 s at 5 fps is 2.5 frames -> the later frame
    assert media.frame_indices([0.5], 5.0).tolist() == [3]
    assert media.frame_indices([2.88, 3.5], 30.0, n_frames=90).tolist() == [86, 89]


@pytest.mark.parametrize("fps, interval", sorted(HAND_COMPUTED))
def test_decoded_frames_are_the_hand_computed_ones(tmp_path, fps, interval):
    """Frames read from a lossless clip whose frame n is grey level n."""
    path = make_indexed_video(tmp_path / "idx.mkv", fps)
    frames, times = media.read_frames(path, interval)
    assert frames[:, 112, 112, 0].tolist() == HAND_COMPUTED[fps, interval]
    np.testing.assert_allclose(times, np.arange(len(frames)) * interval)
