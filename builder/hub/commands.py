"""The Hub subcommands of ``cropmark``: ``card`` (a dataset card, model card or Space README) and
``publish`` (a dataset release, a model run or the Space to the Hub)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

import builder
from builder.domain import DATASET_NAME, count_argument, hub_id_argument
from builder.errors import ConfigError, CropmarkError

if TYPE_CHECKING:
    from builder.hub.bundles import Bundle
    from builder.hub.publish import Retries


def _org(repo_id: str) -> str:
    return repo_id.split("/", 1)[0]


def _say_left_out(bundle: Bundle, source: Path) -> None:
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
    from builder.hub import publish

    repo_id: str = args.repo_id
    dataset_id = args.dataset_id or f"{_org(repo_id)}/{DATASET_NAME}"
    if args.tag is not None and args.no_tag:
        raise CropmarkError("--tag and --no-tag contradict each other; give one")
    retries = publish.Retries(args.attempts, args.backoff, args.max_wait)
    try:
        bundle = _gated_bundle(args, repo_id, dataset_id, retries)
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


def _gated_bundle(args: argparse.Namespace, repo_id: str, dataset_id: str, retries: Retries) -> Bundle:
    """The files to publish, through the kind's gate (and, for a model or a Space, its sources' checks)."""
    from builder.hub import bundles, publish

    if args.kind == "dataset":
        return bundles.dataset_bundle(args.source, repo_id)
    if args.kind == "model":
        bundle = bundles.model_bundle(args.source, repo_id, dataset_id)
        publish.check_model_sources(
            bundle.facts["base_model"], bundle.facts["release"], dataset_id, retries, dry_run=args.dry_run
        )
        return bundle
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
    repo_root = Path(builder.__file__).resolve().parent.parent  # the checkout holding space/
    return bundles.space_bundle(args.source, repo_root, args.title, config, args.baseline, sources.tiles)


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


def cmd_card(args: argparse.Namespace) -> int:
    from builder.files import load_json
    from builder.model.schema import check_evaluation, check_training_summary
    from builder.release import cards
    from builder.release.report import BuildReport, ReportError

    if args.kind == "dataset":
        try:
            report = BuildReport.from_dict(load_json(args.report))
        except ReportError as exc:
            raise ConfigError(f"{args.report} is not a report of `cropmark build`: {exc}") from None
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


def register_card(sub: Any) -> None:
    """Add ``card`` (the README of each kind the Hub holds) to ``cropmark``'s subparsers."""
    c = sub.add_parser("card", help="render a dataset card, model card or Space README")
    kinds = c.add_subparsers(dest="kind", required=True)
    cd = kinds.add_parser("dataset", help="from a build's private report")
    cd.add_argument("--report", type=Path, required=True, help="RELEASE.private/report.json")
    cd.add_argument("--repo-id", type=hub_id_argument, help="dataset repo id ORG/NAME")
    cm = kinds.add_parser("model", help="from training_summary.json and evaluation.json")
    cm.add_argument("--training", type=Path, required=True, help="training_summary.json of the run")
    cm.add_argument("--evaluation", type=Path, required=True, help="evaluation.json of the run")
    cm.add_argument("--repo-id", type=hub_id_argument, required=True, help="model repo id ORG/NAME")
    cm.add_argument("--dataset-id", type=hub_id_argument, required=True, help="dataset repo id ORG/NAME")
    cs = kinds.add_parser("space", help="the Space README (sdk gradio, pinned version)")
    cs.add_argument("--title", default="Cropmark Disambiguator", help="the Space's title")
    cs.add_argument(
        "--model-id", type=hub_id_argument, required=True, help="the adapter the Space serves, ORG/NAME"
    )
    cs.add_argument(
        "--dataset-id", type=hub_id_argument, required=True, help="the dataset the Space names, ORG/NAME"
    )
    for p in (cd, cm, cs):
        p.add_argument("-o", "--output", type=Path, help="write here instead of standard output")
    c.set_defaults(func=cmd_card)


def register(sub: Any) -> None:
    """Add ``publish`` to ``cropmark``'s subparsers."""
    p = sub.add_parser("publish", help="push a release of the dataset, the model or the Space to the Hub")
    p.add_argument("kind", choices=("dataset", "model", "space"), help="what to publish")
    p.add_argument("source", type=Path, help="release folder, training run folder, or space/")
    p.add_argument("--repo-id", type=hub_id_argument, required=True, help="ORG/NAME on the Hub")
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
        type=hub_id_argument,
        help=f"the dataset the model card and Space name (default ORG/{DATASET_NAME})",
    )
    p.add_argument(
        "--model-id",
        type=hub_id_argument,
        help="the adapter the Space serves (default ORG/cropmark-lfm2.5-vl-lora)",
    )
    p.add_argument(
        "--base-model",
        type=hub_id_argument,
        help="space: the adapter's base model (default: read from the model on the Hub)",
    )
    p.add_argument(
        "--private-sources",
        action="store_true",
        help="space: publish although its model or dataset needs a token (set the Space secret HF_TOKEN)",
    )
    p.add_argument("--baseline", type=Path, help="space: baseline.json fitted on the dataset (shipped)")
    p.add_argument("--title", default="Cropmark Disambiguator", help="the Space's title")
    _add_retry_options(p)
    p.set_defaults(func=cmd_publish)


def _add_retry_options(p: argparse.ArgumentParser) -> None:
    """How often to try a transient Hub failure, and how long to wait between tries."""
    p.add_argument(
        "--attempts",
        type=count_argument,
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
