"""The model subcommands of ``cropmark``: ``sft``, ``train``, ``evaluate``, ``baseline``.

``scripts/train_lora.py`` and ``scripts/evaluate.py`` call these through
``builder.cli.main``, so they share its one-line errors.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def _print_metrics(result: dict[str, Any]) -> None:
    for model in result["models"]:
        m = model["metrics"]
        print(
            f"{model['name']}: accuracy {m['accuracy']:.3f}, F1 {m['f1']:.3f}, "
            f"balanced accuracy {m['balanced_accuracy']:.3f}, ROC-AUC {m['roc_auc']:.3f} "
            f"({result['n']} {result['split']} tiles)"
        )


def cmd_sft(args: argparse.Namespace) -> int:
    from builder.model import data

    folder = data.resolve(args.release)
    for split in args.splits:
        n = data.write_sft_jsonl(folder, split, args.out / f"{split}.jsonl")
        print(f"{split}: {n} rows -> {args.out / f'{split}.jsonl'} (image paths relative to {folder})")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from builder.model.train import load_config, train

    overrides = {
        "base_model": args.base_model,
        "output_dir": str(args.output_dir) if args.output_dir else None,
        "max_steps": args.max_steps,
        "epochs": args.epochs,
        "device": args.device,
    }
    config = load_config(args.config, overrides)
    summary = train(config, args.release, progress=not args.quiet, overwrite=args.overwrite)
    print(
        f"trained {summary['steps']} steps in {summary['duration_s']:.1f} s on {summary['device']}: "
        f"loss {summary['losses'][0]:.4f} -> {summary['final_loss']:.4f}; adapter in {config.output_dir}"
    )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from builder.model.evaluate import run

    result = run(
        args.release,
        args.out,
        base=args.base_model,
        adapter=args.adapter,
        baseline=args.baseline,
        split=args.split,
        batch_size=args.batch_size,
        device=args.device,
        progress=not args.quiet,
    )
    _print_metrics(result)
    print(f"wrote {args.out / 'evaluation.json'}; throughput {json.dumps(result['throughput_tiles_per_s'])}")
    return 0


def cmd_baseline(args: argparse.Namespace) -> int:
    from builder.model.evaluate import train_baseline

    result = train_baseline(args.release, args.out, l2=args.l2, progress=not args.quiet)
    _print_metrics(result)
    print(f"wrote {args.out / 'baseline.json'} and {args.out / 'evaluation.json'}")
    return 0


def register(sub: Any) -> None:
    """Add the model subcommands to ``cropmark``'s subparsers."""
    s = sub.add_parser("sft", help="a release (folder or Hub id) -> leap-finetune VLM SFT JSONL rows")
    s.add_argument("release", help="release folder or Hub dataset id ORG/NAME")
    s.add_argument("--out", type=Path, required=True, help="folder for SPLIT.jsonl")
    s.add_argument(
        "--splits", nargs="+", default=["train", "eval"], help="splits to write (default: train eval)"
    )
    s.set_defaults(func=cmd_sft)

    t = sub.add_parser("train", help="fine-tune the LoRA on a release's train split")
    t.add_argument("release", help="release folder or Hub dataset id ORG/NAME")
    t.add_argument("--config", type=Path, help="YAML/JSON training config (scripts/lora.yaml)")
    t.add_argument("--base-model", help="override: Hub id or local folder of the base model")
    t.add_argument("--output-dir", type=Path, help="override: where the adapter goes")
    t.add_argument("--max-steps", type=int, help="override: stop after this many optimizer steps")
    t.add_argument("--epochs", type=float, help="override: epochs over the train split")
    t.add_argument("--device", help="override: auto, cpu, cuda, cuda:1")
    t.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="score a split with the VLM (Yes/No next-token) and the baseline")
    e.add_argument("release", help="release folder or Hub dataset id ORG/NAME")
    e.add_argument(
        "--out", type=Path, required=True, help="folder for evaluation.json, PNGs, predictions.csv"
    )
    e.add_argument("--base-model", help="Hub id or local folder of the base model")
    e.add_argument("--adapter", type=Path, help="the LoRA run folder (scripts/train_lora.py output)")
    e.add_argument("--baseline", type=Path, help="baseline.json of the physics baseline")
    e.add_argument("--split", default="eval", help="the split to score (default: eval)")
    e.add_argument("--batch-size", type=int, default=8, help="tiles scored per forward pass (default: 8)")
    e.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 (default: auto)")
    e.add_argument("--quiet", action="store_true", help="no progress bar")
    e.set_defaults(func=cmd_evaluate)

    b = sub.add_parser("baseline", help="fit the physics baseline on train, evaluate it on eval")
    b.add_argument("release", help="release folder or Hub dataset id ORG/NAME")
    b.add_argument("--out", type=Path, required=True, help="folder for baseline.json and its evaluation")
    b.add_argument("--l2", type=float, default=1.0, help="L2 penalty of the logistic regression")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    b.set_defaults(func=cmd_baseline)
