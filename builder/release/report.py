"""The private build report: :class:`BuildReport`, the contract between the build and its readers.

``cropmark build`` writes it to ``<version>.private/report.json``; the cards, the
audits, the layouts, the bundles and the CLI read it by attribute. Every part is a
frozen dataclass; :meth:`BuildReport.to_json` writes the ``report.json`` bytes
(``json.dumps(indent=1, sort_keys=True)`` plus a newline) and
:meth:`BuildReport.from_json` reads them back, refusing a malformed report with
one line that names the field (never a value of it: the report is private).

Three parts stay JSON objects on purpose, because their shape belongs to the
module that writes them: a tile's per-gate results (:mod:`builder.quality.gates`), what
reading its raw bands did (:mod:`builder.quality.sides`) and a sibling layout's summary
(:mod:`builder.layouts`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

from builder.domain import Label, Reason, Split
from builder.errors import ConfigError
from builder.ingest.corpus import Site
from builder.layouts import registry
from builder.layouts.policy import Policy
from builder.quality.thresholds import GATES
from builder.records import Rejection

# The JSON a module writes and owns (see the module docstring).
JsonObject = dict[str, Any]

_T = TypeVar("_T")


class ReportError(ConfigError):
    """A report that ``cropmark build`` did not write: one line naming the field."""


def _fail(problem: str) -> ReportError:
    return ReportError(problem)


def _obj(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise _fail(f"{where} is not an object")
    return cast(Mapping[str, Any], value)


def _field(data: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in data:
        raise _fail(f"{where} has no field {key!r}")
    return data[key]


def _str(data: Mapping[str, Any], key: str, where: str) -> str:
    value = _field(data, key, where)
    if not isinstance(value, str):
        raise _fail(f"{where} has no text field {key!r}")
    return value


def _opt_str(data: Mapping[str, Any], key: str, where: str) -> str | None:
    return None if data.get(key) is None else _str(data, key, where)


def _int(data: Mapping[str, Any], key: str, where: str) -> int:
    value = _field(data, key, where)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _fail(f"{where} field {key!r} is not a count")
    return value


def _number(data: Mapping[str, Any], key: str, where: str) -> float:
    value = _field(data, key, where)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(f"{where} field {key!r} is not a number")
    return value  # an int stays an int: report.json is written back byte for byte


def _opt_number(data: Mapping[str, Any], key: str, where: str) -> float | None:
    return None if data.get(key) is None else _number(data, key, where)


def _bool(data: Mapping[str, Any], key: str, where: str) -> bool:
    value = _field(data, key, where)
    if not isinstance(value, bool):
        raise _fail(f"{where} field {key!r} is not true or false")
    return value


def _list(data: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = _field(data, key, where)
    if not isinstance(value, list):
        raise _fail(f"{where} field {key!r} is not a list")
    return value


def _texts(data: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    values = _list(data, key, where)
    if not all(isinstance(v, str) for v in values):
        raise _fail(f"{where} field {key!r} is not a list of texts")
    return tuple(values)


def _map(data: Mapping[str, Any], key: str, where: str, value: Callable[[Any, str], _T]) -> dict[str, _T]:
    inner = _obj(_field(data, key, where), f"{where} field {key!r}")
    return {k: value(v, f"{where} field {key!r}") for k, v in inner.items()}


def _count(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _fail(f"{where} holds a value that is not a count")
    return value


def _counts(value: Any, where: str) -> dict[str, int]:
    return {k: _count(v, where) for k, v in _obj(value, where).items()}


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _fail(f"{where} holds a value that is not text")
    return value


def _opt_obj(data: Mapping[str, Any], key: str, where: str) -> JsonObject | None:
    value = data.get(key)
    return None if value is None else dict(_obj(value, f"{where} field {key!r}"))


def _split(value: Any, where: str) -> Split:
    if value not in ("train", "eval"):
        raise _fail(f"{where} names no split (train or eval)")
    return cast(Split, value)


def _label(value: Any, where: str) -> Label:
    if value not in ("No", "Yes"):
        raise _fail(f"{where} has no label Yes or No")
    return cast(Label, value)


@dataclass(frozen=True, slots=True)
class Counts:
    """What the build counted, per split: rows read, rejections per reason, published tiles per label.

    Attributes:
        rows: manifest rows read per split, readable or not.
        rejected: per reason (its value), rejections per split.
        published: per split, published tiles per label.
        tiles: published tiles per split.
    """

    rows: dict[str, int]
    rejected: dict[str, dict[str, int]]
    published: dict[str, dict[str, int]]
    tiles: dict[str, int]

    def to_dict(self) -> JsonObject:
        return {
            "rows": self.rows,
            "rejected": self.rejected,
            "published": self.published,
            "tiles": self.tiles,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "counts") -> Counts:
        return cls(
            rows=_map(data, "rows", where, _count),
            rejected=_map(data, "rejected", where, _counts),
            published=_map(data, "published", where, _counts),
            tiles=_map(data, "tiles", where, _count),
        )


@dataclass(frozen=True, slots=True)
class TileRecord:
    """The private record of one published tile (:class:`~builder.records.PrivateTile` and its site)."""

    split: Split
    file_name: str
    label: Label
    source: str
    source_sha256: str
    published_sha256: str
    cut: Literal["lossless", "reencoded"]
    rows: tuple[str, ...]
    gates: tuple[JsonObject, ...] = ()  # each gate's values, thresholds and verdict (builder.quality.gates)
    bands: JsonObject | None = None  # what reading the raw bands did, if any
    cut_detail: str = ""
    content_sha256: str = ""
    copies: tuple[str, ...] = ()
    halves: JsonObject | None = None  # the halves-order check (builder.quality.halves)
    site: Site | None = None

    def to_dict(self) -> JsonObject:
        return {
            "split": self.split,
            "file_name": self.file_name,
            "label": self.label,
            "source": self.source,
            "source_sha256": self.source_sha256,
            "published_sha256": self.published_sha256,
            "cut": self.cut,
            "rows": list(self.rows),
            "gates": list(self.gates),
            "bands": self.bands,
            "cut_detail": self.cut_detail,
            "content_sha256": self.content_sha256,
            "copies": list(self.copies),
            "halves": self.halves,
            "site": None if self.site is None else _site_dict(self.site),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> TileRecord:
        cut = _str(data, "cut", where)
        if cut not in ("lossless", "reencoded"):
            raise _fail(f"{where} field 'cut' is neither lossless nor reencoded")
        gates = _list(data, "gates", where)
        return cls(
            split=_split(data["split"], where),
            file_name=data["file_name"],
            label=_label(data["label"], where),
            source=data["source"],
            source_sha256=data["source_sha256"],
            published_sha256=_str(data, "published_sha256", where),
            cut=cast(Literal["lossless", "reencoded"], cut),
            rows=_texts(data, "rows", where),
            gates=tuple(dict(_obj(g, f"{where} gate result")) for g in gates),
            bands=_opt_obj(data, "bands", where),
            cut_detail=_str(data, "cut_detail", where),
            content_sha256=_str(data, "content_sha256", where),
            copies=_texts(data, "copies", where),
            halves=_opt_obj(data, "halves", where),
            site=None if data.get("site") is None else _site(data["site"]),
        )


def _site_dict(site: Site) -> JsonObject:
    return {
        "composite": site.composite,
        "lat": site.lat,
        "lon": site.lon,
        "source_db": site.source_db,
        "source_id": site.source_id,
        "date": site.date,
    }


def _site(data: Mapping[str, Any]) -> Site:
    # The shape was checked by private_problem (one line, "tile N has a malformed site").
    return Site(
        composite=str(data.get("composite", "")),
        lat=data["lat"],
        lon=data["lon"],
        source_db=str(data.get("source_db", "")),
        source_id=data["source_id"],
        date=data["date"],
    )


def _rejection_dict(rejection: Rejection) -> JsonObject:
    return {
        "reason": rejection.reason.value,
        "where": rejection.where,
        "detail": rejection.detail,
        "split": rejection.split,
    }


def _rejection(value: Any, where: str) -> Rejection:
    data = _obj(value, where)
    try:
        reason = Reason(_str(data, "reason", where))
    except ValueError:
        raise _fail(f"{where} names an unknown reason") from None
    split = data.get("split")
    return Rejection(
        reason,
        _str(data, "where", where),
        _str(data, "detail", where),
        None if split is None else _split(split, where),
    )


@dataclass(frozen=True, slots=True)
class GateCounts:
    """One gate over the build: on how many tiles it was evaluated, passed, failed, rejected."""

    evaluated: int
    passed: int
    failed: int
    rejected: int
    not_evaluated: int
    not_evaluated_reasons: dict[str, int]
    published_passed: int
    published_not_evaluated: int

    def to_dict(self) -> JsonObject:
        return {
            "evaluated": self.evaluated,
            "passed": self.passed,
            "failed": self.failed,
            "rejected": self.rejected,
            "not_evaluated": self.not_evaluated,
            "not_evaluated_reasons": self.not_evaluated_reasons,
            "published_passed": self.published_passed,
            "published_not_evaluated": self.published_not_evaluated,
        }

    def cell(self, name: str) -> int:
        """One numeric cell of the card's gate table, by its column name."""
        value: int = getattr(self, name)
        return value

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> GateCounts:
        return cls(
            evaluated=_int(data, "evaluated", where),
            passed=_int(data, "passed", where),
            failed=_int(data, "failed", where),
            rejected=_int(data, "rejected", where),
            not_evaluated=_int(data, "not_evaluated", where),
            not_evaluated_reasons=_map(data, "not_evaluated_reasons", where, _count),
            published_passed=_int(data, "published_passed", where),
            published_not_evaluated=_int(data, "published_not_evaluated", where),
        )


