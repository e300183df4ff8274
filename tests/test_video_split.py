"""One video cut at keyframes into parts restored by several engines, joined like the single-process run.

The clips are made here with PyAV (tiny frames, a keyframe every few frames); the engines are fakes.
"""

from __future__ import annotations

import threading
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av")

from test_video import Invert, pattern, read_video, stream_packets  # noqa: E402

from irx.media.video import VideoOptions, restore_video, restore_video_split  # noqa: E402
from irx.media.video.split import join_parts, plan_split, restore_part, start_split  # noqa: E402


def make_clip(path: Path, *, codec: str, n: int = 40, gop: int = 8, bframes: int = 2, audio: str = "mp2",
              subtitles: bool = False, size: tuple[int, int] = (32, 24)) -> Path:
    """A clip with a keyframe every ``gop`` frames (B-frames for x264), an audio track and maybe subtitles."""
    w, h = size
    with av.open(str(path), "w") as out:
        video = out.add_stream(codec, rate=24)
        video.width, video.height = w, h
        video.pix_fmt = "yuv420p" if codec == "libx264" else "bgr0"
        video.codec_context.gop_size = gop
        if codec == "libx264":
            video.options = {"bf": str(bframes), "sc_threshold": "0", "threads": "1"}
        sound = out.add_stream(audio, rate=16000 if audio == "mp2" else 8000)
        sound.layout = "mono"
        text = out.add_mux_stream("mov_text") if subtitles else None
        if text is not None:
            text.time_base = Fraction(1, 1000)
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(pattern(i, h, w), format="rgb24").reformat(format=video.pix_fmt)
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        rate = sound.codec_context.sample_rate
        wave = (np.sin(np.arange(rate * n // 24) / 9.0) * 0.3).astype(np.float32)[None]
        fmt = sound.codec_context.format.name
        samples = wave if fmt.startswith("flt") else (wave * 30000).astype(np.int16)
        chunk = av.AudioFrame.from_ndarray(samples, format=fmt, layout="mono")
        chunk.sample_rate, chunk.pts = rate, 0
        out.mux(sound.encode(chunk))
        out.mux(sound.encode(None))
        if text is not None:
            for k, line in enumerate([b"first", b"second"]):
                packet = av.Packet(len(line).to_bytes(2, "big") + line)
                packet.stream, packet.pts, packet.dts, packet.duration = text, 100 + 700 * k, 100 + 700 * k, 500
                out.mux(packet)
    return path


class SlowInvert(Invert):
    """Invert, recording which thread restored each frame (to see that the parts were shared)."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: set[int] = set()

    def restore(self, images):
        self.threads.add(threading.get_ident())
        return super().restore(images)


def test_lossless_parts_give_the_single_process_frames_timestamps_and_audio(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "in.mkv", codec="ffv1", n=40, gop=6)
    options = VideoOptions(codec="ffv1", batch_size=3)
    reference = restore_video(src, tmp_path / "ref.mkv", Invert(), options)
    engines = [SlowInvert(), SlowInvert()]
    result = restore_video_split(src, tmp_path / "out.mkv", engines, options)
    assert result.segments == 4 and result.frames == reference.frames == 40
    assert all(engine.frames > 0 for engine in engines)  # both engines restored parts
    assert sum(engine.frames for engine in engines) == 40  # every frame once
    got, ref = read_video(tmp_path / "out.mkv"), read_video(tmp_path / "ref.mkv")
    assert got["pts"] == ref["pts"] and got["durations"] == ref["durations"] and got["end"] == ref["end"]
    assert all(np.array_equal(x, y) for x, y in zip(got["frames"], ref["frames"]))
    assert stream_packets(tmp_path / "out.mkv", "audio") == stream_packets(tmp_path / "ref.mkv", "audio")
    assert len(stream_packets(src, "audio")) > 5
    assert not (tmp_path / ".out.mkv.irx-segments").exists()


def test_b_frame_mp4_parts_keep_timing_audio_and_subtitles(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "in.mp4", codec="libx264", n=40, gop=8, audio="aac", subtitles=True)
    split = plan_split(src, tmp_path / "out.mp4", 1, VideoOptions(), 4)
    assert split is not None and len(split.windows) == 4
    # Cut at keyframes: each part starts where the one before ends.
    assert [w.first_pts for w in split.windows[1:]] == [w.end_pts for w in split.windows[:-1]]
    restore_video(src, tmp_path / "ref.mp4", Invert(), VideoOptions(batch_size=4))
    restore_video_split(src, tmp_path / "out.mp4", [Invert(), Invert()], VideoOptions(batch_size=4))
    got, ref, inp = (read_video(tmp_path / name) for name in ("out.mp4", "ref.mp4", "in.mp4"))
    assert got["pts"] == ref["pts"] == inp["pts"] and got["end"] == ref["end"] and len(got["frames"]) == 40
    for x, i in zip(got["frames"], inp["frames"]):  # lossy: the frames are the inverted input, within the codec's error
        assert np.abs(x.astype(int) - (255 - i.astype(int))).mean() < 6
    for kind in ("audio", "subtitle"):
        assert stream_packets(tmp_path / "out.mp4", kind) == stream_packets(tmp_path / "ref.mp4", kind)
    with av.open(str(tmp_path / "out.mp4")) as c:  # every part starts with a keyframe of its own encoder
        keys = sum(p.is_keyframe for p in c.demux(video=0) if p.size)
    assert keys >= 4


def test_parts_restored_separately_resume_and_join(tmp_path: Path) -> None:
    """The steps another process (a Ray worker) takes: a rerun with resume keeps the finished parts."""
    src = make_clip(tmp_path / "in.mkv", codec="ffv1", n=30, gop=5)
    options = VideoOptions(codec="ffv1", batch_size=2, resume=True)
    split = plan_split(src, tmp_path / "out.mkv", 1, options, 3)
    assert split is not None
    assert start_split(split) == [0, 1, 2]
    first = restore_part(split, 0, Invert())
    # a new plan (a rerun) keeps part 0
    again = plan_split(src, tmp_path / "out.mkv", 1, options, 3)
    assert again is not None and start_split(again) == [1, 2]
    results = [restore_part(again, n, Invert()) for n in (1, 2)]
    result = join_parts(again, results)
    assert result.frames == 30 and result.resumed_frames == first.frames > 0
    restore_video(src, tmp_path / "ref.mkv", Invert(), VideoOptions(codec="ffv1"))
    got, ref = read_video(tmp_path / "out.mkv"), read_video(tmp_path / "ref.mkv")
    assert got["pts"] == ref["pts"] and all(np.array_equal(x, y) for x, y in zip(got["frames"], ref["frames"]))


def test_a_video_with_one_keyframe_is_not_split(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "in.mp4", codec="libx264", n=20, gop=250, audio="aac")
    assert plan_split(src, tmp_path / "out.mp4", 1, VideoOptions(), 4) is None
    engines = [Invert(), Invert()]
    result = restore_video_split(src, tmp_path / "out.mp4", engines, VideoOptions())
    assert result.frames == 20 and engines[0].frames == 20 and engines[1].frames == 0
