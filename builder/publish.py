"""Release pushes of the dataset, the model (LoRA adapter) and the Space to the Hub.

One publish is: **gate** (the audit and the offline card checks for a dataset; the
adapter and JSON checks for a model; the import closure and pinned requirements
for a Space) → **plan** (local files against the remote tree: SHA-256 for LFS
files, git blob ids for regular ones) → **one commit** that adds, changes and
deletes exactly what the plan says, with ``parent_commit`` set so a remote that
moved under us is a conflict, never an overwrite → **one tag** on that commit.
A tag is never moved: a tag that already names other content is refused.

Transient faults (HTTP 429/5xx, dropped connections) are retried with backoff;
every retry plans again from the remote, so a commit whose reply was lost is
found on the remote instead of being made twice. The token comes from
``HF_TOKEN`` or huggingface_hub's login, travels only in the Authorization
header, and is scrubbed from every message this module prints.
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
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from builder.errors import CropmarkError

if TYPE_CHECKING:
    from huggingface_hub import HfApi

Kind = Literal["dataset", "model", "space"]
KINDS: tuple[Kind, ...] = ("dataset", "model", "space")
# Files the Hub writes into a new repo; a release does not own them and never deletes them.
HUB_MANAGED = frozenset({".gitattributes"})
TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
SHOWN_PER_KIND = 20
VISION_PROBES = (
    "model.vision_tower.vision_model.encoder.layers.0.self_attn.q_proj",
    "model.vision_tower.vision_model.encoder.layers.0.mlp.fc1",
)


class PublishError(CropmarkError, RuntimeError):
    """A publish refused by its gate, or stopped by the remote; nothing partial was committed."""


class PublishConflictError(PublishError):
    """The remote moved while publishing (HTTP 409/412); nothing was forced."""


# -- files ------------------------------------------------------------------------------------


def git_blob_oid(data: bytes) -> str:
    """The git blob id the Hub reports for a regular (non-LFS) file."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class LocalFile:
    """A file a publish sends: its path in the repo, its content's digests and where it lives."""

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
        data = source.read_bytes()
        return cls(path, len(data), hashlib.sha256(data).hexdigest(), git_blob_oid(data), source)

    def read(self) -> bytes:
        return self.source if isinstance(self.source, bytes) else self.source.read_bytes()


@dataclass(frozen=True)
class RemoteFile:
    path: str
    size: int
    git_oid: str
    sha256: str | None  # set for LFS files

    def same_as(self, local: LocalFile) -> bool:
        if self.sha256 is not None:
            return self.sha256 == local.sha256
        return self.git_oid == local.git_oid


@dataclass(frozen=True)
class Bundle:
    """What one publish sends, after its gate passed."""

    kind: Kind
    files: tuple[LocalFile, ...]
    notes: tuple[str, ...]  # release notes: what this release is (counts, metrics)


@dataclass(frozen=True)
class Plan:
    repo_id: str
    kind: Kind
    head: str | None  # the remote commit planned against; None when the repo does not exist yet
    added: tuple[LocalFile, ...]
    changed: tuple[LocalFile, ...]
    deleted: tuple[RemoteFile, ...]
    unchanged: int

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.deleted)

    @property
    def upload_bytes(self) -> int:
        return sum(f.size for f in (*self.added, *self.changed))

    def summary(self) -> str:
        return (
            f"{len(self.added)} added, {len(self.changed)} changed, {len(self.deleted)} deleted, "
            f"{self.unchanged} unchanged"
        )

    def lines(self) -> Iterator[str]:
        where = f"remote head {self.head[:12]}" if self.head else "new repo"
        yield (
            f"plan for {self.kind} {self.repo_id} ({where}): {self.summary()}, "
            f"{human(self.upload_bytes)} to upload"
        )
        for sign, files in (("+", self.added), ("~", self.changed), ("-", self.deleted)):
            for f in files[:SHOWN_PER_KIND]:
                yield f"  {sign} {f.path} ({human(f.size)})"
            if len(files) > SHOWN_PER_KIND:
                yield f"  {sign} ... and {len(files) - SHOWN_PER_KIND} more"


def human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def make_plan(
    repo_id: str, kind: Kind, head: str | None, local: Iterable[LocalFile], remote: dict[str, RemoteFile]
) -> Plan:
    """Compare the local files with the remote tree: what to add, change and delete."""
    added, changed, unchanged = [], [], 0
    mine = {f.path: f for f in local}
    for path in sorted(mine):
        theirs = remote.get(path)
        if theirs is None:
            added.append(mine[path])
        elif theirs.same_as(mine[path]):
            unchanged += 1
        else:
            changed.append(mine[path])
    deleted = tuple(remote[p] for p in sorted(remote) if p not in mine and p not in HUB_MANAGED)
    return Plan(repo_id, kind, head, tuple(added), tuple(changed), deleted, unchanged)


