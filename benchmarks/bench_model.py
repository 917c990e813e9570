"""The physics baseline's metrics on the sample release; tiny-VLM training and evaluation speed.

Builds the card-scale sample release (767 train + 155 eval tiles), fits the
physics baseline on ``train`` and scores ``eval``, as published and re-saved
once as JPEG q90 and WebP q90 (Pillow's defaults, 4:2:0 colour) to count the
verdicts that flip and the change of ROC-AUC; then, on a tiny random
LFM2-VL written by ``builder.testing.tiny`` (the real model's code paths on a CPU),
times LoRA training steps and Yes/No scoring. Speeds are printed against the
time to decode the same tiles from JPEG in the same run.

    python benchmarks/bench_model.py [--steps 20] [--batch-size 8] [--write]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from benchmarks._results import write_section  # noqa: E402
from builder.model import baseline, data  # noqa: E402
from builder.model.metrics import model_entry, roc_auc  # noqa: E402
from builder.release.build import BuildConfig, build  # noqa: E402
from builder.testing.sample import generate  # noqa: E402


def _resaved(rgb: np.ndarray, fmt: str, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, fmt, quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as image:
        return np.asarray(image.convert("RGB"))


def _decode(paths: list[Path]) -> tuple[list[Image.Image], float]:
    start = time.perf_counter()
    images = []
    for path in paths:
        with Image.open(path) as image:
            images.append(image.convert("RGB"))
    return images, (time.perf_counter() - start) / len(paths)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed LoRA optimizer steps")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--write", action="store_true", help="write the figures to benchmarks/RESULTS.md")
    args = parser.parse_args()
    import torch

    from builder.model.scoring import load_scorer
    from builder.model.train import load_config, train
    from builder.testing.tiny import write_tiny_lfm2_vl

    torch.set_num_threads(os.cpu_count() or 1)
    with tempfile.TemporaryDirectory(prefix="bench_model_") as tmp:
        root = Path(tmp)
        generate(root / "corpus", seed=0)
        release = build(BuildConfig(root / "corpus", root / "build", "1.0.0", workers=2)).release
        train_set, eval_set = data.examples(release, "train"), data.examples(release, "eval")

        start = time.perf_counter()
        x_train = baseline.features_of([e.path for e in train_set])
        features_s = (time.perf_counter() - start) / len(train_set)
        model = baseline.fit(x_train, np.array([e.y for e in train_set]))
        y_eval = np.array([e.y for e in eval_set])
        p_eval = model.p_yes(baseline.features_of([e.path for e in eval_set]))
        entry = model_entry("baseline", "baseline", y_eval, p_eval)
        pixels = [np.asarray(Image.open(e.path).convert("RGB")) for e in eval_set]
        resaves = {}
        for fmt, quality in (("JPEG", 95), ("JPEG", 90), ("JPEG", 85), ("WEBP", 90)):
            p = model.p_yes(np.vstack([baseline.features(_resaved(t, fmt, quality)) for t in pixels]))
            flips = int(((p >= 0.5) != (p_eval >= 0.5)).sum())
            resaves[f"{fmt} q{quality}"] = (flips, roc_auc(y_eval, p) - roc_auc(y_eval, p_eval))

        tiny = write_tiny_lfm2_vl(root / "tiny", seed=0)
        images, decode_s = _decode([e.path for e in eval_set])
        scorer = load_scorer(str(tiny), device="cpu")
        scorer.p_yes(images[: args.batch_size], args.batch_size)  # warm-up
        start = time.perf_counter()
        scorer.p_yes(images, args.batch_size)
        score_s = (time.perf_counter() - start) / len(images)
        config = load_config(
            ROOT / "scripts" / "lora.yaml",
            {
                "base_model": str(tiny),
                "output_dir": str(root / "run"),
                "batch_size": args.batch_size,
                "gradient_accumulation": 1,
                "max_steps": args.steps,
                "device": "cpu",
            },
        )
        summary = train(config, str(release), progress=False)

    m = entry["metrics"]
    step_s = summary["step_time_s"]
    lines = [
        f"machine: {os.cpu_count()} cores, torch {torch.__version__}, CPU",
        f"sample release: {len(train_set)} train + {len(eval_set)} eval tiles",
        f"physics baseline on eval: accuracy {m['accuracy']:.3f}, precision {m['precision']:.3f}, "
        f"recall {m['recall']:.3f}, F1 {m['f1']:.3f}, balanced accuracy {m['balanced_accuracy']:.3f}, "
        f"ROC-AUC {m['roc_auc']:.3f}",
        f"  confusion tn {entry['confusion']['tn']} fp {entry['confusion']['fp']} "
        f"fn {entry['confusion']['fn']} tp {entry['confusion']['tp']}",
        *(
            f"  eval re-saved as {name}: {flips} of {len(eval_set)} verdicts flip "
            f"({100 * flips / len(eval_set):.1f} %), ROC-AUC {delta:+.3f}"
            for name, (flips, delta) in resaves.items()
        ),
        f"decode a tile (JPEG -> RGB):   {decode_s * 1000:8.2f} ms/tile (the reference)",
        f"baseline features:             {features_s * 1000:8.2f} ms/tile = "
        f"{features_s / decode_s:6.1f}x decode, {1 / features_s:6.1f} tiles/s",
        f"tiny VLM Yes/No scoring, b={args.batch_size}: {score_s * 1000:8.2f} ms/tile = "
        f"{score_s / decode_s:6.1f}x decode, {1 / score_s:6.1f} tiles/s",
        f"tiny VLM LoRA step, b={args.batch_size}:     {step_s * 1000:8.1f} ms/step = "
        f"{step_s / args.batch_size / score_s:4.1f}x scoring per tile "
        f"(median of {summary['steps']} steps; "
        f"loss {summary['losses'][0]:.3f} -> {summary['final_loss']:.3f})",
    ]
    print("\n".join(lines))
    if args.write:
        write_section(
            "bench_model", "Physics baseline and tiny-VLM speed (`benchmarks/bench_model.py`)", lines
        )


if __name__ == "__main__":
    main()