@dataclass(frozen=True, slots=True)
class GateSummary:
    """The four gates over the build (:func:`builder.release.build.gate_summary`).

    Attributes:
        config: the thresholds the build used (``GateConfig`` as JSON).
        changed: the settings that differ from the card's defaults.
        tiles: tiles the gates ran on.
        published: published tiles.
        per_gate: each gate's counts, by gate name, in :data:`builder.quality.thresholds.GATES` order.
        published_full: published tiles on which every gate was evaluated.
    """

    config: JsonObject
    changed: JsonObject
    tiles: int
    published: int
    per_gate: dict[str, GateCounts]
    published_full: int

    def to_dict(self) -> JsonObject:
        return {
            "config": self.config,
            "changed": self.changed,
            "tiles": self.tiles,
            "published": self.published,
            **{gate: counts.to_dict() for gate, counts in self.per_gate.items()},
            "published_full": self.published_full,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "gates") -> GateSummary:
        return cls(
            config=dict(_obj(_field(data, "config", where), f"{where} field 'config'")),
            changed=dict(_obj(_field(data, "changed", where), f"{where} field 'changed'")),
            tiles=_int(data, "tiles", where),
            published=_int(data, "published", where),
            per_gate={
                gate: GateCounts.from_dict(_obj(_field(data, gate, where), f"gate {gate}"), f"gate {gate}")
                for gate in GATES
            },
            published_full=_int(data, "published_full", where),
        )


