"""The one loader of configuration files: gate thresholds, release policy, training settings.

:func:`load` reads a file that a user wrote (``gates.json``, ``--policy``, a training
config), safely and with one-line errors, and returns the typed object its caller
builds from it:

- the file must be a regular file (a folder, a FIFO or a device is refused by type,
  never opened: opening a FIFO blocks), at most :data:`MAX_CONFIG_BYTES`;
- UTF-8 (a byte-order mark is ignored), then JSON, or YAML where the caller allows
  it (YAML 1.1 through PyYAML's safe loader, so no Python objects);
- each key given once (``json`` and PyYAML would silently keep the last), no whole
  number of more than 20 digits (Python refuses more than 4300 with a traceback-prone
  ``ValueError``), no nesting deeper than the parser can take;
- an object (a mapping with text keys) whose keys are all fields of the config's
  dataclass (:func:`unknown_keys`).

Every error is a :class:`~builder.errors.ConfigError` of one line that starts with
the file's path. The caller checks types and ranges (its dataclass knows them) and
words the unknown-key error, so each config keeps the messages its users know.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from builder.errors import ConfigError, FileTooLargeError, SpecialFileError
from builder.files import read_regular, special_kind

MAX_CONFIG_BYTES = 1 << 20  # a config is a few hundred bytes; a megabyte is never one
_MAX_DIGITS = 20  # no setting needs a whole number longer than this

T = TypeVar("T")


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


class _HugeNumber(Exception):
    def __init__(self, digits: int) -> None:
        super().__init__(digits)
        self.digits = digits


def shown(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, so that an error stays one short line."""
    text = repr(value) if not (isinstance(value, int) and value.bit_length() > 200) else "<a huge number>"
    return text if len(text) <= limit else f"{text[: limit - 5]}... ({len(text)} characters)"


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook``: a key given twice is an error."""
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _DuplicateKey(key)
        found[key] = value
    return found


def _whole_number(text: str) -> int:
    """``parse_int``: a whole number of more than :data:`_MAX_DIGITS` digits is refused by name."""
    digits = len(text.lstrip("-"))
    if digits > _MAX_DIGITS:
        raise _HugeNumber(digits)
    return int(text)


def _read(path: Path, what: str, limit: int, special: str) -> str:
    kind = special_kind(path)
    if kind is not None:  # by stat alone: a FIFO is never opened
        raise ConfigError(f"{path} is a {kind}, {special}; expected a file holding {what}")
    if not os.path.lexists(path):
        raise ConfigError(f"{path} does not exist")
    if path.is_symlink() and not path.exists():
        raise ConfigError(f"{path} is a symbolic link to nothing; expected a file holding {what}")
    try:
        raw = read_regular(path, limit)
    except SpecialFileError as exc:
        raise ConfigError(f"{exc}; expected a file holding {what}") from None
    except FileTooLargeError as exc:
        raise ConfigError(f"{path} is too large for a config ({exc}); expected {what}") from None
    except OSError as exc:
        raise ConfigError(f"{path} cannot be read ({exc.strerror or exc})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path} is not UTF-8 ({exc.reason} at byte {exc.start}); save it as UTF-8"
        ) from None


def _parse_yaml(text: str) -> Any:
    import yaml

    class StrictLoader(yaml.SafeLoader):
        """PyYAML's safe loader, refusing a key given twice."""

    def mapping(loader: StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
        loader.flatten_mapping(node)
        found: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if key in found:
                raise _DuplicateKey(str(key))
            found[key] = loader.construct_object(value_node, deep=True)
        return found

    StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    return yaml.load(text, Loader=StrictLoader)


def read_mapping(
    path: Path,
    what: str,
    item: str,
    *,
    yaml: bool = False,
    limit: int = MAX_CONFIG_BYTES,
    special: str = "not a regular file",
) -> dict[str, Any]:
    """The object a config file holds, read as the module docstring says.

    Args:
        path: the file.
        what: what the file should hold, with its article (``"an object of gate thresholds"``).
        item: what one of its values is (``"gate threshold"``).
        yaml: read YAML (of which JSON is a subset) instead of JSON.
        limit: the largest file read, in bytes.
        special: how the refusal of a folder or a FIFO words it (each config keeps its wording).

    Raises:
        ConfigError: any of the module docstring's refusals, one line starting with ``path``.
    """
    text = _read(path, what, limit, special)
    try:
        if yaml:
            data = _parse_yaml(text)
        else:
            data = json.loads(text, object_pairs_hook=_no_duplicates, parse_int=_whole_number)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not JSON ({exc.msg} at line {exc.lineno}); expected {what}") from None
    except RecursionError:
        kind = "YAML" if yaml else "JSON"
        raise ConfigError(f"{path}: {kind} nested too deeply to read; expected {what}") from None
    except _DuplicateKey as exc:
        raise ConfigError(f"{path}: setting {shown(exc.key, 40)} is given twice; keep one") from None
    except _HugeNumber as exc:
        raise ConfigError(
            f"{path}: a whole number of {exc.digits} digits is not a {item}; expected {what}"
        ) from None
    except Exception as exc:  # PyYAML's errors (a scanner, parser or constructor error)
        if not yaml:
            raise
        detail = " ".join(str(exc).split())  # PyYAML's messages span lines: one line here
        detail = detail if len(detail) <= 200 else f"{detail[:195]}..."
        raise ConfigError(f"{path} is not YAML/JSON ({detail})") from None
    if yaml and data is not None and isinstance(data, dict) and not all(isinstance(k, str) for k in data):
        raise ConfigError(f"{path}: every setting name must be text; expected {what}")
    if not isinstance(data, dict):
        found = type(data).__name__
        raise ConfigError(
            f"{path} holds a {'YAML' if yaml else 'JSON'} {found}; expected {what}, found {found}"
        )
    return data


def unknown_keys(mapping: Mapping[str, Any], config: type[Any]) -> list[str]:
    """The keys of ``mapping`` that are not fields of the dataclass ``config``, sorted."""
    known = {f.name for f in dataclasses.fields(config)}
    return sorted(set(mapping) - known)


def load(
    path: Path,
    what: str,
    item: str,
    build: Callable[[dict[str, Any]], T],
    *,
    yaml: bool = False,
    special: str = "not a regular file",
) -> T:
    """The typed config in ``path``: :func:`read_mapping`, then ``build`` (which checks keys,
    types and ranges); an error of ``build`` is prefixed with the file's path.

    Raises:
        ConfigError: one line starting with ``path``.
    """
    mapping = read_mapping(path, what, item, yaml=yaml, special=special)
    try:
        return build(mapping)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
