"""``cropmark``: the command line. Parses arguments, calls :mod:`builder`, prints.

Known errors (:class:`~builder.errors.CropmarkError`, and OS errors such as a
folder that cannot be written) are printed as one line and exit with status 2;
``--debug`` shows the traceback instead. ``--debug`` and ``--quiet`` are accepted
anywhere before a ``--``, before or after the command.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from builder.collect.commands import register as register_collect_commands
from builder.domain import DATASET_NAME
from builder.errors import ConfigError, CropmarkError, ReleaseNotFoundError
from builder.model.commands import register as register_model_commands


def _print_summary(report: dict[str, Any], release: Path, private: Path) -> None:
    counts = report["counts"]
    print(f"built {report['name']} {report['version']} -> {release}")
    print("  rows read      " + "  ".join(f"{s} {n}" for s, n in counts["rows"].items()))
    for split, labels in counts["published"].items():
        detail = ", ".join(f"{label} {n}" for label, n in labels.items())
        print(f"  published      {split} {sum(labels.values())} ({detail})")
    for reason, per_split in sorted(counts["rejected"].items()):
        total = sum(per_split.values())
        detail = ", ".join(f"{s} {n}" for s, n in per_split.items())
        print(f"  rejected       {reason:<21} {total:>5}  ({detail})")
    print("  cut            " + ", ".join(f"{m} {n}" for m, n in sorted(report["cut_modes"].items())))
    gates = report["gates"]
    changed = gates["changed"]
    print(
        "  thresholds     "
        + (
            ", ".join(f"{k}={v}" for k, v in changed.items()) + " (gates.json; others: the card's)"
            if changed
            else "the card's"
        )
    )
    for number, gate in enumerate(("s2_not_blank", "s2_not_cloudy", "context_available", "agricultural"), 1):
        g = gates[gate]
        print(
            f"  gate {number}         {gate:<21} {g['evaluated']:>5} evaluated, {g['passed']} passed, "
            f"{g['rejected']} rejected, {g['not_evaluated']} not evaluated"
        )
    print(
        f"  all four gates {gates['published_full']} of {gates['published']} published tiles "
        "(the others have gates not evaluated)"
    )
    order = report["halves"]
    print(
        f"  halves         {order['in_order']} in order, {order['swapped']} swapped (rejected), "
        f"{order['not_evaluated']} not evaluated"
    )
    leaks = report["leakage"]
    kept = "dropped" if leaks["dropped"] else ("kept" if leaks["train_tiles"] else "none")
    print(
        f"  near-dups      {leaks['train_tiles']} train tiles within {leaks['threshold']} bits "
        f"of an eval tile ({kept}; closest pair {leaks['closest']} bits)"
    )
    site = report["site_leakage"]
    if site["evaluated"]:
        kept = "dropped" if site["dropped"] else ("kept" if site["train_tiles"] else "none")
        unchecked = sum(site["unchecked"].values())
        print(
            f"  same site      {site['train_tiles']} train tiles of an eval tile's site (same record or "
            f"< {site['distance_m']:g} m; {kept}; {unchecked} tiles without a site unchecked)"
        )
    else:
        print("  same site      not evaluated (no sites.csv)")
    if report.get("layout", "imagefolder") != "imagefolder":
        summary = report["layout_summary"]
        splits = ", ".join(
            f"{split} {info.get('rows', info.get('samples'))}" for split, info in summary["splits"].items()
        )
        print(f"  layout         {report['layout']} ({splits})")
    audit = report["audit"]
    print(f"  audit          {'passed' if audit['passed'] else 'FAILED'} ({len(audit['findings'])} findings)")
    print(f"  private report {private / 'report.json'}  (private: never publish this folder)")


def cmd_build(args: argparse.Namespace) -> int:
    from builder.layouts import policy
    from builder.layouts.base import LayoutOptions
    from builder.release.build import BuildConfig, build

    options = LayoutOptions(
        shard_mb=args.shard_mb,
        fractions=tuple(args.split_fractions),
        salt=args.split_salt,
        files_per_folder=args.files_per_folder,
        samples_per_shard=args.samples_per_shard,
        coords=args.coords,
        public_sidecars=args.public_sidecars,
        hdf5_dtype=args.hdf5_dtype,
    )
    config = BuildConfig(
        args.corpus,
        args.out,
        args.version,
        args.name,
        args.workers,
        args.repo_id,
        leak_threshold=args.leak_threshold,
        drop_near_duplicates=args.drop_near_duplicates,
        site_distance=args.site_distance,
        drop_site_leaks=args.drop_site_leaks,
        layout=args.layout,
        layout_options=options,
        policy=policy.load(args.policy),
    )
    result = build(config)
    _print_summary(result.report, result.release, result.private)
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from builder.release.audit import audit_any, load_report
    from builder.release.build import private_dir

    release: Path = args.release
    if not release.is_dir():
        raise ReleaseNotFoundError(f"release folder {release} does not exist; build it with `cropmark build`")
    report_path: Path = args.report or private_dir(release) / "report.json"
    if args.report is not None and not os.path.lexists(args.report):
        raise ConfigError(f"private report {args.report} does not exist")
    # The default report may be absent (that is a finding); one that is there must be whole.
    report = load_report(report_path) if os.path.lexists(report_path) else None
    findings = audit_any(release, report)
    for finding in findings:
        print(f"FINDING {finding}")
    if findings:
        print(f"audit refused {release}: {len(findings)} finding(s)")
        return 1
    layout = (report or {}).get("layout", "imagefolder")
    checked = "metadata, images, text and halves" if layout == "imagefolder" else "images, text and policy"
    print(f"audit passed {release} ({layout}): layout, {checked} clean")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from builder.testing.sample import SMALL_PLAN, Plan, generate

    if args.out.exists() and any(args.out.iterdir()):
        raise CropmarkError(f"{args.out} exists and is not empty; choose a new folder for the sample corpus")
    plan = generate(args.out, seed=args.seed, plan=SMALL_PLAN if args.small else Plan())
    print(f"wrote a sample corpus to {args.out}: {plan.train_rows} train + {plan.eval_rows} eval rows")
    return 0


def cmd_card(args: argparse.Namespace) -> int:
    from builder.files import load_json
    from builder.model.schema import check_evaluation, check_training_summary
    from builder.release import cards

    if args.kind == "dataset":
        report = load_json(args.report)
        text = cards.dataset_card(report, args.repo_id)
        problems = cards.validate_dataset_card(text, report)
        if problems:
            raise CropmarkError(f"dataset card invalid: {'; '.join(problems)}")
    elif args.kind == "model":
        training, evaluation = load_json(args.training), load_json(args.evaluation)
        check_training_summary(training, str(args.training))
        check_evaluation(evaluation, str(args.evaluation))
        text = cards.model_card(training, evaluation, args.repo_id, args.dataset_id)
    else:
        text = cards.space_readme(args.title, args.model_id, args.dataset_id, cards.SPACE_GRADIO)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote the {args.kind} card to {args.output}")
    else:
        print(text, end="")
    return 0


def cmd_composite(args: argparse.Namespace) -> int:
    import numpy as np
    from PIL import Image

    from builder.ingest.composite import encode_jpeg
    from builder.quality import gates
    from builder.quality.thresholds import changed_settings, load_config
    from builder.raster import bands as raster
    from builder.raster import indices

    config = load_config(args.gates) if args.gates is not None else gates.GateConfig()
    if args.cropland_classes:
        config = config.replace(cropland_classes=tuple(args.cropland_classes))
    bands = raster.read_bands(
        args.scene,
        bounds=args.bounds,
        box=args.box,
        offset=args.boa_offset,
        min_window=1 if args.allow_small_window else raster.MIN_WINDOW_PX,
    )
    rgb = raster.false_colour(bands)
    half = raster.s2_half(rgb)
    context = None
    if args.context is not None:
        try:
            context = Image.open(args.context)
            context.load()
        except OSError as exc:
            raise CropmarkError(
                f"{args.context}: not an image ({exc}); pass the context half as PNG or JPEG"
            ) from None
    image = raster.composite(half, context) if context is not None else half
    if args.out.suffix.lower() in (".jpg", ".jpeg"):
        data = encode_jpeg(image)
    elif args.out.suffix.lower() == ".png":
        import io

        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        data = buffer.getvalue()
    else:
        raise CropmarkError(f"{args.out}: write .jpg or .png")
    tile = encode_jpeg(half)
    right = np.asarray(image)[:, half.width :] if context is not None else None
    coverage = config.min_side_coverage
    mask = raster.read_side(args.cloud_mask, "cloud mask", bands, coverage) if args.cloud_mask else None
    cover = (
        raster.read_side(args.landcover, "land-cover raster", bands, coverage, raster.LANDCOVER_NODATA)
        if args.landcover
        else None
    )
    results = gates.evaluate(
        s2_jpeg_bytes=len(tile),
        s2_rgb=np.asarray(half),
        right=right,
        bands=bands,
        config=config,
        cloud_mask=mask,
        landcover=cover,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(data)
    info = bands.info
    print(f"wrote {args.out} ({image.width}x{image.height}, RGB = B08/B04/B05, stretch 2-98 %)")
    print(
        f"  read {info.level}, {info.shape[1]}x{info.shape[0]} px at 10 m, "
        f"offset {info.offset} ({info.offset_from})"
    )
    if (rgb.shape[1], rgb.shape[0]) != half.size:  # the window was not 256x512 px at 10 m
        print(
            f"  resized from {rgb.shape[1]}x{rgb.shape[0]} px (a 256x512 px window at 10 m needs no resizing)"
        )
    if info.resampled:
        print(f"  resampled onto the 10 m grid: {', '.join(info.resampled)}")
    for name, values in indices.compute(bands.data).items():
        stats = indices.summary(values)
        if stats["mean"] is not None:
            print(f"  {name:<10} mean {stats['mean']:.3f}  p05 {stats['p05']:.3f}  p95 {stats['p95']:.3f}")
    changed = changed_settings(config)
    print(
        "  thresholds     "
        + (
            ", ".join(f"{k}={v}" for k, v in changed.items()) + " (others: the card's)"
            if changed
            else "the card's"
        )
    )
    for result in results:
        verdict = "not evaluated" if not result.evaluated else ("pass" if result.passed else "FAIL")
        print(f"  gate {result.gate:<18} {verdict}{': ' + result.reason if result.reason else ''}")
    if args.report is not None:
        payload = {
            "read": {**info.__dict__, "shape": list(info.shape), "resampled": list(info.resampled)},
            "gates": [r.as_dict() for r in results],
        }
        args.report.write_text(json.dumps(payload, indent=1, default=str), encoding="utf-8")
    return 0


def _org(repo_id: str) -> str:
    return repo_id.split("/", 1)[0]


def hub_id(text: str) -> str:
    """An argparse type: a Hub repo id ORG/NAME, by huggingface_hub's own rules."""
    from builder.domain import hub_id_problem

    problem = hub_id_problem(text, "")
    if problem is not None:
        raise argparse.ArgumentTypeError(problem.strip())
    return text


