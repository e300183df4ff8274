"""Hardware video encoders: listed as this FFmpeg build has them, and a clear error where they do not open."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import pytest
from typer.testing import CliRunner

from irx.cli.main import app
from irx.errors import UsageError
from irx.media.video import VideoOptions, hardware_video_encoders, restore_video, video_encoders
from irx.media.video.plan import _hardware_options
from tests.test_video import Invert, make_video, read_video

runner = CliRunner()


def _opens(name: str) -> bool:
    """Open the encoder the plain PyAV way, independently of irx's probe."""
    context = av.CodecContext.create(name, "w")
    context.width, context.height, context.time_base = 256, 256, Fraction(1, 25)
    formats = [f.name for f in context.codec.video_formats or []]
    context.pix_fmt = "nv12" if "nv12" in formats else "yuv420p"
    try:
        context.open()
    except (av.error.FFmpegError, OSError, ValueError):
        return False
    return True


def test_listing_is_what_this_ffmpeg_build_has_and_what_opening_says() -> None:
    hardware = set(hardware_video_encoders())
    families = ("nvenc", "qsv", "vaapi", "videotoolbox", "amf")
    expected = {
        name for name in av.codecs_available
        if name.split("_")[0] in ("h264", "hevc", "av1") and name.split("_")[-1] in families
    }
    assert expected <= hardware  # every NVENC/QSV/VA-API/VideoToolbox/AMF encoder of the build is listed
    assert hardware <= set(av.codecs_available)
    listed = {e.name: e for e in video_encoders()}
    assert "libx264" in listed and listed["libx264"].api == "software" and listed["libx264"].usable
    for name in hardware:
        encoder = listed[name]
        assert encoder.format in ("h264", "hevc", "av1") and encoder.api != "software"
        assert encoder.usable == _opens(name), name
        if not encoder.usable:
            assert encoder.problem and "\n" not in encoder.problem
    if "h264_nvenc" in hardware:
        assert listed["h264_nvenc"].api == "NVIDIA NVENC"


def test_cli_lists_the_encoders(tmp_path: Path) -> None:
    result = runner.invoke(app, ["video-encoders", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert set(rows) == {e.name for e in video_encoders()}
    assert all(row["usable"] == (row["problem"] is None) for row in rows.values())
    table = runner.invoke(app, ["video-encoders"])
    assert table.exit_code == 0 and "libx264" in table.output


def test_a_hardware_encoder_that_does_not_open_is_a_clear_error(tmp_path: Path, tiny_denoiser: Path) -> None:
    closed = [e for e in video_encoders() if e.api != "software" and not e.usable and e.format == "h264"]
    if not closed:
        pytest.skip("every H.264 hardware encoder of this build opens here")
    name = closed[0].name
    src = make_video(tmp_path / "in.mp4", n=2, audio=None)
    out = tmp_path / "out.mp4"
    result = runner.invoke(app, ["denoise", str(src), "-o", str(out), "--model", str(tiny_denoiser), "--codec", name])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: encoder {name} does not open on this machine (")
    assert "--codec" in lines[0] and "irx video-encoders" in lines[0]
    assert not out.exists()
    with pytest.raises(UsageError, match=f"{name} does not open"):  # the library says it too, in its own terms
        restore_video(src, out, Invert(), VideoOptions(codec=name))


def test_an_encoder_missing_from_the_build_is_a_clear_error(tmp_path: Path) -> None:
    src = make_video(tmp_path / "in.mp4", n=2, audio=None)
    missing = next(n for n in ("h264_vaapi", "h264_videotoolbox", "hevc_vaapi", "nope_nvenc") if n not in av.codecs_available)
    with pytest.raises(UsageError, match=f"'{missing}' is not available.*irx video-encoders"):
        restore_video(src, tmp_path / "out.mp4", Invert(), VideoOptions(codec=missing))


def test_crf_and_preset_in_each_apis_terms() -> None:
    options: dict[str, str] = {}
    _hardware_options("h264_nvenc", "nvenc", VideoOptions(crf=23, preset="p5"), options)
    assert options == {"cq": "23", "preset": "p5"}
    options = {}
    _hardware_options("hevc_qsv", "qsv", VideoOptions(crf=25, preset="slow"), options)
    assert options == {"global_quality": "25", "preset": "slow"}
    with pytest.raises(UsageError, match="choose one of: p1"):
        _hardware_options("h264_nvenc", "nvenc", VideoOptions(preset="ultrafast"), {})
    with pytest.raises(UsageError, match="no presets"):
        _hardware_options("h264_v4l2m2m", "v4l2m2m", VideoOptions(preset="fast"), {})


@pytest.mark.parametrize("name", [e.name for e in video_encoders() if e.api != "software" and e.usable] or ["none"])
def test_a_hardware_encoder_that_opens_writes_the_video(tmp_path: Path, name: str) -> None:
    """Runs only where a hardware encoder opens (e.g. NVENC on a GPU that has it); skipped, not faked, elsewhere."""
    if name == "none":
        pytest.skip("no hardware video encoder opens on this machine")
    src = make_video(tmp_path / "in.mp4", size=(256, 144), n=6, audio=None)
    result = restore_video(src, tmp_path / "out.mkv", Invert(), VideoOptions(codec=name))
    video = read_video(tmp_path / "out.mkv")
    assert result.codec == name and len(video["frames"]) == 6 and video["frames"][0].shape == (144, 256, 3)
