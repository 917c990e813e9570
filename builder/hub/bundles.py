"""What a publish sends, and the gate each kind must pass before anything is sent.

Every kind ships an **allow-list** of files, never "whatever lies in the folder":

- **dataset**: a release made by ``cropmark build`` (its private report beside it),
  passing its audit and the offline card checks, with a card that names the target
  repo; every file's SHA-256 must be the one the build recorded and the audit checked.
- **model**: of a LoRA run folder, only ``adapter_config.json``,
  ``adapter_model.safetensors``, ``training_summary.json`` and ``evaluation.json``,
  and the model card rendered here (after PEFT's save). Its base model must be a Hub
  id (a local folder is refused: users could not load it, and the card would link to
  nothing); the adapter must not touch the vision tower and its rank, alpha, dropout
  and targets must be the training summary's (the card states those);
  ``evaluation.json``'s first model must be *this* adapter (tied by the SHA-256 of
  ``adapter_model.safetensors``), not a baseline or an earlier run. Checkpoints,
  logs, the processor, ``training_args.bin`` and the rest of the run stay home.
- **space**: ``app.py``, ``requirements.txt`` (pinned, covering every import), the
  modules ``app.py`` imports (beside it, or the project's), the rendered README,
  ``baseline.json`` (the physics baseline fitted on the release),
  ``cropmark_space.json`` (the ids and revisions the Space serves), and example tiles
  under ``examples/`` only when each is byte for byte a tile of the published dataset
  and passes the audit's image checks. Nothing else in ``space/`` is sent.

Then every text the bundle would send (each file, a JSON file's keys and strings, the
safetensors header, the rendered cards; a dataset's text was scanned by its audit) is
scanned (:func:`scan`) with the audit's patterns (:data:`builder.scan.PATTERNS`), for
paths of this machine (:data:`PATHS`), for the publisher's own token and for anything
shaped like a Hub token. Any finding refuses the bundle.

Files are hashed as streams (1 MiB at a time) and sent from disk; small files the gate
parses are read once and sent from those very bytes.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import json
import re
import struct
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from builder.domain import hub_id_problem
from builder.errors import AuditError, ConfigError, ModelLoadError, PublishError, ReleaseNotFoundError
from builder.hub import client as hub
from builder.model import baseline as physics
from builder.model.schema import check_evaluation, check_training_summary
from builder.release import cards
from builder.release.audit import audit_any, check_image, load_report
from builder.release.build import private_dir
from builder.scan import mask, masked_path, numbers_in, private_values, redact, text_findings

Kind = Literal["dataset", "model", "space"]
KINDS: tuple[Kind, ...] = ("dataset", "model", "space")
SPACE_CONFIG = "cropmark_space.json"
SPACE_SCHEMA = "cropmark-space/2"
SPACE_FILES = ("app.py", "requirements.txt")
SPACE_EXAMPLES = "examples"
MODEL_JSON = ("adapter_config.json", "training_summary.json", "evaluation.json")
MODEL_FILES = (*MODEL_JSON, "adapter_model.safetensors")
VISION_PROBES = (
    "model.vision_tower.vision_model.encoder.layers.0.self_attn.q_proj",
    "model.vision_tower.vision_model.encoder.layers.0.mlp.fc1",
)
# A path of someone's machine anywhere in a text: a file: URL; /a/b (two parts at least, not
# inside a URL or a word); ~/x; ../x (it leaves the folder); C:\x or C:/x; \\server\share.
PATHS = re.compile(
    r"(?i:\bfile:/+)[^\s'\"]*"
    r"|(?<![\w.:/~\\-])/[\w.@%+-]+/[\w.@%+/-]*"
    r"|(?<![\w~])~[\\/]\S*"
    r"|(?<![\w.])\.\.[\\/]\S*"
    r"|(?<![A-Za-z0-9])[A-Za-z]:[\\/]\S*"
    r"|(?<!\\)\\\\[\w.$-]+\\\S*"
)
# Commit ids and digests (hex words of 40 or 64 characters, or 12 to 64 with a letter: a short
# commit id): hashes, whose digit runs would look like record numbers to the audit's patterns.
# They are not scanned.
_HEX = re.compile(
    r"(?<![0-9A-Za-z])(?:[0-9a-f]{64}|[0-9a-f]{40}|(?=[0-9]*[a-f])[0-9a-f]{12,64})(?![0-9A-Za-z])"
)
_BINARY = frozenset({".jpg", ".jpeg", ".png", ".webp", ".parquet", ".arrow", ".h5", ".hdf5", ".npy"})
_BLOCK = 1 << 20
MAX_JSON_BYTES = 64 << 20  # a run's JSON is kilobytes; a bigger file is not one of ours


# -- files ------------------------------------------------------------------------------------


def git_blob_oid(data: bytes) -> str:
    """The git blob id the Hub reports for a regular (non-LFS) file."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class LocalFile:
    """A file a publish sends: its path in the repo, its digests and where its bytes are."""

    path: str
    size: int
    sha256: str
    git_oid: str
    source: Path | bytes = field(repr=False)

    @classmethod
    def from_bytes(cls, path: str, data: bytes) -> LocalFile:
        return cls(path, len(data), hashlib.sha256(data).hexdigest(), git_blob_oid(data), data)

    @classmethod
    def from_path(cls, path: str, source: Path) -> LocalFile:
        """Hash ``source`` as a stream: memory stays flat whatever its size."""
        size = source.stat().st_size
        sha256 = hashlib.sha256()
        sha1 = hashlib.sha1(b"blob %d\0" % size, usedforsecurity=False)
        read = 0
        with source.open("rb") as handle:
            while block := handle.read(_BLOCK):
                sha256.update(block)
                sha1.update(block)
                read += len(block)
        if read != size:
            raise PublishError(f"{source} changed while it was hashed; run publish again")
        return cls(path, size, sha256.hexdigest(), sha1.hexdigest(), source)

    def lines(self) -> Iterator[str]:
        """The file's text, line by line, streamed; it must be the bytes that were hashed."""
        if isinstance(self.source, bytes):
            yield from self.source.decode("utf-8", errors="replace").splitlines()
            return
        digest, rest = hashlib.sha256(), b""
        with self.source.open("rb") as handle:
            while block := handle.read(_BLOCK):
                digest.update(block)
                *whole, rest = (rest + block).split(b"\n")
                yield from (line.decode("utf-8", errors="replace") for line in whole)
        if rest:
            yield rest.decode("utf-8", errors="replace")
        if digest.hexdigest() != self.sha256:
            raise PublishError(f"{self.path} changed on disk after it was hashed; run publish again")


