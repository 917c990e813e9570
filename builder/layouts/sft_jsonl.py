"""SFT JSONL layout: leap-finetune VLM SFT rows, split by site, images sharded by folder.

::

    data/train.jsonl  data/validation.jsonl  data/test.jsonl
    images/s00000/d_tile_*.jpg  … (at most ``files_per_folder`` per leaf, 8,000 by default)
    README.md  LICENSE  NOTICE.md
    [sidecars/s00000/d_tile_*.json  only where the policy allows publishing sidecars]

Each row is :func:`builder.model.prompt.sft_row`, the one prompt of training,
evaluation and the Space: the system turn, a user turn whose content is a list of
typed parts (the image as a path relative to the dataset root, then the question)
and the assistant's answer. leap-finetune resolves those paths against its
``dataset.image_root`` (``src/leap_finetune/config/job_config.py``), which must
be the release folder.

Splits are drawn by a stable hash of each tile's **group** (its site: source
database and record; the composite's hash when the site is unknown), against
cumulative fractions, so every tile of a site, jittered copies included, lands
in one split, and adding sites never moves an existing one. The curated
``train``/``eval`` split is not used here: the group split is the point.

Per-tile sidecars (coordinates, scene id, date, label statistics) and the group
of every key always go to the private folder; the public output gets them only
under a policy that allows sidecars.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from PIL import Image

from builder import progress
from builder.domain import LABELS, TILE_NAME_RE
from builder.files import crowded_folders
from builder.layouts.base import (
    SFT_SPLITS,
    AuditContext,
    LayoutOptions,
    LayoutSpec,
    Sample,
    require_filled,
    shard_names,
    unit_hash,
)
from builder.layouts.policy import Policy, require
from builder.model.prompt import messages, sft_row

ROLES = ("system", "user", "assistant")


def assign(groups: Sequence[str], fractions: Sequence[float], salt: str) -> dict[str, str]:
    """Split of each group: its stable hash in [0, 1) against the cumulative fractions.

    Raises:
        ConfigError: a split with a positive fraction gets no group (too few groups
            for the fractions asked).
    """
    bounds, total = [], 0.0
    for fraction in fractions:
        total += fraction
        bounds.append(total)
    out: dict[str, str] = {}
    for group in sorted(set(groups)):
        u = unit_hash(group, salt)
        index = next((i for i, b in enumerate(bounds) if u < b and fractions[i] > 0), None)
        if index is None:  # u beyond a bound that rounding left under 1
            index = max(i for i, f in enumerate(fractions) if f > 0)
        out[group] = SFT_SPLITS[index]
    return require_filled(out, fractions, ", change --split-salt,")


def row(image: str, label: str) -> dict[str, Any]:
    """One SFT row: :func:`builder.model.prompt.sft_row`, the project's one prompt."""
    return dict(sft_row(image, label))


def sidecar(sample: Sample, split: str) -> dict[str, Any]:
    """The private facts of one tile (never published under the cropmark policy)."""
    site = sample.site
    return {
        "key": sample.key,
        "split": split,
        "group": sample.group,
        "label": sample.label,
        "label_stats": {"rows": len(sample.rows)},  # curation kept only rows that agree on the label
        "lat": site.lat if site else None,
        "lon": site.lon if site else None,
        "source_db": site.source_db if site else None,
        "scene_id": site.source_id if site else None,
        "date": site.date if site else None,
        "source": sample.source,
    }


# Which policy field governs each sidecar key; keys not listed are never published.
SIDECAR_POLICY = {
    "key": None,
    "split": None,
    "label": None,
    "label_stats": None,
    "group": "source_ids",
    "lat": "coordinates",
    "lon": "coordinates",
    "source_db": "source_ids",
    "scene_id": "source_ids",
    "date": "timestamps",
}


def public_sidecar(full: dict[str, Any], policy: Policy) -> dict[str, Any]:
    """The part of a sidecar ``policy`` lets out (never the private source path)."""
    out = {}
    for key, value in full.items():
        field = SIDECAR_POLICY.get(key, "never")
        if field is None or (field != "never" and getattr(policy, field)):
            out[key] = value
    return out


