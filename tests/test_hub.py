"""Hub downloads against a local fake Hub (tests/hub_server.py): verification, cache, offline, faults."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import pytest
from hub_server import FakeHub, free_port, isolate_hub_env

from irx.errors import ModelError, UsageError
from irx.zoo import ModelRecord, ensure_local
from irx.zoo import hub as zhub
from irx.zoo.hub import HubFile, fetch, parse_hf_uri

REPO = "acme/tiny-net"
CONTENT = bytes(range(256)) * 1200  # 300 KiB: several 64 KiB chunks


@pytest.fixture
def fake(monkeypatch, tmp_path):
    with FakeHub() as hub:
        isolate_hub_env(monkeypatch, tmp_path, hub.endpoint)
        yield hub


def cache_files(tmp_path: Path) -> list[Path]:
    """Regular files holding data in the HF cache (blobs, snapshots, temp files)."""
    root = tmp_path / "hf" / "hub"
    return [p for p in root.rglob("*") if (p.is_file() or p.is_symlink()) and "refs" not in p.parts
            and ".locks" not in p.parts and p.name != "CACHEDIR.TAG"]


def test_first_download_is_verified_and_lands_in_the_env_cache(fake, tmp_path):
    fake.add_file(REPO, "weights/model.safetensors", CONTENT)
    path = fetch(HubFile(REPO, "weights/model.safetensors"), quiet=True)
    assert path.read_bytes() == CONTENT
    # HF_HUB_CACHE was set after huggingface_hub was imported: irx passes it explicitly.
    assert str(path).startswith(str(tmp_path / "hf" / "hub"))
    sha = hashlib.sha256(CONTENT).hexdigest()
    assert Path(os.path.realpath(path)).name == sha  # the blob is named by the declared LFS hash
    assert zhub.verified_sha256(path) == sha
    # irx's HEAD, hf_hub_download's HEAD, one GET on the CDN host.
    assert fake.count("HEAD") == 2 and fake.count("GET", "/cdn/") == 1


def test_cache_hit_makes_no_request_and_does_not_rehash(fake, monkeypatch):
    fake.add_file(REPO, "model.pth", CONTENT)
    first = fetch(HubFile(REPO, "model.pth"), quiet=True)
    before = len(fake.requests)

    def no_hashing(path):
        raise AssertionError("a verified, unchanged file was hashed again")

    monkeypatch.setattr(zhub, "sha256_file", no_hashing)
    assert fetch(HubFile(REPO, "model.pth"), quiet=True) == first
    assert len(fake.requests) == before


def test_offline_hit_and_miss(fake, monkeypatch):
    fake.add_file(REPO, "model.pth", CONTENT)
    cached = fetch(HubFile(REPO, "model.pth"), quiet=True)
    fake.stop()  # nothing answers any more
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # read at call time
    assert fetch(HubFile(REPO, "model.pth")) == cached
    with pytest.raises(ModelError, match="offline") as err:
        fetch(HubFile(REPO, "other.pth"))
    assert "irx models download" in str(err.value)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with pytest.raises(ModelError, match="offline"):
        fetch(HubFile(REPO, "other.pth"), offline=True)


def test_server_down_gives_a_clear_error_quickly(monkeypatch, tmp_path):
    isolate_hub_env(monkeypatch, tmp_path, f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ModelError, match="cannot reach the Hub") as err:
        fetch(HubFile(REPO, "model.pth"))
    assert "--offline" in str(err.value)


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_damaged_cache_is_detected_and_refetched(fake, caplog, damage):
    f = fake.add_file(REPO, "model.pth", CONTENT)
    path = fetch(HubFile(REPO, "model.pth"), quiet=True)
    blob = Path(os.path.realpath(path))
    data = bytearray(blob.read_bytes())
    if damage == "flip":
        data[1000] ^= 0xFF  # same size
    else:
        data = data[: len(data) // 3]
    os.chmod(blob, 0o644)
    blob.write_bytes(bytes(data))
    st = blob.stat()
    os.utime(blob, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))  # as a later write would
    gets = fake.count("GET")
    with caplog.at_level(logging.WARNING, logger="irx.zoo.hub"):
        again = fetch(HubFile(REPO, "model.pth"), quiet=True)
    assert again.read_bytes() == f.content
    assert fake.count("GET") == gets + 1
    assert "damaged" in caplog.text


def test_damaged_cache_offline_is_removed_with_an_error(fake, monkeypatch):
    fake.add_file(REPO, "model.pth", CONTENT)
    path = fetch(HubFile(REPO, "model.pth"), quiet=True)
    blob = Path(os.path.realpath(path))
    os.chmod(blob, 0o644)
    blob.write_bytes(b"garbage")
    with pytest.raises(ModelError, match="damaged"):
        fetch(HubFile(REPO, "model.pth"), offline=True)
    assert not blob.exists() and not path.exists()


def test_wrong_declared_hash_fails_after_one_retry_and_keeps_nothing(fake, tmp_path):
    fake.add_file(REPO, "model.pth", CONTENT, declared_sha256=hashlib.sha256(b"something else").hexdigest())
    with pytest.raises(ModelError, match="declares") as err:
        fetch(HubFile(REPO, "model.pth"), quiet=True)
    assert "nothing was kept" in str(err.value)
    assert fake.count("GET", "/cdn/") == 2  # fetched once more before giving up
    assert cache_files(tmp_path) == []


def test_pinned_hash_mismatch_is_refused_before_downloading(fake, tmp_path):
    fake.add_file(REPO, "model.pth", CONTENT)
    with pytest.raises(ModelError, match="pins"):
        fetch(HubFile(REPO, "model.pth"), pinned_sha256="0" * 64)
    assert fake.count("GET") == 0
    assert cache_files(tmp_path) == []


def test_pinned_hash_is_checked_on_cache_hits(fake):
    fake.add_file(REPO, "model.pth", CONTENT)
    good = hashlib.sha256(CONTENT).hexdigest()
    assert fetch(HubFile(REPO, "model.pth"), pinned_sha256=good, quiet=True).read_bytes() == CONTENT
    # The same cached file under a different pin: refused offline, and deleted.
    with pytest.raises(ModelError, match="pinned"):
        fetch(HubFile(REPO, "model.pth"), pinned_sha256="1" * 64, offline=True)


def test_interrupted_download_is_resumed_with_a_range_request(fake):
    f = fake.add_file(REPO, "big.pth", os.urandom(700_000))
    fake.cut_next_get[fake.cdn_index(f)] = 300_000  # the server hangs up mid-body once
    path = fetch(HubFile(REPO, "big.pth"), quiet=True)
    assert path.read_bytes() == f.content
    gets = [r for r in fake.requests if r.method == "GET"]
    assert len(gets) == 2
    ranges = {k.lower(): v for k, v in gets[1].headers.items()}.get("range")
    # huggingface_hub resumes from the last whole chunk it wrote (64 KiB here; 10 MB by default).
    assert ranges is not None and ranges.startswith("bytes=")
    start = int(ranges[len("bytes="):].rstrip("-"))
    assert 0 < start <= 300_000 and start % (64 * 1024) == 0


def test_short_body_fails_cleanly(fake, tmp_path):
    fake.add_file(REPO, "model.pth", CONTENT, short_body=True)
    with pytest.raises(ModelError, match="incomplete"):
        fetch(HubFile(REPO, "model.pth"), quiet=True)
    assert fake.count("GET", "/cdn/") == 2
    assert cache_files(tmp_path) == []


def test_non_lfs_file_is_checked_against_its_git_hash(fake):
    fake.add_file(REPO, "config.json", b'{"scale": 4}', lfs=False)
    path = fetch(HubFile(REPO, "config.json"), quiet=True)
    assert path.read_bytes() == b'{"scale": 4}'
    assert fake.count("GET", "/cdn/") == 0


def test_http_errors_say_what_is_wrong(fake):
    fake.add_file(REPO, "model.pth", CONTENT)
    with pytest.raises(ModelError, match="repository nobody/nothing was not found"):
        fetch(HubFile("nobody/nothing", "model.pth"))
    with pytest.raises(ModelError, match="missing.pth is not in"):
        fetch(HubFile(REPO, "missing.pth"))
    with pytest.raises(ModelError, match="revision 'v9'"):
        fetch(HubFile(REPO, "model.pth", "v9"))
    fake.fail_requests.add(len(fake.requests) + 1)
    with pytest.raises(ModelError, match="HTTP 500"):
        fetch(HubFile(REPO, "model.pth"))


def test_pinned_commit_revision(fake):
    from hub_server import commit_for

    fake.add_file(REPO, "model.pth", CONTENT)
    commit = commit_for(REPO, "main")
    path = fetch(HubFile(REPO, "model.pth", commit), quiet=True)
    assert commit in str(path) and path.read_bytes() == CONTENT


def test_parse_hf_uri():
    assert parse_hf_uri("hf://a/b/c.pth") == HubFile("a/b", "c.pth", "main")
    assert parse_hf_uri("hf://a/b/sub/dir/c.safetensors@v1.0") == HubFile("a/b", "sub/dir/c.safetensors", "v1.0")
    assert parse_hf_uri("hf://a/b/c.pth@refs/pr/1").revision == "refs/pr/1"
    for bad in ("hf://a/b", "hf://a//c.pth", "hf://a/b/@main", "hf://a/b/../x.pth", "a/b/c"):
        with pytest.raises(UsageError):
            parse_hf_uri(bad)


# ---------------------------------------------------------------- url records (files outside the Hub)


def url_record(url: str, sha256: str | None, name: str = "release-asset") -> ModelRecord:
    return ModelRecord(name=name, tasks=("dejpeg",), arch="FBCNN", scale=1, source="url",
                       filename=url.rsplit("/", 1)[-1], url=url, sha256=sha256, license="Apache-2.0",
                       third_party=True)


def test_url_record_without_sha256_is_rejected_when_defined():
    with pytest.raises(ValueError, match="url record needs sha256"):
        url_record("https://example.org/model.pth", None)
    with pytest.raises(ValueError, match="needs url"):
        url_record("ftp://example.org/model.pth", "0" * 64)
    with pytest.raises(ValueError, match="only a url record"):
        ModelRecord(name="h", tasks=("denoise",), arch="X", scale=1, source="hub", filename="f.pth",
                    repo_id="a/b", url="https://example.org/f.pth")


def test_url_download_is_verified_cached_and_works_offline(fake, tmp_path, monkeypatch):
    url = fake.add_url_file("model.pth", CONTENT)
    record = url_record(url, hashlib.sha256(CONTENT).hexdigest())
    path = ensure_local(record, quiet=True)
    assert path.read_bytes() == CONTENT and str(path).startswith(str(tmp_path / "irx-cache"))
    assert zhub.verified_sha256(path) == record.sha256
    gets = fake.count("GET", "/cdn/")
    assert gets == 1
    fake.stop()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert ensure_local(record) == path  # cached: no request, offline is fine
    other = url_record(url.replace("model.pth", "other.pth"), "1" * 64, name="other")
    with pytest.raises(ModelError, match="offline"):
        ensure_local(other)


def test_url_with_a_wrong_sha256_is_refused_and_nothing_is_left(fake, tmp_path):
    url = fake.add_url_file("model.pth", CONTENT)
    record = url_record(url, hashlib.sha256(b"other bytes").hexdigest())
    with pytest.raises(ModelError, match="SHA-256 differs.*nothing was kept"):
        ensure_local(record, quiet=True)
    cache = tmp_path / "irx-cache" / "url"
    assert not [p for p in cache.rglob("*") if p.is_file()]


def test_damaged_url_file_is_fetched_again(fake, tmp_path):
    url = fake.add_url_file("model.pth", CONTENT)
    record = url_record(url, hashlib.sha256(CONTENT).hexdigest())
    path = ensure_local(record, quiet=True)
    path.write_bytes(CONTENT[:-1] + b"X")
    assert ensure_local(record, quiet=True).read_bytes() == CONTENT
    assert fake.count("GET", "/cdn/") == 2


def test_unreachable_url_gives_one_clear_line(monkeypatch, tmp_path):
    isolate_hub_env(monkeypatch, tmp_path, f"http://127.0.0.1:{free_port()}")
    record = url_record(f"http://127.0.0.1:{free_port()}/model.pth", "0" * 64)
    with pytest.raises(ModelError, match="cannot download release-asset") as err:
        ensure_local(record, quiet=True)
    assert "\n" not in str(err.value)
