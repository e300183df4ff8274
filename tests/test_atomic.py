"""Tests for irx.media.atomic: outputs are complete or untouched, never half-written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from irx.errors import IrxError
from irx.media import (
    OutputExistsError,
    atomic_output,
    atomic_write_bytes,
    atomic_write_with,
    cleanup_stale_temps,
    is_temp_name,
)

REPO = Path(__file__).resolve().parents[1]


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_success_renames_temp_onto_destination(tmp_path):
    dest = tmp_path / "photo.png"
    with atomic_output(dest) as tmp:
        assert tmp.parent == tmp_path and tmp.exists()
        assert tmp.name.startswith(".photo.png.irx-tmp-") and tmp.suffix == ".png"
        assert is_temp_name(tmp.name)
        tmp.write_bytes(b"new content")
        assert not dest.exists()  # nothing visible until the block ends
    assert dest.read_bytes() == b"new content"
    assert _names(tmp_path) == ["photo.png"]


def test_file_mode_follows_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        dest = atomic_write_bytes(tmp_path / "a.jpg", b"x")
    finally:
        os.umask(old)
    assert dest.stat().st_mode & 0o777 == 0o644  # not mkstemp's 0o600


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_error_mid_write_leaves_destination_untouched(tmp_path, error):
    dest = tmp_path / "out.tif"
    dest.write_bytes(b"original")
    with pytest.raises(error), atomic_output(dest, overwrite=True) as tmp:
        tmp.write_bytes(b"half a fi")
        raise error()
    assert dest.read_bytes() == b"original"
    assert _names(tmp_path) == ["out.tif"]


def test_error_mid_write_creates_nothing(tmp_path):
    with (
        pytest.raises(ValueError, match="encoder failed"),
        atomic_output(tmp_path / "new.png") as tmp,
    ):
        tmp.write_bytes(b"partial")
        raise ValueError("encoder failed")
    assert _names(tmp_path) == []


def test_existing_file_is_kept_unless_overwrite(tmp_path):
    dest = tmp_path / "keep.png"
    dest.write_bytes(b"precious")
    with pytest.raises(OutputExistsError) as info:
        atomic_write_bytes(dest, b"other")
    assert isinstance(info.value, IrxError) and isinstance(info.value, FileExistsError)
    assert "keep.png" in str(info.value) and "\n" not in str(info.value)
    assert dest.read_bytes() == b"precious"
    atomic_write_bytes(dest, b"replaced", overwrite=True)
    assert dest.read_bytes() == b"replaced"
    assert _names(tmp_path) == ["keep.png"]


def test_file_appearing_during_the_write_is_not_replaced(tmp_path):
    dest = tmp_path / "race.png"
    with pytest.raises(OutputExistsError), atomic_output(dest) as tmp:
        tmp.write_bytes(b"ours")
        dest.write_bytes(b"theirs")  # another process got there first
    assert dest.read_bytes() == b"theirs"
    assert _names(tmp_path) == ["race.png"]


def test_write_callback_gets_a_temp_with_the_suffix_and_failures_leave_dest_alone(tmp_path):
    dest = tmp_path / "report.csv"
    dest.write_text("old", encoding="utf-8")
    seen = []

    def fail(tmp: Path) -> None:
        seen.append(tmp)
        tmp.write_text("half", encoding="utf-8")
        raise RuntimeError("writer broke")

    with pytest.raises(RuntimeError):
        atomic_write_with(dest, fail, overwrite=True)
    assert seen[0] != dest and seen[0].suffix == ".csv"
    assert dest.read_text(encoding="utf-8") == "old" and _names(tmp_path) == ["report.csv"]
    assert atomic_write_with(dest, lambda tmp: tmp.write_text("new", encoding="utf-8"), overwrite=True) == dest
    assert dest.read_text(encoding="utf-8") == "new" and _names(tmp_path) == ["report.csv"]


def test_missing_parent_folders_are_created(tmp_path):
    dest = atomic_write_bytes(tmp_path / "a" / "b" / "c.bmp", b"data")
    assert dest.read_bytes() == b"data"


def test_folder_as_destination_is_refused(tmp_path):
    with pytest.raises(OutputExistsError):
        atomic_write_bytes(tmp_path, b"x", overwrite=True)


def test_long_names_still_give_valid_temp_names(tmp_path):
    dest = tmp_path / ("n" * 240 + ".png")
    assert atomic_write_bytes(dest, b"ok").read_bytes() == b"ok"


@pytest.mark.skipif(os.name == "nt", reason="needs SIGKILL")
def test_temp_of_a_killed_process_is_cleaned_and_live_ones_kept(tmp_path):
    dest = tmp_path / "video.mp4"
    script = textwrap.dedent(
        f"""
        import os, signal
        from irx.media import atomic_output
        with atomic_output({str(dest)!r}) as tmp:
            tmp.write_bytes(b"half written")
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, timeout=60, check=False
    )
    assert result.returncode == -signal.SIGKILL
    leftovers = [p for p in tmp_path.iterdir() if is_temp_name(p.name)]
    assert len(leftovers) == 1 and not dest.exists()

    (tmp_path / ".hidden").write_bytes(b"user file")
    (tmp_path / "clip.irx-tmp-notes.txt").write_bytes(b"user file, not our pattern")
    with atomic_output(
        tmp_path / "busy.png"
    ) as ours:  # this process is alive: keep its temp
        removed = cleanup_stale_temps(tmp_path)
        assert ours.exists()
    assert removed == leftovers
    assert _names(tmp_path) == [".hidden", "busy.png", "clip.irx-tmp-notes.txt"]
    assert cleanup_stale_temps(tmp_path / "missing") == []


def test_temp_name_pattern():
    assert is_temp_name(".a.png.irx-tmp-123-0123abcd.png")
    assert is_temp_name(".noext.irx-tmp-1-deadbeef")
    assert not is_temp_name("a.png.irx-tmp-123-0123abcd.png")  # not hidden
    assert not is_temp_name(".a.png.irx-tmp-xyz-0123abcd.png")
    assert not is_temp_name(".a.png")