def _say_left_out(bundle: Any, source: Path) -> None:
    from builder.scan import masked_path

    if bundle.left_out:
        names = [masked_path(p) for p in bundle.left_out[:8]]  # a name may hold a site's coordinates
        shown = ", ".join(names) + (" ..." if len(bundle.left_out) > 8 else "")
        print(
            f"not sent ({len(bundle.left_out)} file(s) of {source} not on the {bundle.kind}'s "
            f"allow-list): {shown}"
        )


def cmd_publish(args: argparse.Namespace) -> int:
    from builder.errors import Interrupted
    from builder.hub import bundles, publish

    repo_id: str = args.repo_id
    dataset_id = args.dataset_id or f"{_org(repo_id)}/{DATASET_NAME}"
    if args.tag is not None and args.no_tag:
        raise CropmarkError("--tag and --no-tag contradict each other; give one")
    retries = publish.Retries(args.attempts, args.backoff, args.max_wait)
    try:
        if args.kind == "dataset":
            bundle = bundles.dataset_bundle(args.source, repo_id)
        elif args.kind == "model":
            bundle = bundles.model_bundle(args.source, repo_id, dataset_id)
            publish.check_model_sources(
                bundle.facts["base_model"], bundle.facts["release"], dataset_id, retries, dry_run=args.dry_run
            )
        else:
            model_id = args.model_id or f"{_org(repo_id)}/cropmark-lfm2.5-vl-lora"
            if args.baseline is None:
                raise CropmarkError(
                    "publish space needs --baseline BASELINE.json (scripts/train_baseline.py on the "
                    "dataset): the Space shows the physics baseline beside the model"
                )
            record = bundles.baseline_release(args.baseline)
            sources = publish.check_space_sources(
                model_id,
                dataset_id,
                record,
                args.base_model,
                retries,
                private_sources=args.private_sources,
                dry_run=args.dry_run,
            )
            config = bundles.space_config(
                sources.base_model, model_id, dataset_id, sources.adapter_revision, sources.dataset_revision
            )
            repo_root = Path(__file__).resolve().parent.parent
            bundle = bundles.space_bundle(
                args.source, repo_root, args.title, config, args.baseline, sources.tiles
            )
        tag = (
            None
            if args.no_tag
            else (args.tag if args.tag is not None else (f"v{bundle.version}" if bundle.version else None))
        )
        if tag is not None:
            publish.check_tag(tag, bundle.version, args.other_tag)
    except KeyboardInterrupt:
        raise Interrupted(f"nothing was published to {repo_id}") from None
    print(f"gate passed: {args.kind} {args.source} ({len(bundle.files)} files)")
    _say_left_out(bundle, args.source)
    outcome = publish.publish(
        bundle,
        repo_id,
        tag=tag,
        dry_run=args.dry_run,
        private=args.private,
        attempts=args.attempts,
        backoff_s=args.backoff,
        max_wait_s=args.max_wait,
    )
    if not args.dry_run:
        done = f"commit {outcome.commit[:12]}" if outcome.commit else "no new commit"
        tagged = f", tag {outcome.tag}" if outcome.tag else (f", tag {tag} (already there)" if tag else "")
        print(f"published {args.kind} {repo_id}: {done}{tagged} ({outcome.attempts} attempt(s))")
    return 0


