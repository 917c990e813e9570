"""What a publish sends, and the gate each kind must pass before anything is sent.

- **dataset**: a release made by ``cropmark build`` (its private report beside it),
  passing its audit and the offline card checks, with a card that names the target repo.
- **model**: a LoRA run folder. Its base model must be a Hub id (a local folder is
  refused: users could not load it, and the card would link to nothing); the adapter
  must not touch the vision tower; ``evaluation.json``'s first model must be *this*
  adapter (tied by the SHA-256 of ``adapter_model.safetensors``), not a baseline or an
  earlier run; no published JSON may hold an absolute path; the card is rendered here,
  after PEFT's save, from the training summary and the evaluation.
- **space**: ``space/`` with pinned requirements covering every import, the project
  modules ``app.py`` imports, the rendered README, ``baseline.json`` (the physics
  baseline fitted on the release) and ``cropmark_space.json``, the ids the Space serves.

Files are hashed as streams (1 MiB at a time) and sent from disk, never held in memory.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import json
import os
import re
import struct
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from builder.errors import PublishError
from builder.model.schema import HUB_ID

Kind = Literal["dataset", "model", "space"]
KINDS: tuple[Kind, ...] = ("dataset", "model", "space")
SPACE_CONFIG = "cropmark_space.json"
SPACE_SCHEMA = "cropmark-space/1"
VISION_PROBES = (
    "model.vision_tower.vision_model.encoder.layers.0.self_attn.q_proj",
    "model.vision_tower.vision_model.encoder.layers.0.mlp.fc1",
)
# A string that is a path on someone's machine: /x/..., ~/..., C:\..., \\server\...
_ABSOLUTE = re.compile(r"^(?:/[^/\s]+/|~[\\/]|[A-Za-z]:[\\/]|\\\\[^\\\s]+\\)")
# JSON files that are vocabularies, not settings: their tokens may start with '/'.
_VOCABULARIES = frozenset({"tokenizer.json", "vocab.json"})
_BLOCK = 1 << 20


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
        with source.open("rb") as handle:
            while block := handle.read(_BLOCK):
                sha256.update(block)
                sha1.update(block)
        return cls(path, size, sha256.hexdigest(), sha1.hexdigest(), source)


@dataclass(frozen=True)
class Bundle:
    """What one publish sends, after its gate passed."""

    kind: Kind
    files: tuple[LocalFile, ...]
    notes: tuple[str, ...]  # release notes: what this release is (counts, metrics)
    version: str | None = None  # the release's version (datasets), which its tag must name


def _walk(root: Path, skip: Callable[[Path], bool] = lambda p: False) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith(".") or part == "__pycache__" for part in rel.parts) or skip(rel):
            continue
        if path.is_symlink():
            raise PublishError(f"{path} is a symbolic link; publish regular files only")
        if path.is_file():
            yield path


def absolute_paths(value: Any, where: str) -> Iterator[str]:
    """Every string in a JSON value that is an absolute path (or holds the home folder)."""
    home = os.path.expanduser("~").rstrip("/")
    inside = re.compile(r"(?:^|[\s'\"=:(,])" + re.escape(home) + r"/") if len(home) > 1 else None
    if isinstance(value, str):
        if _ABSOLUTE.match(value) or (inside is not None and inside.search(value)):
            yield f"{where} = {value!r}"
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from absolute_paths(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from absolute_paths(item, f"{where}[{i}]")


def _no_absolute_paths(files: list[LocalFile]) -> None:
    found: list[str] = []
    for f in files:
        if not f.path.endswith(".json") or f.path.rsplit("/", 1)[-1] in _VOCABULARIES:
            continue
        raw = f.source if isinstance(f.source, bytes) else f.source.read_bytes()
        try:
            found += absolute_paths(json.loads(raw), f.path)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise PublishError(f"{f.path} is not valid JSON; nothing was published") from None
    if found:
        shown = "; ".join(found[:3]) + (f" (and {len(found) - 3} more)" if len(found) > 3 else "")
        raise PublishError(
            f"published JSON would hold absolute paths of this machine: {shown}; "
            "write Hub ids or paths relative to the run, and run again"
        )


# -- dataset ----------------------------------------------------------------------------------


def dataset_bundle(release: Path, repo_id: str) -> Bundle:
    """The release folder, after the audit and the offline card checks passed."""
    from builder import cards
    from builder.audit import audit_any
    from builder.errors import AuditError, ReleaseNotFoundError
    from builder.model.schema import load_json
    from builder.release import private_dir

    if not release.is_dir():
        raise ReleaseNotFoundError(f"release folder {release} does not exist; build it with `cropmark build`")
    report_path = private_dir(release) / "report.json"
    if not report_path.is_file():
        raise PublishError(
            f"{report_path} not found: only releases made by `cropmark build` "
            "(with their private report) are published"
        )
    report = load_json(report_path)
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
        raise PublishError(f"dataset card refused: {'; '.join(problems)}; nothing was published")
    files = tuple(LocalFile.from_path(p.relative_to(release).as_posix(), p) for p in _walk(release))
    counts = report["counts"]["published"]
    notes = [f"{report['name']} {report['version']}: {sum(report['counts']['tiles'].values())} tiles"]
    notes += [
        f"{split}: " + ", ".join(f"{label} {n}" for label, n in labels.items())
        for split, labels in counts.items()
    ]
    return Bundle("dataset", files, tuple(notes), str(report["version"]))


# -- model ------------------------------------------------------------------------------------


def _safetensors_names(path: Path) -> list[str]:
    """Tensor names from a safetensors header (8-byte little-endian length, then JSON)."""
    try:
        with path.open("rb") as fh:
            (length,) = struct.unpack("<Q", fh.read(8))
            if length > 100_000_000:
                raise ValueError("header too large")
            header = json.loads(fh.read(length))
    except (struct.error, ValueError, UnicodeDecodeError) as exc:
        raise PublishError(f"{path} is not a safetensors file ({exc}); save the adapter with PEFT") from None
    return [name for name in header if name != "__metadata__"]


def _check_targets(config: dict[str, Any], where: Path) -> None:
    """The adapter must not touch the vision tower (the card says so)."""
    targets, exclude = config.get("target_modules"), config.get("exclude_modules")
    for probe in VISION_PROBES:
        if isinstance(exclude, str) and re.fullmatch(exclude, probe):
            continue
        if isinstance(exclude, list) and any(probe.endswith(e) for e in exclude):
            continue
        hit = (
            re.fullmatch(targets, probe) is not None
            if isinstance(targets, str)
            else any(probe == t or probe.endswith(f".{t}") for t in targets or [])
        )
        if hit:
            raise PublishError(
                f"{where}: target_modules would adapt the vision tower ({probe}); "
                "target the language model and the projector only (a regex, or exclude_modules)"
            )


def check_hub_base(base: object, where: Path) -> str:
    """The adapter's base model must be a Hub model id that users can load."""
    if not isinstance(base, str) or not HUB_ID.fullmatch(base) or Path(base).expanduser().exists():
        raise PublishError(
            f"{where}: the adapter's base model {base!r} is not a Hub model id (a local folder?); "
            "users could not load it and the card would link to nothing: train on a Hub id "
            "such as LiquidAI/LFM2.5-VL-450M"
        )
    return base


