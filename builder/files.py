"""Files on disk: reading them safely, and the few file facts every stage shares.

A corpus or a release may hold a FIFO, a device or a folder where a file is expected;
opening a FIFO for reading blocks until a writer comes. Everything that reads a corpus
or a release file goes through :func:`read_regular` (:func:`read_file`, :func:`load_json`).
Also here: folders the Hub would refuse (:func:`crowded_folders`), the release digest
(:func:`files_digest`), the build's commit journal (:func:`journal_path`,
:func:`journal_findings`) and the card templates' folder (:data:`CARDS_DIR`).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from builder.domain import MAX_FILES_PER_FOLDER
from builder.errors import ConfigError, FileTooLargeError, SpecialFileError

_KINDS = {
    stat.S_IFDIR: "folder",
    stat.S_IFIFO: "FIFO",
    stat.S_IFCHR: "character device",
    stat.S_IFBLK: "block device",
    stat.S_IFSOCK: "socket",
}


def mode_kind(mode: int) -> str:
    """What a file of ``st_mode`` ``mode`` is, in words (``"FIFO"``, ``"folder"``, ``"special file"``)."""
    return _KINDS.get(stat.S_IFMT(mode), "special file")


def special_kind(path: Path) -> str | None:
    """What ``path`` is when it exists but is not a regular file (``"FIFO"``, ``"folder"``...).

    Uses ``stat`` only, so a FIFO or a device is never opened (opening a FIFO for
    reading blocks until a writer comes).
    """
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    return None if stat.S_ISREG(mode) else mode_kind(mode)


def read_regular(path: Path, limit: int | None = None) -> bytes:
    """The bytes of a corpus file that must be a regular file; every other kind is refused.

    The file is opened non-blocking and checked with ``fstat`` before any read, so
    a FIFO, a device or a folder in its place is an error, never a hang; a file
    over ``limit`` bytes is refused before any byte is read.

    Raises:
        SpecialFileError: ``path`` is a FIFO, a device, a socket or a folder.
        FileTooLargeError: ``path`` holds more than ``limit`` bytes.
        OSError: ``path`` cannot be opened.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = mode_kind(info.st_mode)
            raise SpecialFileError(f"{path} is a {kind}, not a regular file")
        if limit is not None and info.st_size > limit:
            raise FileTooLargeError(f"{info.st_size} bytes; at most {limit} are read")
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_file(path: Path) -> bytes | None:
    """The bytes of a release file, or ``None`` when it is not a regular file or cannot be read.

    Read with :func:`builder.files.read_regular`: a FIFO, a device or a folder in a
    file's place is refused by type, never opened for a blocking read, so nothing
    in a release can hang the audit.
    """
    try:
        return read_regular(path)
    except OSError:
        return None


def load_json(path: Path, what: str = "JSON object") -> dict[str, Any]:
    """Read a JSON object, with a one-line error for anything else.

    The file must be a regular file (a FIFO, a device or a folder is refused by
    type, never opened for a blocking read), UTF-8, JSON, no deeper than Python's
    parser can nest, and an object.

    Args:
        path: the file.
        what: what the file should hold, for the message (``"gate thresholds"``).

    Raises:
        ConfigError: any of the above, one line naming the file.
    """
    try:
        data = json.loads(read_regular(path).decode("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist") from None
    except SpecialFileError as exc:
        raise ConfigError(f"{exc}; expected a file holding a {what}") from None
    except OSError as exc:
        raise ConfigError(f"{path} cannot be read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8; expected a {what}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise ConfigError(f"{path} is JSON nested too deeply to read; expected a {what}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} holds a JSON {type(data).__name__}; expected a {what}")
    return data


def tree(root: Path) -> Iterator[tuple[str, Path, bool]]:
    """Every entry under ``root`` as ``(relative POSIX path, path, is a real folder)``, in the
    order of sorted paths (part by part, as ``sorted(root.rglob("*"))`` gives them), symbolic
    links listed but never followed.

    Only the names of the folders on the way down are held, not a list of every path: at
    10,000 tiles such a list was the largest thing a build held while it hashed its release.
    """
    with os.scandir(root) as entries:
        names = sorted((entry.name, entry.is_dir(follow_symlinks=False)) for entry in entries)
    for name, folder in names:
        path = root / name
        yield name, path, folder
        if folder:
            yield from ((f"{name}/{rel}", sub, deeper) for rel, sub, deeper in tree(path))


def raise_error(exc: OSError) -> None:
    """``os.walk``'s ``onerror``: a folder that cannot be listed is an error, never skipped (a
    skipped folder would be a folder nothing checked)."""
    raise exc


def crowded_folders(root: Path) -> Iterator[str]:
    """Every folder under ``root`` (itself included, symbolic links not followed) with more
    entries than the Hub accepts, in path order.

    One folder's names are held at a time: a list of every path under ``root`` (``rglob``) was
    the largest thing the audit of a 10,000-tile release held.
    """
    for folder, dirs, files in os.walk(root, followlinks=False, onerror=raise_error):
        dirs.sort()  # walked in path order, as sorted paths are
        n = len(dirs) + len(files)
        if n > MAX_FILES_PER_FOLDER:
            where = Path(folder).relative_to(root).as_posix() or "."
            yield f"{where}/: {n} entries; the Hub refuses more than {MAX_FILES_PER_FOLDER} per folder"


def files_digest(files: Mapping[str, str]) -> str:
    """The release digest of a ``{relative path: sha256}`` map (the report's ``files``): the
    SHA-256 of its ``path<TAB>sha256<LF>`` lines in path order, hashed line by line."""
    digest = hashlib.sha256()
    for rel in sorted(files):
        digest.update(f"{rel}\t{files[rel]}\n".encode())
    return digest.hexdigest()


def journal_path(release: Path) -> Path:
    """Where the commit journal of ``release`` lives while the release is being put in place."""
    return release.with_name(f".{release.name}.commit")


def journal_findings(release: Path) -> list[str]:
    """A finding when the journal of an unfinished commit lies beside ``release``."""
    if os.path.lexists(journal_path(release)):
        return [
            f"{release.name}: a build was killed while putting this release and its report in place; "
            "run the build again to finish it"
        ]
    return []


def _cards_dir() -> Path:
    """The card templates and licence texts: ``builder/_cards/`` in an installed wheel (package data
    mapped from ``cards/``, see pyproject.toml), else ``cards/`` beside ``builder/`` in a checkout."""
    if "CROPMARK_CARDS_DIR" in os.environ:
        return Path(os.environ["CROPMARK_CARDS_DIR"])
    here = Path(__file__).resolve().parent  # builder/
    installed = here / "_cards"
    return installed if (installed / "dataset_card.md.j2").is_file() else here.parent / "cards"


CARDS_DIR = _cards_dir()