def write(
    samples: Sequence[Sample], dest: Path, private: Path, options: LayoutOptions, policy: Policy
) -> dict[str, Any]:
    """Write rows, sharded images and sidecars; return the layout summary."""
    split_of = assign([s.group for s in samples], options.fractions, options.salt)
    ordered = sorted(samples, key=lambda s: s.file_name)
    per = options.files_per_folder
    folders = list(shard_names(-(-len(ordered) // per)))
    where: dict[str, str] = {}
    for index, sample in enumerate(progress.bar(ordered, "copy images", len(ordered))):
        folder = folders[index // per]
        target = dest / "images" / folder / sample.file_name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sample.path, target)
        where[sample.file_name] = f"images/{folder}/{sample.file_name}"
    (dest / "data").mkdir()
    counts: dict[str, dict[str, int]] = {}
    for split in SFT_SPLITS:
        chosen = [s for s in ordered if split_of[s.group] == split]
        with (dest / "data" / f"{split}.jsonl").open("w", encoding="utf-8") as handle:
            for sample in chosen:
                handle.write(
                    json.dumps(row(where[sample.file_name], sample.label), ensure_ascii=False) + "\n"
                )
        counts[split] = {
            "rows": len(chosen),
            "groups": len({s.group for s in chosen}),
            **{label: sum(s.label == label for s in chosen) for label in LABELS},
        }
    (private / "sidecars").mkdir(parents=True, exist_ok=True)
    for sample in ordered:
        text = json.dumps(sidecar(sample, split_of[sample.group]), indent=1, sort_keys=True) + "\n"
        (private / "sidecars" / f"{sample.key}.json").write_text(text, encoding="utf-8")
        if options.public_sidecars:  # check() refused this unless the policy allows sidecars
            public = dest / "sidecars" / where[sample.file_name].split("/")[1] / f"{sample.key}.json"
            public.parent.mkdir(parents=True, exist_ok=True)
            shown = public_sidecar(sidecar(sample, split_of[sample.group]), policy)
            public.write_text(json.dumps(shown, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    groups = {sample.key: sample.group for sample in ordered}
    (private / "groups.json").write_text(
        json.dumps(groups, indent=1, sort_keys=True) + "\n", encoding="utf-8"
    )
    return {
        "fractions": list(options.fractions),
        "salt": options.salt,
        "files_per_folder": per,
        "folders": len(folders),
        "groups": len(split_of),
        "splits": counts,
        "public_sidecars": options.public_sidecars,
    }


def configs() -> list[dict[str, Any]]:
    return [
        {
            "config_name": "default",
            "data_files": [{"split": split, "path": f"data/{split}.jsonl"} for split in SFT_SPLITS],
        }
    ]


def _check_part(part: Any, where: str, root: Path, images: list[str]) -> Iterator[str]:
    if not isinstance(part, dict) or part.get("type") not in ("text", "image"):
        yield f"{where}: a content part is not {{'type': 'text'|'image', ...}}"
        return
    if part["type"] == "text":
        if not isinstance(part.get("text"), str) or not part["text"]:
            yield f"{where}: text part without text"
        return
    image = part.get("image")
    if not isinstance(image, str) or PurePosixPath(image).is_absolute() or ".." in PurePosixPath(image).parts:
        yield f"{where}: image {str(image)[:60]!r} is not a relative path inside the dataset"
        return
    path = root / image
    if not path.is_file():
        yield f"{where}: image {image} does not exist"
        return
    try:
        with Image.open(path) as opened:
            opened.verify()
    except (OSError, SyntaxError, ValueError) as exc:
        yield f"{where}: image {image} does not open ({exc})"
        return
    images.append(image)


def validate(root: Path, groups: dict[str, str] | None = None, folders: bool = True) -> list[str]:
    """Check every row of an SFT JSONL layout; an empty list means valid.

    Checked: each line is a JSON object with ``messages``; roles run system
    (optional), user, assistant; content is a list of typed parts; the turns are
    the project's one prompt (:func:`builder.model.prompt.messages`: image, then
    the question); each image is a relative path, exists and opens; the answer is
    Yes or No; no image is used by two splits; every leaf folder holds at most
    10,000 files. With ``groups`` (the private key -> site map), also that no
    site spans two splits.
    """
    problems: list[str] = []
    split_of_image: dict[str, str] = {}
    split_of_group: dict[str, str] = {}
    for split in SFT_SPLITS:
        path = root / "data" / f"{split}.jsonl"
        if not path.is_file():
            problems.append(f"data/{split}.jsonl: missing")
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            where = f"data/{split}.jsonl:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                problems.append(f"{where}: not JSON")
                continue
            turns = record.get("messages") if isinstance(record, dict) else None
            if not isinstance(turns, list) or not turns:
                problems.append(f"{where}: no messages list")
                continue
            roles = [t.get("role") if isinstance(t, dict) else None for t in turns]
            if roles not in (list(ROLES), list(ROLES[1:])):
                problems.append(f"{where}: roles {roles}; expected [system,] user, assistant")
                continue
            images: list[str] = []
            for turn in turns:
                content = turn.get("content")
                if not isinstance(content, list):
                    problems.append(f"{where}: {turn['role']} content is not a list of typed parts")
                    continue
                for part in content:
                    problems.extend(_check_part(part, where, root, images))
            answer = turns[-1]["content"]
            if not (isinstance(answer, list) and len(answer) == 1 and answer[0].get("text") in LABELS):
                problems.append(f"{where}: assistant answer is not exactly Yes or No")
            elif len(images) == 1 and turns != messages(images[0], answer[0]["text"]):
                problems.append(
                    f"{where}: turns are not the project's prompt (system, user [image, question], answer)"
                )
            if not images:
                problems.append(f"{where}: no image")
            for image in images:
                if split_of_image.setdefault(image, split) != split:
                    problems.append(f"{where}: image {image} is also in {split_of_image[image]}")
                key = PurePosixPath(image).stem
                if groups is not None:
                    group = groups.get(key)
                    if group is None:
                        problems.append(f"{where}: image {image} has no group in the private map")
                    elif split_of_group.setdefault(group, split) != split:
                        problems.append(
                            f"{where}: a site of {split} is also in {split_of_group[group]} ({key})"
                        )
    if folders:  # the layout audit checks folders itself
        problems.extend(crowded_folders(root))
    return problems


def checks(context: AuditContext) -> Iterator[str]:
    """The SFT JSONL layout's own audit: sidecars against the policy, rows, sites, images."""
    root, private, policy = context.root, context.private, context.policy
    if (root / "sidecars").exists() and not policy.sidecars:
        yield f"sidecars/: policy {policy.name!r} forbids publishing per-tile sidecars"
    elif (root / "sidecars").exists():
        for path in sorted((root / "sidecars").rglob("*.json")):
            for key in json.loads(path.read_text(encoding="utf-8")):
                field = SIDECAR_POLICY.get(key, "never")
                if field == "never" or (field is not None and not getattr(policy, field)):
                    rel = path.relative_to(root).as_posix()
                    yield f"{rel}: key {key!r} is not allowed by policy {policy.name!r}"
    groups_path = private / "groups.json" if private is not None else None
    groups = (
        json.loads(groups_path.read_text(encoding="utf-8")) if groups_path and groups_path.is_file() else None
    )
    if groups is None:
        yield "no private site map (groups.json): cannot prove that no site spans two splits"
    yield from validate(root, groups, folders=False)
    # An image whose bytes hash to an audited tile is that tile: metadata and all.
    for rel, digest in sorted(context.digests.items()):
        if rel.startswith("images/"):
            if not TILE_NAME_RE.match(PurePosixPath(rel).name):
                yield f"{rel}: not an opaque tile name"
            if digest not in context.published:
                yield f"{rel}: not one of the tiles the imagefolder audit passed"


def policy_check(options: LayoutOptions, policy: Policy) -> None:
    """Refuse ``--public-sidecars`` unless the policy publishes sidecars."""
    if options.public_sidecars:
        require(policy, "sidecars", "--public-sidecars (per-tile sidecars with coordinates and scene ids)")


LAYOUT = LayoutSpec(
    name="sft-jsonl",
    top_level=frozenset({"README.md", "LICENSE", "NOTICE.md", "data", "images", "sidecars"}),
    options=("fractions", "salt", "files_per_folder", "public_sidecars"),
    audited="images, text and policy",
    configs=configs,
    writer=write,
    checks=checks,
    policy_check=policy_check,
    marks=(("data", ".jsonl"),),
)