def file_sha256(path: Path) -> str:
    return LocalFile.from_path(path.name, path).sha256


def _check_evaluation_is_this_adapter(evaluation: Mapping[str, Any], adapter: Path, base: str) -> None:
    first = evaluation["models"][0]
    where = adapter.with_name("evaluation.json")
    if first["kind"] != "vlm-lora":
        raise PublishError(
            f"{where}: its first model is {first['name']!r} (kind {first['kind']!r}), not the adapter; "
            "the model card would publish its figures as the LoRA's: evaluate the adapter "
            "(scripts/evaluate.py --adapter RUN) and publish again"
        )
    digest = file_sha256(adapter)
    scored = first.get("adapter_sha256")
    if scored != digest:
        shown = scored[:12] if isinstance(scored, str) else repr(scored)
        raise PublishError(
            f"{where} scored adapter {shown}, but this run's adapter_model.safetensors is {digest[:12]}: "
            "evaluate this adapter again (scripts/evaluate.py --adapter RUN) and publish"
        )
    if first.get("base_model") != base:
        raise PublishError(
            f"{where} scored the adapter on base model {first.get('base_model')!r}, not on {base!r}; "
            "evaluate it on its base model"
        )


def model_bundle(run: Path, repo_id: str, dataset_id: str) -> Bundle:
    """The adapter files of a training run, with the model card written after PEFT's save."""
    from builder import cards
    from builder.model.schema import check_evaluation, check_training_summary, load_json

    if not run.is_dir():
        raise PublishError(f"run folder {run} does not exist; train with scripts/train_lora.py first")
    need = ("adapter_config.json", "adapter_model.safetensors", "training_summary.json", "evaluation.json")
    missing = [name for name in need if not (run / name).is_file()]
    if missing:
        raise PublishError(f"{run} lacks {', '.join(missing)}; a run folder holds the adapter and its JSON")
    training, evaluation = load_json(run / "training_summary.json"), load_json(run / "evaluation.json")
    check_training_summary(training, str(run / "training_summary.json"))
    check_evaluation(evaluation, str(run / "evaluation.json"))
    config = load_json(run / "adapter_config.json")
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
    names = _safetensors_names(run / "adapter_model.safetensors")
    if not names or any("vision_tower" in n for n in names):
        raise PublishError(
            f"{run / 'adapter_model.safetensors'}: no LoRA weights, or weights of the vision tower"
        )
    _check_evaluation_is_this_adapter(evaluation, run / "adapter_model.safetensors", base)
    card = cards.model_card(training, evaluation, repo_id, dataset_id)
    files = [
        LocalFile.from_path(p.relative_to(run).as_posix(), p)
        for p in _walk(
            run, skip=lambda rel: rel.parts[0].startswith("checkpoint-") or rel.as_posix() == "README.md"
        )
    ]
    _no_absolute_paths(files)
    files.append(LocalFile.from_bytes("README.md", card.encode()))
    first = evaluation["models"][0]
    notes = (
        f"LoRA r={training['lora']['r']} on {training['base_model']}, {training['steps']} steps",
        f"eval ({evaluation['n']} tiles): accuracy {first['metrics']['accuracy']:.3f}, "
        f"F1 {first['metrics']['f1']:.3f}, ROC-AUC {first['metrics']['roc_auc']:.3f}",
    )
    return Bundle("model", tuple(sorted(files, key=lambda f: f.path)), notes)


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
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((alias.name, 0) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield node.module or "", node.level
            yield from ((f"{node.module}.{alias.name}", node.level) for alias in node.names if node.module)


def import_closure(entry: Path, root: Path) -> tuple[list[Path], set[str]]:
    """The project modules ``entry`` imports, recursively and with their packages' ``__init__``,
    found under ``root``; and the top-level names of the other imports (modules beside
    ``entry`` excepted: they ship with it)."""
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
            parts = module.split(".")
            if (entry.parent / f"{parts[0]}.py").is_file() or (entry.parent / parts[0]).is_dir():
                continue
            if not (root / parts[0] / "__init__.py").is_file() and not (root / f"{parts[0]}.py").is_file():
                external.add(parts[0])
                continue
            for i in range(1, len(parts) + 1):
                base = root.joinpath(*parts[:i])
                queue += [c for c in (base / "__init__.py", base.with_suffix(".py")) if c.is_file()]
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
    from builder.errors import ModelLoadError
    from builder.model import baseline as physics

    try:
        physics.load(baseline)
    except ModelLoadError as exc:
        raise PublishError(f"{exc}; nothing was published") from None
    record = json.loads(baseline.read_text(encoding="utf-8")).get("release")
    if not isinstance(record, dict) or not record.get("train_metadata_sha256"):
        raise PublishError(
            f"{baseline} does not say which release it was fitted on; fit it again with "
            "scripts/train_baseline.py on the published release"
        )
    return record


def space_config(base_model: str, model_id: str, dataset_id: str) -> dict[str, Any]:
    """``cropmark_space.json``: what the published Space serves (read by ``app.py``)."""
    for name, value in (("base model", base_model), ("model", model_id), ("dataset", dataset_id)):
        if not HUB_ID.fullmatch(value):
            raise PublishError(f"the Space's {name} {value!r} is not a Hub id ORG/NAME")
    return {
        "schema": SPACE_SCHEMA,
        "base_model": base_model,
        "adapter": model_id,
        "dataset": dataset_id,
        "baseline": "baseline.json",
    }


def space_bundle(
    space: Path,
    repo_root: Path,
    title: str,
    config: Mapping[str, Any],
    baseline: Path,
) -> Bundle:
    """``space/`` plus its README, the project modules ``app.py`` imports, the baseline and the config."""
    from builder import cards

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
    generated = {"README.md", SPACE_CONFIG, "baseline.json"}
    files: dict[str, LocalFile] = {
        p.relative_to(space).as_posix(): LocalFile.from_path(p.relative_to(space).as_posix(), p)
        for p in _walk(space, skip=lambda rel: rel.as_posix() in generated)
    }
    external: set[str] = set()
    for entry in [p for p in space.rglob("*.py") if "__pycache__" not in p.parts]:
        modules, outside = import_closure(entry, repo_root)
        external |= outside
        for module in modules:
            if module.is_relative_to(repo_root) and not module.is_relative_to(space):
                rel = module.relative_to(repo_root).as_posix()
                files[rel] = LocalFile.from_path(rel, module)
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
    readme = cards.space_readme(
        title, config["adapter"], config["dataset"], pins["gradio"], base_model=config["base_model"]
    )
    files["README.md"] = LocalFile.from_bytes("README.md", readme.encode())
    files[SPACE_CONFIG] = LocalFile.from_bytes(SPACE_CONFIG, (json.dumps(config, indent=1) + "\n").encode())
    files["baseline.json"] = LocalFile.from_path("baseline.json", baseline)
    _no_absolute_paths(list(files.values()))
    notes = (
        f"Space for {config['adapter']} on {config['base_model']} (gradio {pins['gradio']}), "
        f"dataset {config['dataset']}, {len(files)} files",
    )
    return Bundle("space", tuple(files[p] for p in sorted(files)), notes)
