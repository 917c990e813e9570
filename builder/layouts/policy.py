"""Release policy: what a release of this family may publish about place and time.

The cropmark release publishes none of it (leaked site locations invite
looting): :data:`CROPMARK`. Sibling datasets of the same family may allow some,
through a ``policy.json`` passed to ``cropmark build --policy``::

    {"name": "open-landmarks", "coordinates": true, "timestamps": true,
     "source_ids": true, "sidecars": true}

Layouts ask :func:`require` before writing a field the policy governs, and the
layout audits refuse a release that carries a field its policy forbids.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from builder.config import read_mapping, unknown_keys
from builder.errors import ConfigError, PolicyError


@dataclass(frozen=True, slots=True)
class Policy:
    """What may leave the private side.

    Attributes:
        name: a label for reports and errors.
        coordinates: per-pixel or per-tile coordinates and the CRS.
        timestamps: acquisition times.
        source_ids: source database record and scene identifiers.
        sidecars: per-tile sidecar JSON (coordinates, scene id, label statistics)
            in the public output; needs ``coordinates`` and ``source_ids`` too.
    """

    name: str = "cropmark"
    coordinates: bool = False
    timestamps: bool = False
    source_ids: bool = False
    sidecars: bool = False

    def check(self) -> None:
        if self.sidecars and not (self.coordinates and self.source_ids):
            raise ConfigError(
                f"policy {self.name!r}: sidecars hold coordinates and scene ids; "
                "set coordinates and source_ids to true as well, or sidecars to false"
            )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


CROPMARK = Policy()


def require(policy: Policy, field: str, what: str) -> None:
    """Refuse, before anything is written, a layout option that needs ``field``.

    Raises:
        PolicyError: the policy forbids ``field``.
    """
    if not getattr(policy, field):
        raise PolicyError(
            f"policy {policy.name!r} forbids {field.replace('_', ' ')}, but {what} would write them; "
            f"drop that option or build under a policy that allows {field}"
        )


def load(path: Path | None) -> Policy:
    """The policy in ``path`` (JSON), or :data:`CROPMARK` when ``path`` is None.

    Raises:
        ConfigError: a file :func:`builder.config.read_mapping` refuses, an unknown key or a
            value that is not a boolean (the name: text).
    """
    if path is None:
        return CROPMARK
    try:
        raw = read_mapping(path, "a policy object of booleans", "policy setting")
    except ConfigError as exc:
        raise ConfigError(f"policy file: {exc}") from None
    known = {f.name for f in fields(Policy)}
    unknown = unknown_keys(raw, Policy)
    if unknown:
        raise ConfigError(f"policy file {path}: unknown key(s) {unknown}; known: {sorted(known)}")
    for key, value in raw.items():
        wanted = str if key == "name" else bool
        if not isinstance(value, wanted):
            raise ConfigError(f"policy file {path}: {key} is {value!r}; expected a {wanted.__name__}")
    policy = Policy(**raw)
    policy.check()
    return policy