def _count(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is below 1")
    return value


def _seconds(text: str) -> float:
    """An argparse type: a number of seconds from 0 to a day."""
    from builder.hub.publish import MAX_SECONDS

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value <= MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"{text} seconds: give 0 to {MAX_SECONDS:.0f} (a day)")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line (``error: ...``) with exit status 2."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def parser() -> argparse.ArgumentParser:
    from builder.raster.bands import MIN_WINDOW_PX
    from builder.release.leakage import DEFAULT_SITE_DISTANCE_M

    top = _Parser(
        prog="cropmark",
        description="Build, audit and publish the Cropmark Disambiguator S2 release; "
        "train and evaluate its model.",
        epilog="Run 'cropmark COMMAND --help' for the options of a command. Known errors are one line "
        "on standard error with exit status 2.",
    )
    top.add_argument("--version", action="version", version=f"cropmark {_version()}")
    top.add_argument(
        "--debug", action="store_true", help="show tracebacks (accepted before or after the command)"
    )
    top.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bars (accepted before or after the command); bars show only on a terminal",
    )
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    b = sub.add_parser("build", help="build, audit and put in place a release from a private corpus")
    b.add_argument("--corpus", type=Path, required=True, help="private corpus folder (sft/, composites/)")
    b.add_argument("--out", type=Path, required=True, help="output root; release goes to OUT/NAME/VERSION")
    b.add_argument("--version", required=True, help="release version, e.g. 1.0.0")
    b.add_argument("--name", default=DATASET_NAME, help="dataset name")
    b.add_argument("--workers", type=int, default=1, help="processes that cut tiles")
    b.add_argument(
        "--repo-id", type=hub_id, help="Hub id (ORG/NAME) for the card's loading example and citation"
    )
    b.add_argument(
        "--layout",
        default="imagefolder",
        choices=("imagefolder", "parquet", "sft-jsonl", "hdf5"),
        help="release layout (imagefolder is the cropmark release; the others serve sibling datasets)",
    )
    b.add_argument(
        "--policy", type=Path, help="policy.json of what may be published (default: cropmark, none)"
    )
    b.add_argument(
        "--leak-threshold", type=int, default=10, help="pHash bits for a train/eval near-duplicate"
    )
    b.add_argument(
        "--drop-near-duplicates",
        action="store_true",
        help="drop train tiles that near-duplicate an eval tile",
    )
    b.add_argument(
        "--site-distance",
        type=float,
        default=DEFAULT_SITE_DISTANCE_M,
        help="metres under which a train site and an eval site (sites.csv) are one site "
        f"(default {DEFAULT_SITE_DISTANCE_M:g}: one tile width)",
    )
    b.add_argument(
        "--drop-site-leaks",
        action="store_true",
        help="drop train tiles of the same site as an eval tile (same record or closer than --site-distance)",
    )
    b.add_argument("--shard-mb", type=float, default=500.0, help="parquet: largest shard in MiB")
    b.add_argument(
        "--split-fractions",
        type=float,
        nargs=3,
        default=(0.8, 0.1, 0.1),
        metavar=("TRAIN", "VALIDATION", "TEST"),
        help="sft-jsonl, hdf5: shares of the site groups",
    )
    b.add_argument("--split-salt", default="cropmark", help="sft-jsonl, hdf5: change to draw other splits")
    b.add_argument("--files-per-folder", type=int, default=8000, help="sft-jsonl: images per leaf folder")
    b.add_argument("--samples-per-shard", type=int, default=256, help="hdf5: sample groups per shard file")
    b.add_argument(
        "--coords",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="hdf5: write coords and crs (default: as far as the policy allows)",
    )
    b.add_argument(
        "--public-sidecars",
        action="store_true",
        help="sft-jsonl: publish per-tile sidecars (policy permitting)",
    )
    b.add_argument(
        "--hdf5-dtype",
        choices=("uint8", "float32"),
        default="uint8",
        help="hdf5: store the tile's 8-bit values (uint8, default) or them / 255 (float32)",
    )
    b.set_defaults(func=cmd_build)

    a = sub.add_parser("audit", help="refuse a release that leaks or is malformed")
    a.add_argument("release", type=Path, help="the release folder (OUT/NAME/VERSION) to check")
    a.add_argument("--report", type=Path, help="private report (default: RELEASE.private/report.json)")
    a.set_defaults(func=cmd_audit)

    c = sub.add_parser("card", help="render a dataset card, model card or Space README")
    kinds = c.add_subparsers(dest="kind", required=True)
    cd = kinds.add_parser("dataset", help="from a build's private report")
    cd.add_argument("--report", type=Path, required=True, help="RELEASE.private/report.json")
    cd.add_argument("--repo-id", type=hub_id, help="dataset repo id ORG/NAME")
    cm = kinds.add_parser("model", help="from training_summary.json and evaluation.json")
    cm.add_argument("--training", type=Path, required=True, help="training_summary.json of the run")
    cm.add_argument("--evaluation", type=Path, required=True, help="evaluation.json of the run")
    cm.add_argument("--repo-id", type=hub_id, required=True, help="model repo id ORG/NAME")
    cm.add_argument("--dataset-id", type=hub_id, required=True, help="dataset repo id ORG/NAME")
    cs = kinds.add_parser("space", help="the Space README (sdk gradio, pinned version)")
    cs.add_argument("--title", default="Cropmark Disambiguator", help="the Space's title")
    cs.add_argument("--model-id", type=hub_id, required=True, help="the adapter the Space serves, ORG/NAME")
    cs.add_argument("--dataset-id", type=hub_id, required=True, help="the dataset the Space names, ORG/NAME")
    for p in (cd, cm, cs):
        p.add_argument("-o", "--output", type=Path, help="write here instead of standard output")
    c.set_defaults(func=cmd_card)

    k = sub.add_parser("composite", help="raw Sentinel-2 bands -> the false-colour S2 half (and the gates)")
    k.add_argument(
        "scene", type=Path, help="multi-band GeoTIFF with band descriptions, or a folder of per-band files"
    )
    k.add_argument("--out", type=Path, required=True, help="output .jpg (q95, 4:4:4, no metadata) or .png")
    window = k.add_mutually_exclusive_group()
    window.add_argument(
        "--bounds",
        type=float,
        nargs=4,
        metavar=("LEFT", "BOTTOM", "RIGHT", "TOP"),
        help="the window in the scene's CRS (default: the whole scene)",
    )
    window.add_argument(
        "--box",
        type=int,
        nargs=4,
        metavar=("COL", "ROW", "WIDTH", "HEIGHT"),
        help="the window in pixels of the 10 m grid (default: the whole scene)",
    )
    k.add_argument("--boa-offset", type=int, help="DN offset (e.g. -1000); default: from the scene's tags")
    k.add_argument(
        "--context", type=Path, help="a context image: write the 512x512 private composite instead"
    )
    k.add_argument(
        "--cloud-mask",
        type=Path,
        help="a cloud-mask raster (0 = clear, other values = cloud or shadow) when the scene has no SCL; "
        "without either, s2cloudless runs on L1C bands",
    )
    k.add_argument("--landcover", type=Path, help="a land-cover raster; its cropland fraction decides gate 4")
    k.add_argument(
        "--cropland-classes", type=int, nargs="+", help="land-cover classes that are cropland (default 40)"
    )
    k.add_argument("--gates", type=Path, help="a gates.json of thresholds other than the card's")
    k.add_argument(
        "--allow-small-window",
        action="store_true",
        help=f"accept a window under {MIN_WINDOW_PX} px on a side (it is enlarged to the 256x512 tile)",
    )
    k.add_argument("--report", type=Path, help="write what was read and the gate values as JSON (private)")
    k.set_defaults(func=cmd_composite)

    register_model_commands(sub)
    register_collect_commands(sub)

    p = sub.add_parser("publish", help="push a release of the dataset, the model or the Space to the Hub")
    p.add_argument("kind", choices=("dataset", "model", "space"), help="what to publish")
    p.add_argument("source", type=Path, help="release folder, training run folder, or space/")
    p.add_argument("--repo-id", type=hub_id, required=True, help="ORG/NAME on the Hub")
    p.add_argument(
        "--tag",
        help="tag of the release commit (never moved); a dataset's default and only tag is v<version>",
    )
    p.add_argument("--no-tag", action="store_true", help="publish without a tag")
    p.add_argument(
        "--other-tag", action="store_true", help="allow a --tag other than v<release version> (datasets)"
    )
    p.add_argument("--dry-run", action="store_true", help="print the plan; write nothing")
    p.add_argument(
        "--private",
        action="store_true",
        help="create the repo private; an existing public repo is refused (visibility is never changed)",
    )
    p.add_argument(
        "--dataset-id",
        type=hub_id,
        help=f"the dataset the model card and Space name (default ORG/{DATASET_NAME})",
    )
    p.add_argument(
        "--model-id", type=hub_id, help="the adapter the Space serves (default ORG/cropmark-lfm2.5-vl-lora)"
    )
    p.add_argument(
        "--base-model",
        type=hub_id,
        help="space: the adapter's base model (default: read from the model on the Hub)",
    )
    p.add_argument(
        "--private-sources",
        action="store_true",
        help="space: publish although its model or dataset needs a token (set the Space secret HF_TOKEN)",
    )
    p.add_argument("--baseline", type=Path, help="space: baseline.json fitted on the dataset (shipped)")
    p.add_argument("--title", default="Cropmark Disambiguator", help="the Space's title")
    p.add_argument(
        "--attempts",
        type=_count,
        default=4,
        help="tries in all on transient Hub errors (408, 429, 5xx but 501, dropped connections)",
    )
    p.add_argument(
        "--backoff",
        type=_seconds,
        default=2.0,
        help="seconds before the first retry; doubles each time, up to --max-wait",
    )
    p.add_argument(
        "--max-wait",
        type=_seconds,
        default=60.0,
        help="longest wait between tries; a longer Retry-After stops the publish and says when to retry",
    )
    p.set_defaults(func=cmd_publish)

    s = sub.add_parser("sample", help="write the seeded sample private corpus")
    s.add_argument("out", type=Path, help="a new (or empty) folder for the corpus")
    s.add_argument("--seed", type=int, default=0, help="random seed (the same seed writes the same corpus)")
    s.add_argument("--small", action="store_true", help="a small corpus with every edge case")
    s.set_defaults(func=cmd_sample)
    return top


