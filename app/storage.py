"""Where uploaded build files live: a small storage interface and its local implementation.

Blobs are content-addressed: a blob's key is the sha256 of its bytes, so the same file
uploaded twice (or for two app versions) is stored once, and a key never names two contents.
An upload is first *staged* (streamed to a temporary file while its sha256 and size are
computed, the size limit enforced as it goes), then *committed* (an atomic rename into
place) or discarded. Nothing the client sends (file names included) ever becomes a path.

```
<data_dir>/builds/ab/abcdef…     one blob, named by its sha256
<data_dir>/builds/tmp/…          uploads being received (same filesystem: rename is atomic)
```
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import secrets
import time
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

READ_CHUNK_BYTES = 1024 * 1024
_KEY = re.compile(r"^[0-9a-f]{64}$")


class StorageError(Exception):
    """Base of the storage's own errors."""


class TooLarge(StorageError):
    """The stream went past the size limit; nothing was kept."""

    def __init__(self, limit_bytes: int) -> None:
        super().__init__(f"the upload exceeds the limit of {limit_bytes} bytes")
        self.limit_bytes = limit_bytes


class BlobMissing(StorageError, LookupError):
    """No blob is stored under this key."""


@dataclass(frozen=True)
class StoredBlob:
    key: str
    sha256: str
    size: int


class StagedBlob(Protocol):
    """An upload received in full but not yet visible under its key."""

    @property
    def sha256(self) -> str: ...

    @property
    def size(self) -> int: ...

    async def commit(self) -> StoredBlob:
        """Make the blob readable under its key (idempotent when it is already there)."""
        ...

    async def discard(self) -> None: ...


class BlobStorage(Protocol):
    async def stage(self, chunks: AsyncIterable[bytes], *, limit_bytes: int) -> StagedBlob:
        """Receive a stream; raises `TooLarge` (and keeps nothing) past `limit_bytes`."""
        ...

    async def read(self, key: str) -> AsyncIterator[bytes]:
        """The blob's bytes in chunks; `BlobMissing` if there is none."""
        ...

    async def exists(self, key: str) -> bool: ...

    async def delete(self, key: str) -> None:
        """Forget the blob (nothing happens when it is already gone)."""
        ...


def check_key(key: str) -> str:
    """Keys are sha256 hex digests, and nothing else reaches the file system."""
    if not _KEY.fullmatch(key):
        raise ValueError(f"not a storage key (a sha256 hex digest): {key!r}")
    return key


@dataclass
class _LocalStaged:
    storage: LocalBlobStorage
    temp: Path
    sha256: str
    size: int

    async def commit(self) -> StoredBlob:
        final = self.storage.path_of(self.sha256)
        await asyncio.to_thread(_install, self.temp, final)
        return StoredBlob(key=self.sha256, sha256=self.sha256, size=self.size)

    async def discard(self) -> None:
        self.temp.unlink(missing_ok=True)


def _install(temp: Path, final: Path) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists():  # the same content is already stored
        temp.unlink(missing_ok=True)
        return
    with temp.open("rb") as handle:
        os.fsync(handle.fileno())
    os.replace(temp, final)
    with contextlib.suppress(OSError):  # make the rename itself durable
        fd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _clear_stale(temp_dir: Path, older_than_s: float) -> int:
    if not temp_dir.is_dir():
        return 0
    cutoff = time.time() - older_than_s
    cleared = 0
    for path in temp_dir.iterdir():
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime < cutoff:
                path.unlink()
                cleared += 1
    return cleared


class LocalBlobStorage:
    """Blobs as files under `root`, each named by its sha256 (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def __repr__(self) -> str:
        return f"LocalBlobStorage(root={str(self.root)!r})"

    def path_of(self, key: str) -> Path:
        check_key(key)
        return self.root / key[:2] / key

    async def stage(self, chunks: AsyncIterable[bytes], *, limit_bytes: int) -> _LocalStaged:
        temp_dir = self.root / "tmp"
        temp_dir.mkdir(parents=True, exist_ok=True)
        temp = temp_dir / f"upload-{secrets.token_hex(8)}"
        digest = hashlib.sha256()
        size = 0
        try:
            with temp.open("xb") as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > limit_bytes:
                        raise TooLarge(limit_bytes)
                    digest.update(chunk)
                    out.write(chunk)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return _LocalStaged(self, temp, digest.hexdigest(), size)

    async def read(self, key: str) -> AsyncIterator[bytes]:
        path = self.path_of(key)
        try:
            handle = await asyncio.to_thread(path.open, "rb")
        except FileNotFoundError:
            raise BlobMissing(key) from None
        return _chunks(handle)

    async def exists(self, key: str) -> bool:
        return self.path_of(key).is_file()

    async def clear_stale_uploads(self, *, older_than_s: float) -> int:
        """Delete temporary files of uploads that died (a crash mid-upload); returns how many.
        Only old ones: another replica sharing the directory may be receiving one now."""
        return await asyncio.to_thread(_clear_stale, self.root / "tmp", older_than_s)

    async def delete(self, key: str) -> None:
        self.path_of(key).unlink(missing_ok=True)


async def _chunks(handle: BinaryIO) -> AsyncIterator[bytes]:
    try:
        while chunk := await asyncio.to_thread(handle.read, READ_CHUNK_BYTES):
            yield chunk
    finally:
        handle.close()