@dataclass(frozen=True, slots=True)
class HalvesSummary:
    """The halves-order check over the build (:mod:`builder.quality.halves`)."""

    in_order: int
    swapped: int
    not_evaluated: int
    evaluated: int
    thresholds: dict[str, float]

    def to_dict(self) -> JsonObject:
        return {
            "in_order": self.in_order,
            "swapped": self.swapped,
            "not_evaluated": self.not_evaluated,
            "evaluated": self.evaluated,
            "thresholds": self.thresholds,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "halves") -> HalvesSummary:
        return cls(
            in_order=_int(data, "in_order", where),
            swapped=_int(data, "swapped", where),
            not_evaluated=_int(data, "not_evaluated", where),
            evaluated=_int(data, "evaluated", where),
            thresholds={
                k: _number(data["thresholds"], k, f"{where} thresholds")
                for k in _obj(_field(data, "thresholds", where), f"{where} thresholds")
            },
        )


@dataclass(frozen=True, slots=True)
class LeakPair:
    """A train tile within the pHash threshold of an eval tile, and in which view."""

    train: str
    eval: str
    distance: int
    view: str | None  # None in a report from before the mirrored and turned views were compared

    def to_dict(self) -> JsonObject:
        data: JsonObject = {"train": self.train, "eval": self.eval, "distance": self.distance}
        return data if self.view is None else {**data, "view": self.view}

    @classmethod
    def from_dict(cls, value: Any, where: str) -> LeakPair:
        data = _obj(value, where)
        return cls(
            _str(data, "train", where),
            _str(data, "eval", where),
            _int(data, "distance", where),
            _opt_str(data, "view", where),
        )