GLOBAL_FLAGS = ("--debug", "--quiet")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cropmark")
    except PackageNotFoundError:  # a checkout on sys.path, not installed
        return "unknown (not installed)"


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; known errors are one line on stderr and exit status 2.

    ``--debug`` (shows the traceback instead) and ``--quiet`` (no progress bars) are
    accepted anywhere before a ``--``, before or after the command.
    """
    args_in = list(sys.argv[1:] if argv is None else argv)
    end = args_in.index("--") if "--" in args_in else len(args_in)
    flags = {flag: flag in args_in[:end] for flag in GLOBAL_FLAGS}
    args_in = [a for a in args_in[:end] if a not in GLOBAL_FLAGS] + args_in[end:]
    try:
        args = parser().parse_args(args_in)
    except SystemExit as exc:  # usage errors (one line, see _Parser) and --help
        return exc.code if isinstance(exc.code, int) else 2
    args.debug = flags["--debug"]
    args.quiet = flags["--quiet"] or getattr(args, "quiet", False)
    from builder import progress

    progress.set_quiet(args.quiet)
    try:
        code: int = args.func(args)
    except (CropmarkError, OSError) as exc:
        if args.debug:
            raise
        print("error: " + " ".join(str(exc).split()), file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        from builder.errors import Interrupted

        said = str(exc) if isinstance(exc, Interrupted) else "the previous release, if any, is untouched"
        print(f"interrupted: {said}", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