@dataclass(frozen=True)
class Bundle:
    """What one publish sends, after its gate passed."""

    kind: Kind
    files: tuple[LocalFile, ...]
    notes: tuple[str, ...]  # release notes: what this release is (counts, metrics)
    version: str | None = None  # the release's version (datasets), which its tag must name
    left_out: tuple[str, ...] = ()  # files of the source folder not on the allow-list
    facts: Mapping[str, Any] = field(default_factory=dict)  # claims checked on the Hub later


def _walk(root: Path, skip: Callable[[Path], bool] = lambda p: False) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith(".") or part == "__pycache__" for part in rel.parts) or skip(rel):
            continue
        if path.is_symlink():
            raise PublishError(f"{path} is a symbolic link; publish regular files only")
        if path.is_file():
            yield path


def _everything(root: Path) -> list[str]:
    """Every entry under ``root`` that is not a folder (dotfiles, links and FIFOs too), relative."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_symlink() or not p.is_dir())


def _regular(path: Path, what: str) -> Path:
    if path.is_symlink() or not path.is_file():
        raise PublishError(f"{path} is not a regular file ({what} are sent as files, never links)")
    return path


def _small(path: Path) -> bytes:
    if path.stat().st_size > MAX_JSON_BYTES:
        raise PublishError(f"{path} is over {MAX_JSON_BYTES >> 20} MiB; it is not a file publish writes")
    return path.read_bytes()


def json_object(data: bytes, where: str) -> dict[str, Any]:
    """A JSON object from bytes, with a one-line error for anything else."""
    try:
        value = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise PublishError(f"{where} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise PublishError(f"{where} is not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(value, dict):
        raise PublishError(f"{where} holds a JSON {type(value).__name__}; expected a JSON object")
    return value


# -- the text scan ----------------------------------------------------------------------------


def _strings(value: Any, where: str) -> Iterator[tuple[str, str]]:
    """(where, text) of every key and string in a JSON value."""
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield f"{where}.{key}", str(key)
            yield from _strings(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, f"{where}[{i}]")


def _texts(f: LocalFile) -> Iterator[tuple[str, str]]:
    """(where, text) of everything readable that ``f`` would publish."""
    suffix = Path(f.path).suffix.lower()
    if suffix in _BINARY:
        return  # images and array files: the audit's image and layout checks are theirs
    if suffix == ".safetensors":
        source = f.source if isinstance(f.source, Path) else None
        header = safetensors_header(source) if source else {}
        yield from _strings(header, f"{f.path} header")
        return
    if suffix == ".json" and (isinstance(f.source, bytes) or f.size <= MAX_JSON_BYTES):
        data = f.source if isinstance(f.source, bytes) else f.source.read_bytes()
        if hashlib.sha256(data).hexdigest() != f.sha256:
            raise PublishError(f"{f.path} changed on disk after it was hashed; run publish again")
        try:
            yield from _strings(json.loads(data.decode("utf-8")), f.path)
            return
        except (UnicodeDecodeError, json.JSONDecodeError):
            pass  # scanned as text below
    for number, line in enumerate(f.lines(), 1):
        if "\0" in line:
            return  # binary after all (a .bin, a pickle): nothing a text scan can read
        yield f"{f.path}:{number}", line


def scan(
    files: Iterable[LocalFile], *, patterns: bool = True, allowed: frozenset[float] = frozenset()
) -> None:
    """Refuse the files if any text in them holds a leak (see the module docstring).

    Args:
        files: what the bundle would send.
        patterns: also apply the audit's place, time and record patterns (a dataset's
            audit already did, with the card's own figures allowed).
        allowed: numbers the card quotes from the run's own measurements (see
            :func:`run_figures`); a number-only pattern matching one is not a finding.
    """
    token = hub.token()
    findings: list[str] = []
    for f in files:
        if patterns:  # a name is published too (a Space's example tile named after its site)
            findings += text_findings(f"the name {masked_path(f.path)}", f.path, ())
        for where, raw in _texts(f):
            if token and token in raw:
                findings.append(f"{where}: holds your Hub token")
            if hub.TOKEN_SHAPED.search(raw):
                findings.append(f"{where}: holds a Hub access token (hf_***)")
            text = _HEX.sub("#", raw)
            findings += [
                f"{where}: a path of this machine ({mask(m.group(0))})" for m in PATHS.finditer(text)
            ]
            if patterns:
                findings += text_findings(where, text, (), allowed)
        if len(findings) > 100:
            break
    if findings:
        shown = "; ".join(findings[:3]) + (f" (and {len(findings) - 3} more)" if len(findings) > 3 else "")
        raise PublishError(
            f"the files to publish hold what must never be published: {shown}; remove it (write Hub ids, "
            "paths relative to the folder, no tokens) and run again; nothing was published"
        )


def run_figures(*measured: Mapping[str, Any]) -> frozenset[float]:
    """The model card's allow-list: every number of the training summary and evaluation, as
    measured and rounded to 1-6 decimals (the card and its model-index quote them rounded).

    A learning rate of 0.0002 or a recall of 0.7119 has the shape of a coordinate's decimal;
    these are the run's own figures, checked against the schema, never a place.
    """
    found: set[float] = set()
    for document in measured:
        for number in numbers_in(document):
            found.add(number)
            found.update(round(number, digits) for digits in range(1, 7))
    return frozenset(found)


# -- dataset ----------------------------------------------------------------------------------


def dataset_bundle(release: Path, repo_id: str) -> Bundle:
    """The release folder, after the audit and the offline card checks passed."""
    if not release.is_dir():
        raise ReleaseNotFoundError(f"release folder {release} does not exist; build it with `cropmark build`")
    report_path = private_dir(release) / "report.json"
    if not report_path.is_file():
        raise PublishError(
            f"{report_path} not found: only releases made by `cropmark build` "
            "(with their private report) are published"
        )
    report = load_report(report_path)
    findings = audit_any(release, report)
    if findings:
        raise AuditError(str(release), findings)
    card = (release / "README.md").read_text(encoding="utf-8")
    problems = cards.validate_dataset_card(card, report, release)
    if f'load_dataset("{repo_id}"' not in card:
        problems.append(
            f"the card does not name {repo_id}; rebuild with `cropmark build --repo-id {repo_id}`"
        )
    if problems:
        shown = "; ".join(redact(problems, private_values(report.tiles)))
        raise PublishError(f"dataset card refused: {shown}; nothing was published")
    files = tuple(LocalFile.from_path(p.relative_to(release).as_posix(), p) for p in _walk(release))
    audited: Mapping[str, str] = report.files
    differs = [f.path for f in files if audited.get(f.path) != f.sha256]
    if differs:
        raise PublishError(
            f"{', '.join(differs[:3])}: not the file the build wrote and the audit checked (changed since?); "
            "build the release again; nothing was published"
        )
    scan(files, patterns=False)  # the audit applied the patterns, with the card's figures allowed
    counts = report.counts.published
    notes = [f"{report.name} {report.version}: {report.total_tiles} tiles"]
    notes += [
        f"{split}: " + ", ".join(f"{label} {n}" for label, n in labels.items())
        for split, labels in counts.items()
    ]
    return Bundle("dataset", files, tuple(notes), report.version)


# -- model ------------------------------------------------------------------------------------


def safetensors_header(path: Path) -> dict[str, Any]:
    """A safetensors header (8-byte little-endian length, then a JSON object of tensors)."""
    problem = "it is not one"
    try:
        with path.open("rb") as fh:
            (length,) = struct.unpack("<Q", fh.read(8))
            if length > 100_000_000:
                raise ValueError("header too large")
            header: Any = json.loads(fh.read(length).decode("utf-8"))
    except (struct.error, ValueError) as exc:
        problem = str(exc)
    else:
        entries = (
            {k: v for k, v in header.items() if k != "__metadata__"} if isinstance(header, dict) else None
        )
        if isinstance(header, dict) and entries and all(isinstance(v, dict) for v in entries.values()):
            return header
        problem = "its header is not an object of tensors"
    raise PublishError(f"{path} is not a safetensors file ({problem}); save the adapter with PEFT")


def _module_pattern(config: Mapping[str, Any], key: str, where: Path) -> str | list[str] | None:
    """``target_modules``/``exclude_modules`` as PEFT reads them: a regex, or a list of names."""
    value = config.get(key)
    if value is None or (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        return value
    if not isinstance(value, str):
        raise PublishError(f"{where}: {key} is {value!r}; PEFT takes a regex or a list of module names")
    try:
        re.compile(value)
    except re.error as exc:
        raise PublishError(f"{where}: {key} {value!r} is not a regex PEFT can match ({exc})") from None
    return value


def _matches(pattern: str | list[str] | None, module: str) -> bool:
    """PEFT's rule: a string full-matches as a regex; a list matches a name or a name's suffix."""
    if pattern is None:
        return False
    if isinstance(pattern, str):
        return re.fullmatch(pattern, module) is not None
    return any(module == name or module.endswith(f".{name}") for name in pattern)


def _check_targets(config: Mapping[str, Any], where: Path) -> None:
    """The adapter must not touch the vision tower (the card says so)."""
    targets = _module_pattern(config, "target_modules", where)
    exclude = _module_pattern(config, "exclude_modules", where)
    if not targets:
        raise PublishError(f"{where}: no target_modules; the run did not adapt the language model")
    for probe in VISION_PROBES:
        if _matches(targets, probe) and not _matches(exclude, probe):
            raise PublishError(
                f"{where}: target_modules would adapt the vision tower ({probe}); "
                "target the language model and the projector only (a regex, or exclude_modules)"
            )


def _check_lora_settings(config: Mapping[str, Any], lora: Mapping[str, Any], where: Path) -> None:
    """The card states the summary's LoRA settings: they must be the adapter's own."""
    pairs = (
        ("r", "r"),
        ("lora_alpha", "alpha"),
        ("lora_dropout", "dropout"),
        ("target_modules", "target_modules"),
    )
    for ours, theirs in pairs:
        if ours in config and config[ours] != lora[theirs]:
            raise PublishError(
                f"{where}: {ours} is {config[ours]!r} but training_summary.json says "
                f"{theirs} {lora[theirs]!r}; "
                "the card would state settings the adapter does not have: publish the run that trained it"
            )
    missing = [ours for ours, _ in pairs[:2] if ours not in config]
    if missing:
        raise PublishError(f"{where}: {', '.join(missing)} missing; save the adapter with PEFT")


def check_hub_base(base: object, where: Path) -> str:
    """The adapter's base model must be a Hub model id that users can load."""
    if hub_id_problem(base) is not None or Path(str(base)).expanduser().exists():
        raise PublishError(
            f"{where}: the adapter's base model {base!r} is not a Hub model id (a local folder?); "
            "users could not load it and the card would link to nothing: train on a Hub id "
            "such as LiquidAI/LFM2.5-VL-450M"
        )
    assert isinstance(base, str)
    return base