@dataclass(frozen=True, slots=True)
class Leakage:
    """The near-duplicate check between train and eval (:mod:`builder.release.leakage`).

    Attributes:
        hashes: per split, each published tile's pHash as 16 hex digits.
    """

    method: str
    threshold: int
    pairs: tuple[LeakPair, ...]
    train_tiles: int
    eval_tiles: int
    closest: int | None
    dropped: int
    hashes: dict[str, dict[str, str]]

    def to_dict(self) -> JsonObject:
        return {
            "method": self.method,
            "threshold": self.threshold,
            "pairs": [p.to_dict() for p in self.pairs],
            "train_tiles": self.train_tiles,
            "eval_tiles": self.eval_tiles,
            "closest": self.closest,
            "dropped": self.dropped,
            "hashes": self.hashes,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "leakage") -> Leakage:
        closest = data.get("closest")
        return cls(
            method=_str(data, "method", where),
            threshold=_int(data, "threshold", where),
            pairs=tuple(LeakPair.from_dict(p, f"{where} pair") for p in _list(data, "pairs", where)),
            train_tiles=_int(data, "train_tiles", where),
            eval_tiles=_int(data, "eval_tiles", where),
            closest=None if closest is None else _int(data, "closest", where),
            dropped=_int(data, "dropped", where),
            hashes=_map(data, "hashes", where, lambda v, w: {k: _text(h, w) for k, h in _obj(v, w).items()}),
        )


@dataclass(frozen=True, slots=True)
class SitePair:
    """A train tile of the same site as an eval tile: the same record, or closer than the distance."""

    train: str
    eval: str
    metres: float
    same_record: bool

    @classmethod
    def from_dict(cls, value: Any, where: str) -> SitePair:
        data = _obj(value, where)
        return cls(
            _str(data, "train", where),
            _str(data, "eval", where),
            _number(data, "metres", where),
            _bool(data, "same_record", where),
        )


