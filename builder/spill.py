"""Sequences a build keeps on disk instead of in memory: what it holds for every tile until the report.

A build holds a private record for every published tile (its gates' values and
thresholds, the halves statistics, its rows and copies) from the moment the tile is
cut until the report is written; held as Python objects, they were most of what made a
build's peak memory grow with its tiles (``benchmarks/bench_build.py`` measures it).
:class:`Spilled` keeps them pickled in an anonymous temporary file (on
Linux ``O_TMPFILE``: it has no name, and the kernel frees it when the build exits, however
it exits) and only their offsets in memory (8 bytes a record); :class:`Mapped` is the
report's view of them, made one record at a time.

Both read as ordinary sequences (``len``, indexing, iteration, repeated and nested) and
pickle as a tuple of their items.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import weakref
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar, overload

T = TypeVar("T")
U = TypeVar("U")


def _where(exc: OSError, folder: Path) -> OSError:
    """``exc`` naming ``folder`` and what the file was for (a full disk, a quota, no inodes)."""
    return OSError(exc.errno, f"{exc.strerror} (the build's temporary records)", str(folder))


class Spilled(Sequence[T], Generic[T]):
    """An append-only sequence whose items live pickled in an unnamed file in ``folder``."""

    def __init__(self, folder: Path, items: Iterable[T] = ()) -> None:
        self._folder = folder
        try:
            self._file = tempfile.TemporaryFile(dir=folder)  # noqa: SIM115 (lives as long as the sequence)
        except OSError as exc:  # not the name tempfile tried: the folder is what the user can fix
            raise _where(exc, folder) from None
        self._close = weakref.finalize(self, self._file.close)  # closed when the sequence is freed
        self._fd = self._file.fileno()
        self._ends = array("Q", [0])  # item i is bytes _ends[i] to _ends[i + 1]
        for item in items:
            self.append(item)

    def append(self, item: T) -> None:
        data = pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
        end = self._ends[-1]
        fd = self._open_fd()
        try:
            written = os.pwrite(fd, data, end)
            while written < len(data):  # a short write (a signal, a full pipe): write the rest
                written += os.pwrite(fd, data[written:], end + written)
        except OSError as exc:  # the file has no name: say where it is (a full disk, a quota)
            raise _where(exc, self._folder) from None
        self._ends.append(end + len(data))

    def close(self) -> None:
        """Free the file now (reading or appending afterwards raises ``ValueError``); otherwise it
        is freed with the sequence."""
        self._close()
        self._fd = -1  # never a closed descriptor's number, which the next open file may reuse

    def _open_fd(self) -> int:
        if self._fd < 0:
            raise ValueError(f"read after close: the temporary records in {self._folder} were freed")
        return self._fd

    def retain(self, keep: Callable[[T], bool]) -> None:
        """Keep only the items for which ``keep`` is true, in order (a new file replaces the old)."""
        fresh: Spilled[T] = Spilled(self._folder, (item for item in self if keep(item)))
        self._close()
        fresh._close.detach()
        self._file, self._fd, self._ends = fresh._file, fresh._fd, fresh._ends
        self._close = weakref.finalize(self, self._file.close)

    def _read(self, index: int) -> T:
        start, end = self._ends[index], self._ends[index + 1]
        data = os.pread(self._open_fd(), end - start, start)
        if len(data) != end - start:
            raise OSError(f"spill file shorter than written ({len(data)} of {end - start} bytes)")
        item: T = pickle.loads(data)
        return item

    def __len__(self) -> int:
        return len(self._ends) - 1

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> list[T]: ...

    def __getitem__(self, index: int | slice) -> T | list[T]:
        if isinstance(index, slice):
            return [self._read(i) for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("spilled sequence index out of range")
        return self._read(index)

    def __iter__(self) -> Iterator[T]:
        return (self._read(i) for i in range(len(self)))

    def __reduce__(self) -> tuple[Any, ...]:
        return (tuple, (tuple(self),))

    def __repr__(self) -> str:
        return f"<Spilled: {len(self)} items in a temporary file in {self._folder}>"


class Mapped(Sequence[U], Generic[T, U]):
    """``make`` applied to each item of ``items`` when it is read; nothing is kept."""

    def __init__(self, items: Sequence[T], make: Callable[[T], U]) -> None:
        self._items, self._make = items, make

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, index: int) -> U: ...

    @overload
    def __getitem__(self, index: slice) -> list[U]: ...

    def __getitem__(self, index: int | slice) -> U | list[U]:
        if isinstance(index, slice):
            return [self._make(item) for item in self._items[index]]
        return self._make(self._items[index])

    def __iter__(self) -> Iterator[U]:
        return (self._make(item) for item in self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, (str, bytes)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<Mapped: {len(self)} items made from {self._items!r}>"

    def close(self) -> None:
        """Close what the items are read from, if it can be closed (a :class:`Spilled`)."""
        close = getattr(self._items, "close", None)
        if callable(close):
            close()

    def __reduce__(self) -> tuple[Any, ...]:
        return (tuple, (tuple(self),))