def file_sha256(path: Path) -> str:
    return LocalFile.from_path(path.name, path).sha256


def _check_evaluation_is_this_adapter(
    evaluation: Mapping[str, Any], adapter: LocalFile, where: Path, base: str
) -> None:
    first = evaluation["models"][0]
    if first["kind"] != "vlm-lora":
        raise PublishError(
            f"{where}: its first model is {first['name']!r} (kind {first['kind']!r}), not the adapter; "
            "the model card would publish its figures as the LoRA's: evaluate the adapter "
            "(scripts/evaluate.py --adapter RUN) and publish again"
        )
    scored = first.get("adapter_sha256")
    if scored != adapter.sha256:
        shown = scored[:12] if isinstance(scored, str) else repr(scored)
        raise PublishError(
            f"{where} scored adapter {shown}, but this run's adapter_model.safetensors is "
            f"{adapter.sha256[:12]}: "
            "evaluate this adapter again (scripts/evaluate.py --adapter RUN) and publish"
        )
    if first.get("base_model") != base:
        raise PublishError(
            f"{where} scored the adapter on base model {first.get('base_model')!r}, not on {base!r}; "
            "evaluate it on its base model"
        )


def model_bundle(run: Path, repo_id: str, dataset_id: str) -> Bundle:
    """The adapter files of a training run (an allow-list), with the model card written after PEFT's save."""
    if not run.is_dir():
        raise PublishError(f"run folder {run} does not exist; train with scripts/train_lora.py first")
    missing = [name for name in MODEL_FILES if not (run / name).is_file()]
    if missing:
        raise PublishError(f"{run} lacks {', '.join(missing)}; a run folder holds the adapter and its JSON")
    raw = {name: _small(_regular(run / name, "a model's files")) for name in MODEL_JSON}
    training = json_object(raw["training_summary.json"], str(run / "training_summary.json"))
    evaluation = json_object(raw["evaluation.json"], str(run / "evaluation.json"))
    config = json_object(raw["adapter_config.json"], str(run / "adapter_config.json"))
    try:
        check_training_summary(training, str(run / "training_summary.json"))
        check_evaluation(evaluation, str(run / "evaluation.json"))
    except ConfigError as exc:
        raise PublishError(str(exc)) from None
    if config.get("peft_type") != "LORA":
        raise PublishError(
            f"{run / 'adapter_config.json'}: peft_type {config.get('peft_type')!r}, expected LORA"
        )
    base = check_hub_base(config.get("base_model_name_or_path"), run / "adapter_config.json")
    if base != training["base_model"]:
        raise PublishError(
            f"{run}: the adapter's base model {base!r} differs from the training summary's "
            f"{training['base_model']!r}; publish the run that trained this adapter"
        )
    trained_on = training["release"].get("hub_id")
    if trained_on is not None and trained_on != dataset_id:
        raise PublishError(
            f"{run / 'training_summary.json'}: the adapter was trained on {trained_on}, "
            f"but the card would name {dataset_id}; pass --dataset-id {trained_on}"
        )
    _check_targets(config, run / "adapter_config.json")
    _check_lora_settings(config, training["lora"], run / "adapter_config.json")
    weights = _regular(run / "adapter_model.safetensors", "a model's files")
    adapter = LocalFile.from_path(weights.name, weights)
    names = [n for n in safetensors_header(weights) if n != "__metadata__"]
    if any("vision_tower" in n for n in names):
        raise PublishError(f"{weights}: weights of the vision tower; the adapter must not touch it")
    _check_evaluation_is_this_adapter(evaluation, adapter, run / "evaluation.json", base)
    card = cards.model_card(training, evaluation, repo_id, dataset_id)
    files = [LocalFile.from_bytes(name, raw[name]) for name in MODEL_JSON]
    files += [adapter, LocalFile.from_bytes("README.md", card.encode())]
    scan(files, allowed=run_figures(training, evaluation))
    first = evaluation["models"][0]
    notes = (
        f"LoRA r={training['lora']['r']} on {training['base_model']}, {training['steps']} steps",
        f"eval ({evaluation['n']} tiles): accuracy {first['metrics']['accuracy']:.3f}, "
        f"F1 {first['metrics']['f1']:.3f}, ROC-AUC {first['metrics']['roc_auc']:.3f}",
    )
    left_out = tuple(p for p in _everything(run) if p not in MODEL_FILES)
    facts = {"base_model": base, "release": dict(training["release"])}
    return Bundle("model", tuple(sorted(files, key=lambda f: f.path)), notes, None, left_out, facts)