@dataclass(frozen=True, slots=True)
class SiteLeakage:
    """The same-site check between train and eval (:func:`builder.release.leakage.same_sites`).

    Attributes:
        unchecked: per split, published tiles without a site (not checked).
    """

    method: str
    evaluated: bool
    distance_m: float
    pairs: tuple[SitePair, ...]
    train_tiles: int
    same_record: int
    closest_m: float | None
    dropped: int
    unchecked: dict[str, int]

    def to_dict(self) -> JsonObject:
        return {
            "method": self.method,
            "evaluated": self.evaluated,
            "distance_m": self.distance_m,
            "pairs": [
                {"train": p.train, "eval": p.eval, "metres": p.metres, "same_record": p.same_record}
                for p in self.pairs
            ],
            "train_tiles": self.train_tiles,
            "same_record": self.same_record,
            "closest_m": self.closest_m,
            "dropped": self.dropped,
            "unchecked": self.unchecked,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "site_leakage") -> SiteLeakage:
        return cls(
            method=_str(data, "method", where),
            evaluated=_bool(data, "evaluated", where),
            distance_m=_number(data, "distance_m", where),
            pairs=tuple(SitePair.from_dict(p, f"{where} pair") for p in _list(data, "pairs", where)),
            train_tiles=_int(data, "train_tiles", where),
            same_record=_int(data, "same_record", where),
            closest_m=_opt_number(data, "closest_m", where),
            dropped=_int(data, "dropped", where),
            unchecked=_map(data, "unchecked", where, _count),
        )


