"""Cards: the dataset card, the model card and the Space README.

YAML headers come only from huggingface_hub's card-data classes; templates in
``cards/`` hold prose. Rendering uses a Jinja ``Environment`` with
``StrictUndefined`` so that a misspelt variable fails the build instead of
printing an empty string (huggingface_hub's own ``from_template`` does not).
Every figure in a card comes from the build report, the training summary or the
evaluation JSON; :func:`validate_dataset_card` checks it offline.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
from huggingface_hub import (
    DatasetCard,
    DatasetCardData,
    EvalResult,
    ModelCard,
    ModelCardData,
    SpaceCard,
    SpaceCardData,
)

from builder import figures
from builder.domain import BASE_MODEL, LABELS, SPLITS, TILE_NAME_PATTERN, Reason
from builder.errors import CropmarkError
from builder.files import CARDS_DIR, tree
from builder.layouts import registry
from builder.model.prompt import PROMPT, SYSTEM_PROMPT
from builder.quality import gates, thresholds
from builder.release.report import NO_SITE_CHECK, BuildReport, Leakage, SiteLeakage
from builder.scan import private_values, redact

PRETTY_NAME = "Cropmark Disambiguator S2"
DATASET_TAGS = ["sentinel-2", "remote-sensing", "archaeology", "cropmarks", "earth-observation", "geospatial"]
PAPER_DOI = "10.1038/s41598-026-45441-0"
# The gradio of the Space (its README's sdk_version): the version space/requirements.txt and
# constraints.txt pin (tests/test_space.py checks that the three agree). A constant, so that an
# installed wheel renders the Space README without the repository's files.
SPACE_GRADIO = "6.31.0"
# One sentence per rejection reason, for the card's curation table.
REASON_TEXT = {
    Reason.UNREADABLE_ROW: "manifest line not readable (not UTF-8, not JSON, not an SFT row)",
    Reason.NO_ANSWER: "no assistant answer",
    Reason.BAD_LABEL: "answer other than exactly Yes or No",
    Reason.NO_IMAGE: "no image in the user turn",
    Reason.UNSAFE_PATH: "image path outside the corpus",
    Reason.MISSING_FILE: "composite file missing",
    Reason.QUARANTINED: "composite later quarantined",
    Reason.SIBLING_DUPLICATE: "repeats a composite already used by a sibling row (same label)",
    Reason.LABEL_CONFLICT: "composite with conflicting labels (dropped whole)",
    Reason.CROSS_SPLIT: "train row of a composite that is in eval",
    Reason.UNREADABLE_IMAGE: "composite unreadable (empty, corrupt, truncated, not JPEG/PNG)",
    Reason.BAD_GEOMETRY: "composite not 512x512",
    Reason.BAD_PIXEL_FORMAT: "composite not 8-bit RGB",
    Reason.DECOMPRESSION_BOMB: "composite header promises too many pixels",
    Reason.BAD_ORIENTATION: "composite EXIF orientation outside 1-8 (how it displays is unknown)",
    Reason.SIDE_CONFLICT: "copies of one composite name different raw bands, land cover, cloud mask or site",
    Reason.BAD_BANDS: "raw Sentinel-2 bands beside the composite unusable (unreadable, implausible, small)",
    Reason.BAD_SIDE_RASTER: "cloud mask or land-cover raster unusable (unreadable, not covering the scene)",
    Reason.SWAPPED_HALVES: "composite halves swapped (false colour on the right, context on the left)",
    Reason.NEAR_DUPLICATE: "train tile a near-duplicate of an eval tile (perceptual hash), dropped",
    Reason.SITE_LEAK: "train tile of the same site as an eval tile (source record or distance), dropped",
}


def environment() -> jinja2.Environment:
    """The one Jinja environment of the project: strict, no autoescape (Markdown)."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(CARDS_DIR),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(template: str, context: Mapping[str, Any]) -> str:
    """Render ``cards/<template>`` with ``context``; an unknown variable raises."""
    return environment().get_template(template).render(**context)