def _walk(root: Path, skip: Callable[[Path], bool] = lambda p: False) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith(".") or part == "__pycache__" for part in rel.parts) or skip(rel):
            continue
        if path.is_symlink():
            raise PublishError(f"{path} is a symbolic link; publish regular files only")
        if path.is_file():
            yield path


# -- gates and bundles ------------------------------------------------------------------------


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
    return Bundle("dataset", files, tuple(notes))


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
    base = config.get("base_model_name_or_path")
    if base != training["base_model"]:
        raise PublishError(
            f"{run}: the adapter's base model {base!r} differs from the training summary's "
            f"{training['base_model']!r}; publish adapters of a Hub base model"
        )
    _check_targets(config, run / "adapter_config.json")
    names = _safetensors_names(run / "adapter_model.safetensors")
    if not names or any("vision_tower" in n for n in names):
        raise PublishError(
            f"{run / 'adapter_model.safetensors'}: no LoRA weights, or weights of the vision tower"
        )
    card = cards.model_card(training, evaluation, repo_id, dataset_id)
    files = [
        LocalFile.from_path(p.relative_to(run).as_posix(), p)
        for p in _walk(
            run, skip=lambda rel: rel.parts[0].startswith("checkpoint-") or rel.as_posix() == "README.md"
        )
    ]
    files.append(LocalFile.from_bytes("README.md", card.encode()))
    first = evaluation["models"][0]
    notes = (
        f"LoRA r={training['lora']['r']} on {training['base_model']}, {training['steps']} steps",
        f"eval ({evaluation['n']} tiles): accuracy {first['metrics']['accuracy']:.3f}, "
        f"F1 {first['metrics']['f1']:.3f}, ROC-AUC {first['metrics']['roc_auc']:.3f}",
    )
    return Bundle("model", tuple(sorted(files, key=lambda f: f.path)), notes)


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