# -- space ------------------------------------------------------------------------------------

_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==(?P<version>[^\s;#]+)")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _imports(source: Path) -> Iterator[tuple[str, int]]:
    """(module, level) of every import statement in a Python file."""
    try:
        tree = ast.parse(source.read_text(encoding="utf-8"), str(source))
    except SyntaxError as exc:
        raise PublishError(f"{source}: {exc.msg} at line {exc.lineno}; the Space would not start") from None
    except UnicodeDecodeError:
        raise PublishError(f"{source} is not UTF-8 text; the Space would not start") from None
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((alias.name, 0) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield node.module or "", node.level
            yield from ((f"{node.module}.{alias.name}", node.level) for alias in node.names if node.module)


def _module_files(module: str, root: Path) -> list[Path] | None:
    """The files of ``module`` (and its packages' ``__init__``) under ``root``, or None if not there."""
    parts = module.split(".")
    if not (root / parts[0] / "__init__.py").is_file() and not (root / f"{parts[0]}.py").is_file():
        return None
    found = []
    for i in range(1, len(parts) + 1):
        base = root.joinpath(*parts[:i])
        found += [c for c in (base / "__init__.py", base.with_suffix(".py")) if c.is_file()]
    return found


def import_closure(entry: Path, roots: Sequence[Path]) -> tuple[list[Path], set[str]]:
    """The modules ``entry`` imports, recursively (with their packages' ``__init__``), found in
    ``roots`` (the first root holding a module wins); and the top-level names of the other
    imports, which requirements must cover."""
    found: list[Path] = []
    external: set[str] = set()
    queue = [entry]
    while queue:
        current = queue.pop()
        if current in found:
            continue
        found.append(current)
        for module, level in _imports(current):
            if level:
                raise PublishError(
                    f"{current}: relative imports are not supported in a Space; import by full name"
                )
            located = next((m for root in roots if (m := _module_files(module, root)) is not None), None)
            if located is None:
                external.add(module.split(".")[0])
            else:
                queue += located
    return sorted(found), external


def _requirements(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise PublishError(f"{path} not found; a Space needs pinned requirements (name==version per line)")
    pins = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = _PIN.match(line)
        if match is None:
            raise PublishError(f"{path}:{number}: {line!r} is not pinned; write name==version")
        pins[_norm(match["name"])] = match["version"]
    return pins


def baseline_release(baseline: Path) -> dict[str, Any]:
    """The physics baseline's file checked, and the release record it was fitted on."""
    try:
        physics.load(baseline)
    except ModelLoadError as exc:
        raise PublishError(f"{exc}; nothing was published") from None
    record = json_object(baseline.read_bytes(), str(baseline)).get("release")
    if not isinstance(record, dict) or not record.get("train_metadata_sha256"):
        raise PublishError(
            f"{baseline} does not say which release it was fitted on; fit it again with "
            "scripts/train_baseline.py on the published release"
        )
    return record


def space_config(
    base_model: str, model_id: str, dataset_id: str, adapter_revision: str, dataset_revision: str
) -> dict[str, Any]:
    """``cropmark_space.json``: what the published Space serves (read by ``app.py``), pinned."""
    for name, value in (("base model", base_model), ("model", model_id), ("dataset", dataset_id)):
        if (problem := hub_id_problem(value, f"the Space's {name}")) is not None:
            raise PublishError(problem)
    return {
        "schema": SPACE_SCHEMA,
        "base_model": base_model,
        "adapter": model_id,
        "adapter_revision": adapter_revision,
        "dataset": dataset_id,
        "dataset_revision": dataset_revision,
        "baseline": "baseline.json",
    }


def _examples(space: Path, published: frozenset[str] | None) -> list[LocalFile]:
    """``examples/`` tiles: each must be a published tile of the dataset (by SHA-256) and pass
    the audit's image checks; None for ``published`` (a dry run without the Hub) skips the first."""
    folder = space / SPACE_EXAMPLES
    if not folder.is_dir():
        return []
    tiles, refused = [], []
    for path in sorted(folder.iterdir()):
        rel = f"{SPACE_EXAMPLES}/{path.name}"
        shown = masked_path(rel)  # a name may hold a site's coordinates: never printed in full
        if path.name.startswith(".") or path.is_symlink() or not path.is_file():
            refused.append(f"{shown}: not a regular file")
            continue
        tile = LocalFile.from_bytes(rel, path.read_bytes())
        assert isinstance(tile.source, bytes)
        problems = list(check_image(tile.source, shown))
        if published is not None and tile.sha256 not in published:
            problems.append(f"{shown}: not a tile of the published dataset")
        refused += problems
        tiles.append(tile)
    if refused:
        raise PublishError(
            f"example tiles refused: {'; '.join(refused[:6])}{' ...' if len(refused) > 6 else ''}; "
            f"{SPACE_EXAMPLES}/ may hold only tiles of the published dataset, byte for byte (download them "
            "from it); nothing was published"
        )
    return tiles


def space_bundle(
    space: Path,
    repo_root: Path,
    title: str,
    config: Mapping[str, Any],
    baseline: Path,
    published_tiles: frozenset[str] | None = frozenset(),
) -> Bundle:
    """The Space's allow-list (module docstring): app, requirements, imported modules, README,
    baseline, config, and example tiles of the published dataset (``published_tiles``: their SHA-256)."""
    app = space / "app.py"
    if not app.is_file():
        raise PublishError(f"{app} not found; a Gradio Space starts from app.py")
    pins = _requirements(space / "requirements.txt")
    if "gradio" not in pins:
        raise PublishError(f"{space / 'requirements.txt'} does not pin gradio; add gradio==X.Y.Z")
    record = baseline_release(baseline)
    if record.get("hub_id") not in (None, config["dataset"]):
        raise PublishError(
            f"{baseline} was fitted on {record['hub_id']}, but the Space serves {config['dataset']}; "
            "fit the baseline on the Space's dataset"
        )
    modules, external = import_closure(_regular(app, "a Space's files"), (space, repo_root))
    files: dict[str, LocalFile] = {}
    for path in [space / "requirements.txt", *modules]:
        root = space if path.is_relative_to(space) else repo_root
        rel = path.relative_to(root).as_posix()
        files[rel] = LocalFile.from_bytes(rel, _small(_regular(path, "a Space's files")))
    local_names = {Path(p).parts[0].removesuffix(".py") for p in files}
    distributions = importlib.metadata.packages_distributions()
    unlisted = sorted(
        name
        for name in external - set(sys.stdlib_module_names) - local_names
        if not any(_norm(d) in pins for d in distributions.get(name, [name]))
    )
    if unlisted:
        raise PublishError(
            f"{space}: app imports {', '.join(unlisted)} but requirements.txt pins no distribution of it; "
            "the Space would not start"
        )
    examples = _examples(space, published_tiles)
    for tile in examples:
        files[tile.path] = tile
    readme = cards.space_readme(
        title, config["adapter"], config["dataset"], pins["gradio"], base_model=config["base_model"]
    )
    files["README.md"] = LocalFile.from_bytes("README.md", readme.encode())
    files[SPACE_CONFIG] = LocalFile.from_bytes(SPACE_CONFIG, (json.dumps(config, indent=1) + "\n").encode())
    files["baseline.json"] = LocalFile.from_bytes("baseline.json", _small(_regular(baseline, "a baseline")))
    scan(files.values())
    from_space = {
        p.relative_to(space).as_posix()
        for p in [space / "requirements.txt", *modules]
        if p.is_relative_to(space)
    }
    from_space |= {t.path for t in examples}
    left_out = tuple(
        p
        for p in _everything(space)
        if p not in from_space and "__pycache__" not in p.split("/") and not p.endswith(".pyc")
    )
    notes = (
        f"Space for {config['adapter']} on {config['base_model']} (gradio {pins['gradio']}), "
        f"dataset {config['dataset']}, {len(files)} files",
    )
    return Bundle("space", tuple(files[p] for p in sorted(files)), notes, None, left_out)