# The top-level text files of every layout; everything else in a release is data.
CARD_FILES = frozenset({"README.md", "LICENSE", "NOTICE.md"})
# Hex digits written as the letters a-p (as in tile names): a fingerprint in the card then
# holds no run of digits that the audit's record-number and date patterns could match.
_HEX_LETTERS = str.maketrans("0123456789abcdef", "abcdefghijklmnop")
_FINGERPRINT = re.compile(r"data files (?P<fingerprint>[a-p]{64})$")


def data_fingerprint(release: Path) -> str:
    """SHA-256 of a release's data: the sorted ``path<TAB>sha256`` lines of every file but
    README.md, LICENSE and NOTICE.md, its hex digits written as the letters a-p.

    The card puts it in the ``description`` of each ``configs`` entry. datasets 5 names the
    cache of a local folder whose README has ``configs`` after the folder's base name (here
    the version) and a hash of the README's configs and ``dataset_info`` only
    (``datasets/load.py``, ``LocalDatasetModuleFactory.get_module``: the configs' data files
    stay glob patterns there, so neither the files nor their paths or times are hashed). Two
    builds with the same version would otherwise share one cache entry and ``load_dataset``
    would show whichever was loaded first. A builder config's ``description`` is one of the
    values that hash covers.
    """
    digest = hashlib.sha256()  # of the "path<TAB>sha256<LF>" lines, hashed one by one
    for rel, path, _ in tree(release):
        if path.is_file() and rel not in CARD_FILES:
            with path.open("rb") as handle:
                digest.update(f"{rel}\t{hashlib.file_digest(handle, 'sha256').hexdigest()}\n".encode())
    return digest.hexdigest().translate(_HEX_LETTERS)


def config_description(report: BuildReport) -> str:
    """The ``description`` of the card's configs: the release and its data fingerprint."""
    fingerprint = report.data_fingerprint
    if not isinstance(fingerprint, str) or not re.fullmatch(r"[a-p]{64}", fingerprint):
        raise CropmarkError(
            "the build report has no data_fingerprint (a report of an older build); rebuild the release"
        )
    return f"{report.name} {report.version}, data files {fingerprint}"


def card_fingerprints(text: str) -> list[str | None]:
    """The data fingerprint each ``configs`` entry of a card names (None where it names none)."""
    data: dict[str, Any] = DatasetCard(text).data.to_dict()  # type: ignore[no-untyped-call]
    found: list[str | None] = []
    for config in data.get("configs") or []:
        match = _FINGERPRINT.search(str(config.get("description", "")))
        found.append(match["fingerprint"] if match else None)
    return found


# The Hub's size buckets (datasets 5.2, datasets/utils/resources/size_categories.json).
SIZE_CATEGORIES = (
    "n<1K",
    "1K<n<10K",
    "10K<n<100K",
    "100K<n<1M",
    "1M<n<10M",
    "10M<n<100M",
    "100M<n<1B",
    "1B<n<10B",
    "10B<n<100B",
    "100B<n<1T",
)


def size_category(n: int) -> str:
    """The Hub's ``size_categories`` bucket for ``n`` examples."""
    for power, name in enumerate(SIZE_CATEGORIES, start=3):
        if n < 10**power:
            return name
    return "n>1T"


def _card(card_class: type[Any], data: Any, body: str) -> str:
    return str(card_class(f"---\n{data.to_yaml()}\n---\n{body}"))


