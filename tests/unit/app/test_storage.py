"""The local content-addressed blob storage: staging, size limit, commit, read, delete."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.storage import BlobMissing, LocalBlobStorage, TooLarge, check_key


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def read_all(storage: LocalBlobStorage, key: str) -> bytes:
    return b"".join([chunk async for chunk in await storage.read(key)])


async def test_stage_commit_read_delete(tmp_path: Path) -> None:
    storage = LocalBlobStorage(tmp_path)
    staged = await storage.stage(chunks(b"hello ", b"world"), limit_bytes=100)
    digest = hashlib.sha256(b"hello world").hexdigest()
    assert (staged.sha256, staged.size) == (digest, 11)
    assert not await storage.exists(digest)  # staged is not visible yet
    blob = await staged.commit()
    assert blob.key == digest
    assert (tmp_path / digest[:2] / digest).read_bytes() == b"hello world"
    assert await read_all(storage, digest) == b"hello world"
    await storage.delete(digest)
    await storage.delete(digest)  # already gone: nothing happens
    with pytest.raises(BlobMissing):
        await storage.read(digest)
    assert list((tmp_path / "tmp").iterdir()) == []


async def test_same_content_twice_is_one_file(tmp_path: Path) -> None:
    storage = LocalBlobStorage(tmp_path)
    first = await (await storage.stage(chunks(b"same"), limit_bytes=10)).commit()
    second = await (await storage.stage(chunks(b"same"), limit_bytes=10)).commit()
    assert first == second
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [first.key]


async def test_past_the_limit_nothing_is_kept(tmp_path: Path) -> None:
    storage = LocalBlobStorage(tmp_path)
    with pytest.raises(TooLarge) as caught:
        await storage.stage(chunks(b"x" * 6, b"x" * 6), limit_bytes=10)
    assert caught.value.limit_bytes == 10
    assert list((tmp_path / "tmp").iterdir()) == []


async def test_discard_forgets_a_staged_upload(tmp_path: Path) -> None:
    storage = LocalBlobStorage(tmp_path)
    staged = await storage.stage(chunks(b"abc"), limit_bytes=10)
    await staged.discard()
    assert list((tmp_path / "tmp").iterdir()) == []
    assert not await storage.exists(staged.sha256)


@pytest.mark.parametrize("key", ["../../etc/passwd", "AB" * 32, "ab" * 31, "", "ab/" + "c" * 61])
def test_only_sha256_keys_reach_the_file_system(key: str) -> None:
    with pytest.raises(ValueError, match="not a storage key"):
        check_key(key)


async def test_stale_uploads_are_cleared_fresh_ones_kept(tmp_path: Path) -> None:
    storage = LocalBlobStorage(tmp_path)
    (tmp_path / "tmp").mkdir()
    old, new = tmp_path / "tmp" / "upload-old", tmp_path / "tmp" / "upload-new"
    old.write_bytes(b"x")
    new.write_bytes(b"y")
    a_day_ago = time.time() - 2 * 86400
    os.utime(old, (a_day_ago, a_day_ago))
    assert await storage.clear_stale_uploads(older_than_s=86400) == 1
    assert [p.name for p in (tmp_path / "tmp").iterdir()] == ["upload-new"]
