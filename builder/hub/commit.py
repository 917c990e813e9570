"""A commit as the Hub's commit endpoint takes it, streamed, every byte checked against the gate.

:func:`post_commit` sends the commit to the Hub's commit endpoint
(``POST /api/{type}s/{id}/commit/{revision}``, the NDJSON body huggingface_hub's
``_commit_api._prepare_commit_payload`` builds) as a stream with its exact
``Content-Length``: huggingface_hub's ``create_commit`` joins the whole body, every
regular file base64-encoded, in memory first. Every file is read through
:class:`VerifiedFile`, which hashes the bytes it hands out and refuses to hand out the
last ones unless their SHA-256 is the one planned: what reaches the Hub is exactly
what the gate hashed, or the request is cut short and nothing is committed.

Every request goes through the Hub client (:func:`builder.hub.client.post`): its endpoint, its
token. This module is not shipped with the Space (it only downloads).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from builder.hub import client
from builder.hub.client import SourceChangedError

if TYPE_CHECKING:
    from huggingface_hub import HfApi

_BLOCK = 3 << 18  # 768 KiB: a multiple of 3, so base64 of consecutive blocks concatenates


def validate_readme(api: HfApi, source: Path | bytes, repo_type: str) -> None:
    """Ask the Hub whether it accepts a README's metadata, before anything is uploaded.

    The same request ``create_commit`` makes later (``POST /api/validate-yaml``), but its
    status is checked before its body is read, so an HTML error page is a transient
    failure and a refusal carries the Hub's error list (:func:`builder.hub.client.classify`).
    """
    content = source if isinstance(source, bytes) else source.read_bytes()
    client.post(api, "/api/validate-yaml", json={"content": content.decode("utf-8"), "repoType": repo_type})


# -- what is sent ----------------------------------------------------------------------------------


class VerifiedFile(io.BufferedIOBase):
    """A file read as the bytes a gate hashed, or not at all.

    Reads never go past ``size``; the bytes handed out are hashed in order, and the read
    that would hand out the last of them raises :class:`SourceChangedError` instead when
    their SHA-256 is not ``sha256`` (or the file got shorter). Seeks (huggingface_hub
    seeks to measure the length and to cut multipart slices) are free; a read that is
    neither the next one in order nor from the start is refused, so no byte goes out
    unhashed.
    """

    def __init__(self, path: Path, repo_path: str, size: int, sha256: str) -> None:
        super().__init__()
        self._path = path
        self._file: io.BufferedReader | None = None  # opened at the first read: thousands may wait
        self._where, self._size, self._sha256 = repo_path, size, sha256
        self._pos = self._hashed = 0
        self._hash = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def _changed(self, why: str) -> SourceChangedError:
        return SourceChangedError(
            f"{self._where} changed on disk while publishing ({why}): the Hub never got it whole; "
            "nothing of it was committed"
        )

    def read(self, size: int | None = -1) -> bytes:
        want = self._size - self._pos if size is None or size < 0 else min(size, self._size - self._pos)
        if want <= 0:
            return b""
        if self._pos == 0 and self._hashed:
            self._hash, self._hashed = hashlib.sha256(), 0  # read again from the start
        if self._pos != self._hashed:
            raise self._changed(f"a read at byte {self._pos} out of order")
        handle = self._file = self._file or self._path.open("rb")
        handle.seek(self._pos)
        data = handle.read(want)
        if len(data) < want:
            raise self._changed(f"it is shorter than the {self._size} bytes planned")
        self._hash.update(data)
        self._pos = self._hashed = self._pos + len(data)
        if self._pos == self._size:
            handle.close()
            self._file = None
            if self._hash.hexdigest() != self._sha256:
                raise self._changed("its SHA-256 is not the one the gate computed")
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        super().close()


@dataclass(frozen=True)
class Addition:
    """A file of a commit: where it goes, and how huggingface_hub's preupload said to send it."""

    path: str
    size: int
    sha256: str
    source: Path | bytes
    lfs: bool


def _b64_length(size: int) -> int:
    return 4 * -(-size // 3)


def _stream_base64(addition: Addition) -> Iterator[bytes]:
    if isinstance(addition.source, bytes):
        yield base64.b64encode(addition.source)
        return
    with VerifiedFile(addition.source, addition.path, addition.size, addition.sha256) as handle:
        while block := handle.read(_BLOCK):
            yield base64.b64encode(block)


def commit_body(
    summary: str,
    description: str,
    parent_commit: str | None,
    additions: Sequence[Addition],
    deletions: Sequence[str],
) -> tuple[int, Callable[[], Iterator[bytes]]]:
    """The commit's NDJSON body: its length in bytes, and a function that streams it.

    The lines are those of huggingface_hub's ``_prepare_commit_payload``: a header, then
    ``file`` (base64 content), ``lfsFile`` (SHA-256 and size) or ``deletedFile``.
    """
    header: dict[str, str] = {"summary": summary, "description": description}
    if parent_commit is not None:
        header["parentCommit"] = parent_commit
    parts: list[bytes | Addition] = [json.dumps({"key": "header", "value": header}).encode() + b"\n"]
    for add in additions:
        if add.lfs:
            value = {"path": add.path, "algo": "sha256", "oid": add.sha256, "size": add.size}
            parts.append(json.dumps({"key": "lfsFile", "value": value}).encode() + b"\n")
        else:
            name = json.dumps(add.path).encode()
            parts += [b'{"key": "file", "value": {"path": ' + name + b', "encoding": "base64", "content": "']
            parts += [add, b'"}}\n']
    for deleted in deletions:
        parts.append(json.dumps({"key": "deletedFile", "value": {"path": deleted}}).encode() + b"\n")
    length = sum(len(p) if isinstance(p, bytes) else _b64_length(p.size) for p in parts)

    def stream() -> Iterator[bytes]:
        for part in parts:
            if isinstance(part, bytes):
                yield part
            else:
                yield from _stream_base64(part)

    return length, stream


def post_commit(
    api: HfApi,
    repo_id: str,
    repo_type: str,
    additions: Sequence[Addition],
    deletions: Sequence[str],
    *,
    summary: str,
    description: str,
    parent_commit: str | None,
) -> str:
    """Make one commit on ``main``, its body streamed (see "The commit" above); its commit id."""
    from urllib.parse import quote

    length, stream = commit_body(summary, description, parent_commit, additions, deletions)
    headers = {"Content-Type": "application/x-ndjson", "Content-Length": str(length)}
    path = f"/api/{repo_type}s/{repo_id}/commit/{quote('main', safe='')}"
    response = client.post(api, path, headers=headers, content=stream(), endpoint_name="commit")
    oid: str = response.json()["commitOid"]
    return oid