def dataset_card_data(report: BuildReport) -> DatasetCardData:
    total = report.total_tiles
    return DatasetCardData(
        license="cdla-permissive-2.0",
        pretty_name=PRETTY_NAME,
        # The prompt, the labels and the card are English.
        language=["en"],
        # Labels come from existing heritage records, not from annotation for this dataset.
        annotations_creators=["found"],
        # New tiles cut from Sentinel-2 scenes, not derived from another Hub dataset.
        source_datasets=["original"],
        task_categories=["image-classification"],
        # The Hub's sub-tasks of image-classification (huggingface.js, packages/tasks/src/pipelines.ts);
        # two classes, Yes and No.
        task_ids=["multi-class-image-classification"],
        tags=DATASET_TAGS,
        size_categories=[size_category(total)],
        configs=[
            {"config_name": c["config_name"], "description": config_description(report)}
            | {k: v for k, v in c.items() if k != "config_name"}
            for c in layout_configs(report.layout)
        ],
    )


def layout_configs(layout: str) -> list[dict[str, Any]]:
    """The ``configs:`` entry of a release layout (its entry in :mod:`builder.layouts.registry`)."""
    return registry.get(layout).configs()


def dataset_context(report: BuildReport, repo_id: str | None) -> dict[str, Any]:
    counts = report.counts
    rejected = counts.rejected
    site = report.site_leakage or NO_SITE_CHECK
    # Gate rejections are described with the thresholds this build used (its report's config).
    gate_text = thresholds.reason_texts(report.gates.config)
    texts = {**REASON_TEXT, **{reason: gate_text[gate] for gate, reason in gates.GATE_REASONS.items()}}
    rows = [
        {"reason": reason.value, "text": texts[reason], **rejected[reason.value]}
        for reason in Reason
        if reason.value in rejected
    ]
    return {
        "pretty_name": PRETTY_NAME,
        "repo_id": repo_id,
        "version": report.version,
        "rows": counts.rows,
        "total_rows": sum(counts.rows.values()),
        "tiles": counts.tiles,
        "total_tiles": report.total_tiles,
        "published": counts.published,
        "rejections": rows,
        "cut_modes": report.cut_modes,
        "cut_other": _cut_other(report.cut_reasons),
        "sources": report.sources,
        "labels": LABELS,
        "prompt": PROMPT,
        "doi": PAPER_DOI,
        "base_model": BASE_MODEL,
        # The templates read the report's parts as report.json holds them.
        "gates": report.gates.to_dict(),
        "halves": None if report.halves is None else report.halves.to_dict(),
        "leakage": report.leakage.to_dict(),
        "leak_outcome": _leak_outcome(report.leakage),
        "site": site.to_dict(),
        "site_outcome": _site_outcome(site),
        "site_unchecked": sum(site.unchecked.values()),
        "gate_counts": _gate_counts,
        "not_evaluated": [
            {"number": number, "count": count, "reason": reason}
            for number, gate in enumerate(gates.GATES, 1)
            for reason, count in report.gates.per_gate[gate].not_evaluated_reasons.items()
        ],
        "layout": report.layout,
        "layout_summary": report.layout_summary,
        "pct": figures.pct,  # thresholds quoted exactly as the build used them
        "num": figures.number,
    }


def _cut_other(reasons: Mapping[str, int]) -> str:
    """Why JPEG composites were re-encoded rather than cut losslessly, for the card ("" if none)."""
    oriented = sum(n for d, n in reasons.items() if d.startswith("EXIF orientation"))
    colour = sum(n for d, n in reasons.items() if d.startswith("colour space"))
    formats = sum(n for d, n in reasons.items() if d.endswith(" source"))
    other = sum(reasons.values()) - oriented - colour - formats
    parts = [
        f"{oriented} with an EXIF orientation, cut as a viewer shows them" if oriented else "",
        f"{colour} whose colour space is not plainly YCbCr (RGB, or signalled ambiguously)" if colour else "",
        f"{other} whose block layout does not allow a lossless cut" if other else "",
    ]
    return "; ".join(p for p in parts if p)


def _gate_counts(gate: Mapping[str, Any]) -> str:
    """The numeric cells of one row of the card's gate table."""
    cells = ("evaluated", "passed", "failed", "not_evaluated", "rejected")
    return " | ".join(str(gate[cell]) for cell in cells)


