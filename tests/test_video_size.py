"""Video output size: odd sizes, fractional scales and --width/--height (issue #16, item 9)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from irx.media.video import VideoOptions, available_video_encoders, restore_video
from irx.pipeline import _ScaledEngine, output_size
from tests.test_video import Identity, Invert, make_video, pattern, read_video


def _stored(path: Path) -> tuple[int, int, str]:
    with av.open(str(path)) as container:
        context = container.streams.video[0].codec_context
        return context.width, context.height, context.format.name


def test_odd_size_yuv420p_into_mkv_keeps_the_exact_size(tmp_path: Path) -> None:
    """321x241 yuv420p into MKV: x264 refuses odd 4:2:0, so the output is 4:4:4 at the exact size."""
    src = make_video(tmp_path / "in.mkv", codec="ffv1", size=(321, 241), n=3, audio=None)
    result = restore_video(src, tmp_path / "out.mkv", Identity(), VideoOptions())
    assert (result.codec, result.pix_fmt, result.width, result.height) == ("libx264", "yuv444p", 321, 241)
    assert _stored(tmp_path / "out.mkv") == (321, 241, "yuv444p")
    said = [w for w in result.warnings if "odd size" in w]
    assert len(said) == 1 and "yuv444p" in said[0] and "321x241" in said[0]
    frames = read_video(tmp_path / "out.mkv")["frames"]
    assert len(frames) == 3 and frames[0].shape == (241, 321, 3)
    # The picture is the input's (lossy but close), not stretched or shifted.
    assert np.abs(frames[1].astype(int) - pattern(1, 241, 321).astype(int)).mean() < 4


def test_odd_size_with_an_asked_subsampled_format_is_padded_to_even(tmp_path: Path) -> None:
    src = make_video(tmp_path / "in.mkv", codec="ffv1", size=(321, 241), n=2, audio=None)
    result = restore_video(src, tmp_path / "out.mp4", Identity(), VideoOptions(pix_fmt="yuv420p"))
    assert _stored(tmp_path / "out.mp4") == (322, 242, "yuv420p")
    assert any("padded to 322x242" in w for w in result.warnings)
    frame = read_video(tmp_path / "out.mp4")["frames"][0].astype(int)
    # Edge pixels repeated: the added column and row copy the last real ones.
    assert np.abs(frame[:, 321] - frame[:, 320]).mean() < 3 and np.abs(frame[241] - frame[240]).mean() < 3


@pytest.mark.parametrize("codec", ["libsvtav1", "libvpx-vp9", "ffv1", "mpeg4"])
def test_encoders_that_take_odd_sizes_keep_yuv420p(tmp_path: Path, codec: str) -> None:
    """The encoders irx lets write odd 4:2:0 really do (else the table in plan.py is wrong)."""
    if codec not in available_video_encoders():
        pytest.skip(f"{codec} is not in this FFmpeg build")
    src = make_video(tmp_path / "in.mkv", codec="ffv1", size=(33, 17), n=2, audio=None)
    result = restore_video(src, tmp_path / "out.mkv", Identity(), VideoOptions(codec=codec, pix_fmt="yuv420p"))
    assert _stored(tmp_path / "out.mkv") == (33, 17, "yuv420p")
    assert not [w for w in result.warnings if "odd size" in w]


def test_fractional_scale_and_width_for_video(tmp_path: Path) -> None:
    src = make_video(tmp_path / "in.mp4", size=(64, 48), n=3, audio=None)
    engine = _ScaledEngine(Invert(), 1.5)  # type: ignore[arg-type]
    result = restore_video(src, tmp_path / "x15.mp4", engine, VideoOptions())
    assert _stored(tmp_path / "x15.mp4")[:2] == (96, 72) and result.frames == 3
    # 64x48 -> width 101 keeps the aspect ratio: height 75.75 -> 76; 101 is odd, so 4:4:4 keeps it exact.
    engine = _ScaledEngine(Invert(), None, width=101)  # type: ignore[arg-type]
    result = restore_video(src, tmp_path / "w101.mkv", engine, VideoOptions())
    assert _stored(tmp_path / "w101.mkv") == (101, 76, "yuv444p")
    frames = read_video(tmp_path / "w101.mkv")["frames"]
    assert frames[0].shape == (76, 101, 3)
    # Inverted and resized: the mean of the inverted input, give or take the codec.
    assert abs(frames[0].mean() - (255 - pattern(0, 48, 64).astype(float)).mean()) < 3


def test_output_size_rules() -> None:
    assert output_size((241, 321), 1, 1.5) == (362, 482)  # half up, not to even
    assert output_size((48, 64), 4) == (192, 256)
    assert output_size((48, 64), 4, width=100) == (75, 100)
    assert output_size((48, 64), 4, height=30) == (30, 40)
    assert output_size((48, 64), 4, 2, width=10, height=20) == (20, 10)  # both given: exactly, scale ignored


def test_odd_size_in_segments_matches_the_direct_run(tmp_path: Path) -> None:
    """Segments (--resume) follow the same plan: 4:4:4 at the exact size, every frame there."""
    src = make_video(tmp_path / "in.mkv", codec="ffv1", size=(35, 19), n=5, audio=None)
    direct = restore_video(src, tmp_path / "direct.mkv", Invert(), VideoOptions(codec="ffv1"))
    segmented = restore_video(src, tmp_path / "seg.mkv", Invert(), VideoOptions(codec="libx264", segment_frames=2))
    assert segmented.segments == 3 and segmented.frames == direct.frames == 5
    assert _stored(tmp_path / "seg.mkv") == (35, 19, "yuv444p")
    assert read_video(tmp_path / "seg.mkv")["frames"][4].shape == (19, 35, 3)