def space_bundle(space: Path, repo_root: Path, title: str, model_id: str, dataset_id: str) -> Bundle:
    """``space/`` plus its rendered README and the project modules ``app.py`` imports."""
    from builder import cards

    app = space / "app.py"
    if not app.is_file():
        raise PublishError(f"{app} not found; a Gradio Space starts from app.py")
    pins = _requirements(space / "requirements.txt")
    if "gradio" not in pins:
        raise PublishError(f"{space / 'requirements.txt'} does not pin gradio; add gradio==X.Y.Z")
    files: dict[str, LocalFile] = {
        p.relative_to(space).as_posix(): LocalFile.from_path(p.relative_to(space).as_posix(), p)
        for p in _walk(space, skip=lambda rel: rel.as_posix() == "README.md")
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
    readme = cards.space_readme(title, model_id, dataset_id, pins["gradio"])
    files["README.md"] = LocalFile.from_bytes("README.md", readme.encode())
    notes = (f"Space for {model_id} (gradio {pins['gradio']}), {len(files)} files",)
    return Bundle("space", tuple(files[p] for p in sorted(files)), notes)


# -- remote -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Remote:
    head: str | None
    files: dict[str, RemoteFile]
    tags: dict[str, str]  # tag -> commit


def _tree(api: HfApi, repo_id: str, kind: Kind, revision: str) -> dict[str, RemoteFile]:
    from huggingface_hub import RepoFile

    out = {}
    for item in api.list_repo_tree(repo_id, repo_type=kind, revision=revision, recursive=True):
        if isinstance(item, RepoFile):
            sha = item.lfs.sha256 if item.lfs is not None else None
            out[item.path] = RemoteFile(item.path, item.size, item.blob_id, sha)
    return out


def read_remote(api: HfApi, repo_id: str, kind: Kind) -> Remote:
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        info = api.repo_info(repo_id, repo_type=kind)
    except RepositoryNotFoundError:
        return Remote(None, {}, {})
    head = info.sha
    assert head is not None
    refs = api.list_repo_refs(repo_id, repo_type=kind)
    return Remote(head, _tree(api, repo_id, kind, head), {t.name: t.target_commit for t in refs.tags})


# -- the push ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    plan: Plan
    commit: str | None  # the commit made, None when nothing changed (or a dry run)
    tag: str | None  # the tag created, None when it existed on the same content (or none asked)
    attempts: int


def _token() -> str | None:
    from huggingface_hub import get_token

    return get_token()


def redact(text: str, token: str | None) -> str:
    text = re.sub(r"hf_[A-Za-z0-9]{6,}", "hf_***", text)
    return text.replace(token, "***") if token else text


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _transient(exc: BaseException) -> bool:
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    if isinstance(exc, HfHubHTTPError):
        return _status(exc) in TRANSIENT_STATUS
    return isinstance(exc, (httpx2.TransportError, ConnectionError, TimeoutError))


def _release_notes(bundle: Bundle, plan: Plan, tag: str | None) -> str:
    lines = [*bundle.notes, "", f"changes: {plan.summary()}"]
    for sign, files in (("+", plan.added), ("~", plan.changed), ("-", plan.deleted)):
        lines += [f"{sign} {f.path}" for f in files[:50]]
        if len(files) > 50:
            lines.append(f"{sign} ... and {len(files) - 50} more")
    if tag:
        lines.append(f"tag: {tag}")
    return "\n".join(lines)


def _publish_once(
    api: HfApi, bundle: Bundle, repo_id: str, tag: str | None, private: bool, say: Callable[[str], None]
) -> tuple[Plan, str | None, str | None]:
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    remote = read_remote(api, repo_id, bundle.kind)
    if tag and tag in remote.tags:
        tagged = _tree(api, repo_id, bundle.kind, remote.tags[tag])
        differs = make_plan(repo_id, bundle.kind, remote.tags[tag], bundle.files, tagged)
        if not differs.empty:
            raise PublishError(
                f"tag {tag} of {repo_id} already names other content ({differs.summary()}); "
                "tags are never moved: publish under a new version tag"
            )
    plan = make_plan(repo_id, bundle.kind, remote.head, bundle.files, remote.files)
    for line in plan.lines():
        say(line)
    head = remote.head
    if head is None:
        api.create_repo(
            repo_id,
            repo_type=bundle.kind,
            private=private,
            exist_ok=True,
            space_sdk="gradio" if bundle.kind == "space" else None,
        )
        head = api.repo_info(repo_id, repo_type=bundle.kind).sha
        plan = make_plan(
            repo_id, bundle.kind, head, bundle.files, _tree(api, repo_id, bundle.kind, head or "main")
        )
    commit = None
    if not plan.empty:
        operations: list[Any] = [CommitOperationAdd(f.path, f.read()) for f in (*plan.added, *plan.changed)]
        operations += [CommitOperationDelete(f.path) for f in plan.deleted]
        title = f"Release {tag}" if tag else "Release"
        info = api.create_commit(
            repo_id,
            operations,
            repo_type=bundle.kind,
            commit_message=f"{title}: {plan.summary()}",
            commit_description=_release_notes(bundle, plan, tag),
            parent_commit=head,
        )
        commit = info.oid
        say(f"committed {commit[:12]} to {repo_id}: {plan.summary()}")
    else:
        say(f"{repo_id} already holds this release: nothing to commit")
    made_tag = None
    if tag and tag not in remote.tags:
        api.create_tag(
            repo_id,
            tag=tag,
            revision=commit or head,
            repo_type=bundle.kind,
            tag_message="\n".join(bundle.notes),
        )
        made_tag = tag
        say(f"tagged {(commit or head or '')[:12]} as {tag}")
    return plan, commit, made_tag


def publish(
    bundle: Bundle,
    repo_id: str,
    *,
    tag: str | None = None,
    dry_run: bool = False,
    private: bool = False,
    attempts: int = 4,
    backoff_s: float = 2.0,
    say: Callable[[str], None] = print,
    api: HfApi | None = None,
) -> Outcome:
    """Push ``bundle`` to ``repo_id`` as one commit (and a tag); see the module docstring."""
    from huggingface_hub import HfApi

    token = _token()
    api = api or HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None, token=token or None)
    say_clean: Callable[[str], None] = lambda line: say(redact(line, token))  # noqa: E731
    if dry_run:
        try:
            remote = read_remote(api, repo_id, bundle.kind)
        except Exception as exc:
            say_clean(
                f"cannot read {repo_id} from the Hub ({type(exc).__name__}); planning against an empty repo"
            )
            remote = Remote(None, {}, {})
        plan = make_plan(repo_id, bundle.kind, remote.head, bundle.files, remote.files)
        for line in plan.lines():
            say_clean(line)
        say_clean("dry run: nothing was written")
        return Outcome(plan, None, None, 0)
    from huggingface_hub.errors import HfHubHTTPError

    for attempt in range(1, attempts + 1):
        try:
            plan, commit, made_tag = _publish_once(api, bundle, repo_id, tag, private, say_clean)
            return Outcome(plan, commit, made_tag, attempt)
        except Exception as exc:
            http = isinstance(exc, HfHubHTTPError)
            status = _status(exc) if http else None
            reason = redact(_first_line(exc), token)
            if status in (409, 412):
                raise PublishConflictError(
                    f"{repo_id} changed while publishing (HTTP {status}: {reason}); "
                    "nothing was forced: run publish again to plan against the new remote"
                ) from None
            if status in (401, 403):
                raise PublishError(
                    f"the Hub refused the credentials for {repo_id} (HTTP {status}); "
                    "set HF_TOKEN or run `hf auth login` with a write token"
                ) from None
            transient = _transient(exc)
            if not transient and not http:
                raise  # our own refusals (a moved tag) and programming errors
            if not transient or attempt == attempts:
                shown = reason if http else f"{type(exc).__name__}: {reason}"
                raise PublishError(
                    f"publishing {repo_id} failed after {attempt} attempt(s): {shown}"
                ) from None
            wait = backoff_s * 2 ** (attempt - 1)
            say_clean(f"attempt {attempt} failed ({type(exc).__name__}: {reason}); retrying in {wait:g} s")
            time.sleep(wait)
    raise AssertionError("unreachable")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