def _site_outcome(site: SiteLeakage) -> str:
    if site.dropped:
        return " and dropped from `train` (the `site_leak` row above)."
    if site.train_tiles:
        records = site.same_record
        return (
            f" and kept ({records} of them from the same record as an eval tile); "
            "the private report lists them."
        )
    return "."


def _leak_outcome(leaks: Leakage) -> str:
    if leaks.dropped:
        return " and dropped from `train` (the `near_duplicate` row above)."
    if leaks.train_tiles:
        return " and kept; they are listed below, so that you can drop them."
    return "."


def dataset_card(report: BuildReport, repo_id: str | None = None) -> str:
    """The full dataset card of a release, every figure from its build report."""
    body = render("dataset_card.md.j2", dataset_context(report, repo_id))
    return _card(DatasetCard, dataset_card_data(report), body)


def model_card(
    training: Mapping[str, Any], evaluation: Mapping[str, Any], repo_id: str, dataset_id: str
) -> str:
    """The model card of a LoRA adapter from its training summary and evaluation JSON.

    Write it **after** PEFT's ``save_pretrained``, which rewrites README metadata.
    """
    lora = training["lora"]
    results = [
        EvalResult(
            task_type="image-text-to-text",
            dataset_type=dataset_id,
            dataset_name=PRETTY_NAME,
            dataset_split=evaluation["split"],
            metric_type=metric,
            metric_value=round(float(evaluation["models"][0]["metrics"][metric]), 4),
        )
        for metric in ("accuracy", "precision", "recall", "f1")
    ]
    data = ModelCardData(
        base_model=training["base_model"],
        library_name="peft",
        pipeline_tag="image-text-to-text",
        license="other",
        license_name="lfm1.0",
        license_link=f"https://huggingface.co/{BASE_MODEL}/blob/main/LICENSE",
        datasets=[dataset_id],
        tags=["lora", "sentinel-2", "archaeology", "cropmarks", "remote-sensing"],
        model_name=repo_id.split("/")[-1],
        eval_results=results,
    )
    context = {
        "repo_id": repo_id,
        "dataset_id": dataset_id,
        "base_model": training["base_model"],
        "lora": lora,
        "release": training["release"],
        "training": training,
        "evaluation": evaluation,
        "prompt": PROMPT,
        "system_prompt": SYSTEM_PROMPT,
        "labels": LABELS,
        "doi": PAPER_DOI,
    }
    return _card(ModelCard, data, render("model_card.md.j2", context))


def space_readme(
    title: str,
    model_id: str,
    dataset_id: str,
    gradio_version: str,
    python_version: str = "3.11",
    base_model: str = BASE_MODEL,
) -> str:
    """The Space README: ``sdk: gradio`` pinned to the Space's gradio version."""
    data = SpaceCardData(
        title=title,
        sdk="gradio",
        sdk_version=gradio_version,
        python_version=python_version,
        app_file="app.py",
        license="other",
        models=[base_model, model_id],
        datasets=[dataset_id],
        tags=["archaeology", "sentinel-2", "cropmarks"],
    )
    context = {"title": title, "model_id": model_id, "dataset_id": dataset_id, "base_model": base_model}
    return _card(SpaceCard, data, render("space_readme.md.j2", context))