# What a report from before the same-site check holds: the check was not evaluated.
NO_SITE_CHECK = SiteLeakage(
    method="", evaluated=False, distance_m=0, pairs=(), train_tiles=0, same_record=0, closest_m=None,
    dropped=0, unchecked={},
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class AuditResult:
    """The audit of the release the report describes: passed when it found nothing."""

    passed: bool
    findings: tuple[str, ...]

    def to_dict(self) -> JsonObject:
        return {"passed": self.passed, "findings": list(self.findings)}

    @classmethod
    def of(cls, findings: Sequence[str]) -> AuditResult:
        return cls(not findings, tuple(findings))


# Fields a report that cropmark build writes always holds, but a report of an older build
# (or a card fixture) may lack; to_json leaves out those that are None.
_OPTIONAL = (
    "halves",
    "site_leakage",
    "policy",
    "data_fingerprint",
    "audit",
    "release_digest",
    "layout_summary",
)


_WRITE_CHUNK = 1 << 20  # characters encoded before they are written


class _Records(list):  # type: ignore[type-arg]
    """A list, as :mod:`json`'s encoder sees it, whose items are made as it iterates them.

    The encoder that ``indent`` selects (``json.encoder._make_iterencode``) asks a list only
    whether it is empty and then iterates it, so each record's dict lives for one item.
    """

    def __init__(self, items: Sequence[Any], make: Callable[[Any], Any]) -> None:
        super().__init__()
        self._items, self._make = items, make

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def __iter__(self) -> Iterator[Any]:
        return (self._make(item) for item in self._items)


@dataclass(frozen=True, slots=True)
class BuildReport:
    """The private report of one build (``<version>.private/report.json``).

    Attributes:
        name, version: the dataset's name and the release's version.
        corpus: the corpus folder, resolved (private).
        manifests: the manifests read.
        counts: rows, rejections and published tiles per split.
        cut_modes: tiles per cut (lossless, reencoded).
        cut_reasons: re-encoded tiles per reason.
        sources: published tiles per licensed source (its name).
        tiles: every published tile's private record.
        rejections: every rejection, in the order the build made them.
        gates: the four gates over the build.
        halves: the halves-order check.
        leakage: the near-duplicate check.
        site_leakage: the same-site check.
        layout: ``imagefolder`` or the sibling layout the release was converted to.
        layout_summary: that layout's summary (its shards, rows, bytes), written by the layout.
        policy: what the release may publish about place and time.
        data_fingerprint: the fingerprint the card's configs name.
        files: ``{relative path: sha256}`` of every file of the release.
        audit: the audit's verdict on the release.
        release_digest: :func:`builder.files.files_digest` of ``files``.
    """

    name: str
    version: str
    counts: Counts
    cut_modes: dict[str, int]
    sources: dict[str, int]
    gates: GateSummary
    leakage: Leakage
    corpus: str = ""
    manifests: tuple[str, ...] = ()
    cut_reasons: dict[str, int] = field(default_factory=dict)
    tiles: Sequence[TileRecord] = ()
    rejections: tuple[Rejection, ...] = ()
    halves: HalvesSummary | None = None
    site_leakage: SiteLeakage | None = None
    layout: str = registry.primary().name
    layout_summary: JsonObject | None = None
    policy: Policy | None = None
    data_fingerprint: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    audit: AuditResult | None = None
    release_digest: str | None = None

    @property
    def total_tiles(self) -> int:
        """Published tiles over both splits."""
        return sum(self.counts.tiles.values())

    def quoted_parts(self) -> tuple[object, ...]:
        """The JSON parts the dataset card quotes numbers from, for :func:`builder.scan.card_numbers`.

        Its ``counts``, ``gates`` (thresholds and counts), ``leakage`` (threshold,
        distances), ``cut_modes`` and ``layout_summary``; never tiles or sites.
        """
        parts = (self.counts.to_dict(), self.gates.to_dict(), self.leakage.to_dict())
        return (*parts, self.cut_modes, self.layout_summary)

    def to_dict(self, lazy: bool = False) -> JsonObject:
        """The report as ``report.json`` holds it (``lazy``: its tile records made one at a
        time as they are iterated, for :meth:`write_json`)."""
        data: JsonObject = {
            "name": self.name,
            "version": self.version,
            "corpus": self.corpus,
            "manifests": list(self.manifests),
            "counts": self.counts.to_dict(),
            "cut_modes": self.cut_modes,
            "cut_reasons": self.cut_reasons,
            "sources": self.sources,
            "tiles": _Records(self.tiles, TileRecord.to_dict) if lazy else [t.to_dict() for t in self.tiles],
            "rejections": [_rejection_dict(r) for r in self.rejections],
            "gates": self.gates.to_dict(),
            "halves": None if self.halves is None else self.halves.to_dict(),
            "leakage": self.leakage.to_dict(),
            "site_leakage": None if self.site_leakage is None else self.site_leakage.to_dict(),
            "layout": self.layout,
            "layout_summary": self.layout_summary,
            "policy": None if self.policy is None else self.policy.as_dict(),
            "data_fingerprint": self.data_fingerprint,
            "files": self.files,
            "audit": None if self.audit is None else self.audit.to_dict(),
            "release_digest": self.release_digest,
        }
        return {k: v for k, v in data.items() if not (k in _OPTIONAL and v is None)}

    def to_json(self) -> bytes:
        """The bytes of ``report.json``."""
        return (json.dumps(self.to_dict(), indent=1, sort_keys=True) + "\n").encode()

    def write_json(self, path: Path) -> str:
        """Write :meth:`to_json`'s bytes to ``path`` as they are encoded; return their SHA-256.

        Neither the whole text nor every tile's record as a dict is ever in memory at once:
        at 10,000 tiles those two were most of a build's peak memory and grew with the tiles
        (``tests/test_report.py`` checks that the bytes are :meth:`to_json`'s).
        """
        digest = hashlib.sha256()
        encoder = json.JSONEncoder(indent=1, sort_keys=True)
        pending: list[str] = []
        size = 0
        with path.open("wb") as f:
            for chunk in itertools.chain(encoder.iterencode(self.to_dict(lazy=True)), ("\n",)):
                pending.append(chunk)
                size += len(chunk)
                if size >= _WRITE_CHUNK:
                    data = "".join(pending).encode()
                    digest.update(data)
                    f.write(data)
                    pending, size = [], 0
            data = "".join(pending).encode()
            digest.update(data)
            f.write(data)
        return digest.hexdigest()

    @classmethod
    def from_json(cls, raw: bytes | str) -> BuildReport:
        """Read back what :meth:`to_json` wrote.

        Raises:
            ReportError: not JSON, not an object, or a field missing or of the wrong type
                (one line naming the field).
        """
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise _fail("not JSON") from None
        except RecursionError:
            raise _fail("JSON nested too deeply to read") from None
        return cls.from_dict(_obj(data, "the report"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, private: bool = False) -> BuildReport:
        """The report in a parsed ``report.json``.

        Args:
            data: the parsed JSON object.
            private: require the private part (tiles and file digests), as the audit does.

        Raises:
            ReportError: a field missing or of the wrong type (one line naming the field).
        """
        if private or "tiles" in data or "files" in data:
            problem = private_problem(data)
            if problem is not None:
                raise _fail(problem)
        where = "the report"
        policy = _opt_obj(data, "policy", where)
        audit = _opt_obj(data, "audit", where)
        halves = _opt_obj(data, "halves", where)
        site_leakage = _opt_obj(data, "site_leakage", where)
        policy_value = None if policy is None else _policy(policy)
        return cls(
            name=_str(data, "name", where),
            version=_str(data, "version", where),
            counts=Counts.from_dict(_obj(_field(data, "counts", where), "counts")),
            cut_modes=_map(data, "cut_modes", where, _count),
            sources=_map(data, "sources", where, _count),
            gates=GateSummary.from_dict(_obj(_field(data, "gates", where), "gates")),
            leakage=Leakage.from_dict(_obj(_field(data, "leakage", where), "leakage")),
            corpus=_str(data, "corpus", where) if "corpus" in data else "",
            manifests=_texts(data, "manifests", where) if "manifests" in data else (),
            cut_reasons=_map(data, "cut_reasons", where, _count) if "cut_reasons" in data else {},
            tiles=tuple(TileRecord.from_dict(t, f"tile {i}") for i, t in enumerate(data.get("tiles", []))),
            rejections=tuple(
                _rejection(r, f"rejection {i}")
                for i, r in enumerate(_list(data, "rejections", where) if "rejections" in data else [])
            ),
            halves=None if halves is None else HalvesSummary.from_dict(halves),
            site_leakage=None if site_leakage is None else SiteLeakage.from_dict(site_leakage),
            layout=_str(data, "layout", where) if "layout" in data else registry.primary().name,
            layout_summary=_opt_obj(data, "layout_summary", where),
            policy=policy_value,
            data_fingerprint=_opt_str(data, "data_fingerprint", where),
            files=dict(data.get("files", {})),
            audit=None
            if audit is None
            else AuditResult(_bool(audit, "passed", "audit"), _texts(audit, "findings", "audit")),
            release_digest=_opt_str(data, "release_digest", where),
        )


def _policy(data: Mapping[str, Any]) -> Policy:
    """The report's policy: the fields of :class:`~builder.layouts.policy.Policy`, a text name, booleans."""
    names = [f.name for f in fields(Policy)]
    if set(data) - set(names) or not all(
        isinstance(value, str if key == "name" else bool) for key, value in data.items()
    ):
        raise _fail("the report field 'policy' is not a policy")
    return Policy(**data)


_TILE_FIELDS = ("split", "file_name", "label", "source", "source_sha256")


def private_problem(report: Mapping[str, Any]) -> str | None:
    """What makes ``report`` not a private report the audit can read (its tiles and file digests)."""
    tiles, files = report.get("tiles"), report.get("files")
    if not isinstance(tiles, list):
        return "no list of tiles"
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        return "no file digests"
    for i, tile in enumerate(tiles):
        if not isinstance(tile, dict):
            return f"tile {i} is not an object"
        missing = [k for k in _TILE_FIELDS if not isinstance(tile.get(k), str)]
        if missing:
            return f"tile {i} has no text field {missing[0]!r}"
        site = tile.get("site")
        if site is not None and not (
            isinstance(site, dict)
            and all(isinstance(site.get(k), int | float) for k in ("lat", "lon"))
            and all(isinstance(site.get(k), str) for k in ("source_id", "date"))
        ):
            return f"tile {i} has a malformed site"
    return None
