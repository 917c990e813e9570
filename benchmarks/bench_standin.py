"""The real model's size, measured: a random-weight LFM2.5-VL-450M stand-in scoring and training.

Writes the stand-in of ``builder/testing/standin.py`` (the published configuration
of LFM2-VL-450M / LFM2.5-VL-450M, random weights) and the small sample release,
then measures, each part in a process of its own so that its peak memory is its
own:

- **score**: load time, latency per tile at batch 1 (median, p95), tiles per
  second at batch 1 and 8, peak memory;
- **train**: a LoRA step at batch 8 (the project's training loop and target
  modules), its median time and the peak memory;
- **profile**: where a batch-1 verdict's time goes: the image processor, the
  vision tower and projector, the language model; float32 against bfloat16,
  one thread against all, the processor's 1024 padded patch slots against the
  512 a tile fills, and 128 image tokens (the model's setting for a tile)
  against 64.

The reference of every speed is measured in the same run (the time of one
verdict at batch 1). Peak memory is the process's ``ru_maxrss`` on a CPU and
``torch.cuda.max_memory_allocated`` on a GPU. The Space's latency with the
stand-in is ``benchmarks/bench_space.py --model standin``.

    python benchmarks/bench_standin.py [--device cpu|cuda|auto] [--tiles 8] [--steps 2] [--write]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from benchmarks._results import write_section  # noqa: E402


def _peak_mib(device: str) -> float:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _tiles(release: Path, n: int) -> list[Any]:
    from builder.model import data

    examples = data.examples(release, "eval") + data.examples(release, "train")
    return [examples[i % len(examples)].rgb() for i in range(n)]


def phase_score(args: argparse.Namespace) -> dict[str, Any]:
    from builder.model.scoring import load_scorer, pick_device

    device = pick_device(args.device)
    start = time.perf_counter()
    scorer = load_scorer(args.model, device=device)
    load_s = time.perf_counter() - start
    loaded_mib = _peak_mib(device)
    images = _tiles(Path(args.release), max(args.tiles, 16))
    scorer.p_yes(images[:1], batch_size=1)  # warm-up
    one = []
    for image in images[: args.tiles]:
        _sync(device)
        start = time.perf_counter()
        scorer.p_yes([image], batch_size=1)
        _sync(device)
        one.append(time.perf_counter() - start)
    _sync(device)
    start = time.perf_counter()
    scorer.p_yes(images[:16], batch_size=8)
    _sync(device)
    eight = (time.perf_counter() - start) / 16
    return {
        "device": device,
        "dtype": str(next(scorer.model.parameters()).dtype).removeprefix("torch."),
        "load_s": load_s,
        "loaded_mib": loaded_mib,
        "b1_s": one,
        "b8_s_per_tile": eight,
        "peak_mib": _peak_mib(device),
    }


def phase_train(args: argparse.Namespace) -> dict[str, Any]:
    from builder.model.scoring import pick_device
    from builder.model.train import load_config, train

    device = pick_device(args.device)
    config = load_config(
        ROOT / "scripts" / "lora.yaml",
        {
            "base_model": args.model,
            "output_dir": str(Path(args.out).with_name("lora")),
            "batch_size": 8,
            "gradient_accumulation": 1,
            "max_steps": args.steps,
            "device": device,
        },
    )
    summary = train(config, args.release, progress=False, overwrite=True)
    return {
        "device": device,
        "step_s": summary["step_time_s"],
        "steps": summary["steps"],
        "peak_mib": _peak_mib(device),
    }


def phase_profile(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from builder.model.scoring import batch, load_scorer, pick_device

    device = pick_device(args.device)
    scorer = load_scorer(args.model, device=device)
    model, processor = scorer.model, scorer.processor
    image = _tiles(Path(args.release), 1)[0]

    def best(call: Any, repeat: int = 2) -> float:
        call()
        times = []
        for _ in range(repeat):
            _sync(device)
            start = time.perf_counter()
            call()
            _sync(device)
            times.append(time.perf_counter() - start)
        return min(times)

    def inputs_of(padded: bool = False, tokens: int | None = None) -> Any:
        if tokens is not None:
            processor.image_processor.max_image_tokens = tokens
        try:
            if padded:  # the processor's output as it is: 1024 patch slots, half of them padding
                from builder.model.scoring import prompt_text

                made = processor(
                    text=[prompt_text(processor)], images=[[image]], padding=True, return_tensors="pt"
                )
            else:
                made = batch(processor, [image])
        finally:
            processor.image_processor.max_image_tokens = 256
        made = made.to(device)
        made["pixel_values"] = made["pixel_values"].to(next(model.parameters()).dtype)
        return made

    def forward(made: Any) -> None:
        last = made["attention_mask"].sum(dim=1) - 1
        with torch.inference_mode():
            model(**made, logits_to_keep=last[:, None])

    def vision(made: Any) -> None:
        with torch.inference_mode():
            model.get_image_features(
                pixel_values=made["pixel_values"],
                spatial_shapes=made["spatial_shapes"],
                pixel_attention_mask=made["pixel_attention_mask"],
            )

    trimmed, padded, small = inputs_of(), inputs_of(padded=True), inputs_of(tokens=64)
    image_id = processor.tokenizer.convert_tokens_to_ids("<image>")
    out: dict[str, Any] = {
        "device": device,
        "threads": torch.get_num_threads(),
        "sequence": int(trimmed["input_ids"].shape[1]),
        "image_tokens": int((trimmed["input_ids"] == image_id).sum()),
        "image_tokens_small": int((small["input_ids"] == image_id).sum()),
        "patches": int(trimmed["pixel_values"].shape[1]),
        "patches_padded": int(padded["pixel_values"].shape[1]),
        "processor_s": best(lambda: batch(processor, [image])),
        "vision_s": best(lambda: vision(trimmed)),
        "vision_padded_s": best(lambda: vision(padded)),
        "forward_s": best(lambda: forward(trimmed)),
        "forward_padded_s": best(lambda: forward(padded)),
        "forward_64_tokens_s": best(lambda: forward(small)),
    }
    if device == "cpu":
        all_threads = torch.get_num_threads()
        torch.set_num_threads(1)
        out["forward_1_thread_s"] = best(lambda: forward(trimmed))
        torch.set_num_threads(all_threads)
    other = torch.bfloat16 if next(model.parameters()).dtype == torch.float32 else torch.float32
    model.to(other)
    cast = dict(trimmed)
    cast["pixel_values"] = trimmed["pixel_values"].to(other)
    out["other_dtype"] = str(other).removeprefix("torch.")
    out["forward_other_dtype_s"] = best(lambda: forward(cast), repeat=1)
    return out


PHASES = {"score": phase_score, "train": phase_train, "profile": phase_profile}


def _run_phase(name: str, args: argparse.Namespace, model: Path, release: Path, out: Path) -> dict[str, Any]:
    command = [
        sys.executable,
        __file__,
        "--phase",
        name,
        "--model",
        str(model),
        "--release",
        str(release),
        "--out",
        str(out),
        "--device",
        args.device,
        "--tiles",
        str(args.tiles),
        "--steps",
        str(args.steps),
    ]
    subprocess.run(command, check=True)
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (cuda when a GPU is present)")
    parser.add_argument("--tiles", type=int, default=8, help="tiles timed one by one")
    parser.add_argument("--steps", type=int, default=2, help="timed LoRA steps at batch 8")
    parser.add_argument("--write", action="store_true", help="write the figures to benchmarks/RESULTS.md")
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--release", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        Path(args.out).write_text(json.dumps(PHASES[args.phase](args)))
        return

    import torch

    from builder.release.build import BuildConfig, build
    from builder.testing.sample import SMALL_PLAN, generate
    from builder.testing.standin import MARKER, write_standin

    with tempfile.TemporaryDirectory(prefix="bench_standin_") as tmp:
        root = Path(tmp)
        generate(root / "corpus", seed=7, plan=SMALL_PLAN)
        release = build(BuildConfig(root / "corpus", root / "build", "1.0.0")).release
        start = time.perf_counter()
        model = write_standin(root / "standin", seed=0)
        write_s = time.perf_counter() - start
        parameters = json.loads((model / MARKER).read_text())["parameters"]
        score = _run_phase("score", args, model, release, root / "score.json")
        profile = _run_phase("profile", args, model, release, root / "profile.json")
        training = _run_phase("train", args, model, release, root / "train.json")

    b1 = np.array(score["b1_s"])
    p50, p95 = float(np.median(b1)), float(np.percentile(b1, 95))
    p = profile
    lm = p["forward_s"] - p["vision_s"]
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none on this machine"
    lines = [
        f"machine: {os.cpu_count()} cores (load average {os.getloadavg()[0]:.1f} at the end), "
        f"torch {torch.__version__}; GPU: {gpu}",
        f"model: random-weight LFM2.5-VL-450M stand-in, {parameters / 1e6:.1f} M parameters "
        f"(written as bfloat16 in {write_s:.0f} s), run on {score['device']} in {score['dtype']}",
        f"a 256x512 tile: {p['image_tokens']} image tokens in a sequence of {p['sequence']}, "
        f"{p['patches']} patches of 16 px",
        f"load (base, no adapter): {score['load_s']:.1f} s, "
        f"{score['loaded_mib']:.0f} MiB resident after loading",
        f"verdict at batch 1: median {p50:.2f} s, p95 {p95:.2f} s over {len(b1)} tiles "
        f"= {1 / float(b1.mean()):.2f} tiles/s (the reference)",
        f"scoring at batch 8: {1 / score['b8_s_per_tile']:.2f} tiles/s "
        f"= {float(b1.mean()) / score['b8_s_per_tile']:.2f}x batch 1",
        f"peak memory, scoring: {score['peak_mib']:.0f} MiB",
        f"LoRA step at batch 8 (median of {training['steps']}): {training['step_s']:.1f} s "
        f"= {training['step_s'] / 8 / float(b1.mean()):.1f}x a batch-1 verdict per tile; "
        f"peak memory {training['peak_mib']:.0f} MiB",
        f"profile of one verdict ({p['threads']} thread(s), best of 2): "
        f"processor {p['processor_s'] * 1000:.0f} ms, "
        f"vision tower + projector {p['vision_s']:.2f} s, language model + head {lm:.2f} s",
        f"  the processor's {p['patches_padded']} padded patch slots: vision {p['vision_padded_s']:.2f} s, "
        f"forward {p['forward_padded_s']:.2f} s = {p['forward_padded_s'] / p['forward_s']:.2f}x "
        f"the {p['patches']} the tile fills (scoring drops the padding)",
        f"  {p['image_tokens_small']} image tokens instead of {p['image_tokens']} (max_image_tokens=64, "
        f"the tile downscaled): forward {p['forward_64_tokens_s']:.2f} s "
        f"= {p['forward_64_tokens_s'] / p['forward_s']:.2f}x",
        f"  {p['other_dtype']} instead of {score['dtype']}: forward {p['forward_other_dtype_s']:.2f} s "
        f"= {p['forward_other_dtype_s'] / p['forward_s']:.2f}x",
    ]
    if "forward_1_thread_s" in p:
        lines.append(
            f"  1 thread instead of {p['threads']}: forward {p['forward_1_thread_s']:.2f} s "
            f"= {p['forward_1_thread_s'] / p['forward_s']:.2f}x"
        )
    print("\n".join(lines))
    if args.write:
        name = "bench_standin" if score["device"] == "cpu" else "bench_standin_gpu"
        title = f"Real-size stand-in of LFM2.5-VL-450M on {score['device']} (`benchmarks/bench_standin.py`)"
        write_section(name, title, lines)


if __name__ == "__main__":
    main()