REQUIRED_YAML = (
    "license",
    "pretty_name",
    "language",
    "annotations_creators",
    "source_datasets",
    "task_categories",
    "task_ids",
    "tags",
    "size_categories",
    "configs",
)
# What the card must tell every user, whatever the build (checked with whitespace collapsed).
REQUIRED_SENTENCES = (
    "No expert confirmed that the feature is visible",
    "at least 1 km from any known record",
    "the noise has a floor",
    "flags candidate cropmarks for an archaeologist to verify",
    "heritage protection laws apply",
    "Cereal-land bias",
    "Classification only",
    "no other country was validated",
    "Physically-based modelling for retrospective detection of archaeological proxies (cropmarks)",
    "E. Gravanis and A. Agapiou",
    '"AI in Space" hackathon',
)
_TABLE_ROW = re.compile(r"^\| `(?P<reason>[a-z0-9_]+)` \| .* \| (?P<train>\d+) \| (?P<eval>\d+) \|$", re.M)
_SUMMARY = re.compile(r"\*\*(?P<train>\d+) train\*\* and \*\*(?P<eval>\d+) eval\*\* tiles")
_ROWS = re.compile(r"(?P<train>\d+) train and (?P<eval>\d+) eval SFT rows")
_SPLIT_ROW = re.compile(
    r"^\| (?P<split>train|eval) \| (?P<tiles>\d+) \| (?P<Yes>\d+) \| (?P<No>\d+) \|$", re.M
)
_GATE_ROW = re.compile(
    r"^\| (?P<n>[1-4])\. [^|]+ \| [^|]+ \| (?P<evaluated>\d+) \| (?P<passed>\d+) \| (?P<failed>\d+) "
    r"\| (?P<not_evaluated>\d+) \| (?P<rejected>\d+) \|$",
    re.M,
)
_GATE_CELLS = ("evaluated", "passed", "failed", "not_evaluated", "rejected")
_HALVES = re.compile(
    r"\*\*(?P<in_order>\d+)\*\* published tiles were found in order, \*\*(?P<swapped>\d+)\*\* "
    r"composites were rejected with swapped halves, and the check was \*\*not evaluated\*\* on "
    r"\*\*(?P<not_evaluated>\d+)\*\* published tiles"
)
_SITE = re.compile(r"\*\*(?P<n>\d+)\*\* train tiles of an eval tile's site were found")
_LEAK = re.compile(r"\*\*(?P<n>\d+)\*\* train tiles within \*\*(?P<threshold>\d+)\*\* bits of an eval tile")
_LEAK_ROW = re.compile(
    # A tile of a split in sub-folders is named by its path under the split (0000/d_tile_….jpg).
    rf"^\| `(?P<train>(?:\d{{4}}/)?{TILE_NAME_PATTERN})` \| `(?P<eval>(?:\d{{4}}/)?{TILE_NAME_PATTERN})` "
    r"\| (?P<d>\d+) \|$",
    re.M,
)
_SOURCE_ROW = re.compile(r"^- (?P<name>.+): (?P<n>\d+) tiles$", re.M)


def validate_dataset_card(text: str, report: BuildReport, release: Path | None = None) -> list[str]:
    """Offline checks of a dataset card before any publish; an empty list means valid.

    Required keys present; the YAML parses back through ``DatasetCard`` to the
    same data; ``size_categories`` agrees with the counts; every ``configs`` path
    matches files of ``release``; the counts quoted in the body (summary, rows and
    the curation table) equal the build report's. A problem that quotes a value
    of the private report shows it masked (:func:`builder.scan.redact`).
    """
    return redact(_card_problems(text, report, release), private_values(report.tiles))


def _card_problems(text: str, report: BuildReport, release: Path | None) -> list[str]:
    problems: list[str] = []
    card = DatasetCard(text)
    data: dict[str, Any] = card.data.to_dict()  # type: ignore[no-untyped-call]
    for key in REQUIRED_YAML:
        if not data.get(key):
            problems.append(f"YAML key {key!r} missing")
    for phrase in REQUIRED_SENTENCES:
        if phrase not in " ".join(card.text.split()):
            problems.append(f"the card does not say {phrase!r}")
    again = DatasetCard(str(card)).data.to_dict()  # type: ignore[no-untyped-call]
    if again != data:
        problems.append("YAML does not parse back to the same data")
    counts = report.counts
    expected_size = size_category(report.total_tiles)
    if data.get("size_categories") != [expected_size]:
        problems.append(f"size_categories {data.get('size_categories')} but the counts give {expected_size}")
    if release is not None:
        for config in data.get("configs", []):
            for entry in config.get("data_files", []):
                files = (rel for rel, path, _ in tree(release) if path.is_file())
                if not any(fnmatch.fnmatch(rel, entry["path"]) for rel in files):
                    problems.append(f"configs path {entry['path']!r} matches no file of the release")
        fingerprint = data_fingerprint(release)
        if set(card_fingerprints(text)) != {fingerprint}:
            problems.append(
                f"configs description names data files {card_fingerprints(text)}; the release's are "
                f"{fingerprint} (load_dataset would reuse the cache of other data)"
            )
    body = card.text
    for pattern, key, quoted in ((_SUMMARY, "tiles", counts.tiles), (_ROWS, "rows", counts.rows)):
        match = pattern.search(body)
        found = {s: int(match[s]) for s in SPLITS} if match else None
        if found != quoted:
            problems.append(f"body quotes {key} {found}; the build report says {quoted}")
    table = {m["reason"]: {s: int(m[s]) for s in SPLITS} for m in _TABLE_ROW.finditer(body)}
    if table != counts.rejected:
        problems.append(f"curation table {table} differs from the build report {counts.rejected}")
    splits = {m["split"]: {label: int(m[label]) for label in LABELS} for m in _SPLIT_ROW.finditer(body)}
    tiles = {m["split"]: int(m["tiles"]) for m in _SPLIT_ROW.finditer(body)}
    if splits != counts.published or tiles != counts.tiles:
        problems.append(f"split table {splits} differs from the build report {counts.published}")
    sources = {m["name"]: int(m["n"]) for m in _SOURCE_ROW.finditer(body)}
    if sources != report.sources:
        problems.append(f"source counts {sources} differ from the build report {report.sources}")
    gate_rows = {int(m["n"]): tuple(int(m[c]) for c in _GATE_CELLS) for m in _GATE_ROW.finditer(body)}
    expected_gates = {
        i: tuple(report.gates.per_gate[gate].cell(c) for c in _GATE_CELLS)
        for i, gate in enumerate(gates.GATES, 1)
    }
    if gate_rows != expected_gates:
        problems.append(
            f"gate table {_GATE_CELLS} {gate_rows} differs from the build report {expected_gates}"
        )
    order = report.halves
    if order is not None:
        match = _HALVES.search(body)
        found_order = {k: int(v) for k, v in match.groupdict().items()} if match else None
        expected_order = {
            "in_order": order.in_order,
            "swapped": order.swapped,
            "not_evaluated": order.not_evaluated,
        }
        if found_order != expected_order:
            problems.append(
                f"halves-order counts {found_order} differ from the build report {expected_order}"
            )
    site = report.site_leakage or NO_SITE_CHECK
    match = _SITE.search(body)
    if site.evaluated and (match is None or int(match["n"]) != site.train_tiles):
        problems.append(
            f"same-site count {match and match['n']} differs from the build report {site.train_tiles}"
        )
    if not site.evaluated and (match is not None or "same-site check was **not" not in body):
        problems.append("the build did not check sites but the card does not say so")
    leaks = report.leakage
    if leaks is not None:
        match = _LEAK.search(body)
        found_leak = (int(match["n"]), int(match["threshold"])) if match else None
        if found_leak != (leaks.train_tiles, leaks.threshold):
            problems.append(
                f"near-duplicate count (tiles, threshold) {found_leak} differs from the build report "
                f"{(leaks.train_tiles, leaks.threshold)}"
            )
        listed = [(m["train"], m["eval"], int(m["d"])) for m in _LEAK_ROW.finditer(body)]
        kept = [] if leaks.dropped else [(p.train, p.eval, p.distance) for p in leaks.pairs]
        if listed != kept:
            problems.append(
                f"near-duplicate table lists {len(listed)} pairs; the build report has {len(kept)}"
            )
    return problems
