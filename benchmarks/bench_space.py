"""Latency per tile of the Space (tiny model + baseline) against the same work in-process.

Builds the small sample release, fits the physics baseline, trains a 2-step
adapter on a tiny random LFM2-VL, launches ``space/app.py`` on loopback, and
sends tiles one at a time with ``gradio_client``. The reference, measured in the
same run, is the app's own work done in-process (read and check the upload,
score with the VLM and the baseline, draw the proxy maps), so the ratio is what
HTTP, the queue and the client add.

    python benchmarks/bench_space.py [--requests 60] [--write]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from benchmarks._results import write_section  # noqa: E402
from builder.model import data  # noqa: E402
from builder.model import evaluate as model_evaluate  # noqa: E402
from builder.release import BuildConfig, build  # noqa: E402
from builder.sample import SMALL_PLAN, generate  # noqa: E402


def _quantiles(seconds: list[float]) -> tuple[float, float]:
    ms = np.array(seconds) * 1000
    return float(np.median(ms)), float(np.percentile(ms, 95))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--write", action="store_true", help="write the figures to benchmarks/RESULTS.md")
    args = parser.parse_args()
    import torch
    from gradio_client import Client, handle_file

    from builder.model import baseline as physics
    from builder.model.scoring import load_scorer
    from builder.model.tiny import write_tiny_lfm2_vl
    from builder.model.train import load_config, train
    from builder.model.upload import proxy_maps, read_upload
    from tests.space_server import run_space

    with tempfile.TemporaryDirectory(prefix="bench_space_") as tmp:
        root = Path(tmp)
        generate(root / "corpus", seed=7, plan=SMALL_PLAN)
        release = build(BuildConfig(root / "corpus", root / "build", "1.0.0")).release
        model_evaluate.train_baseline(str(release), root / "baseline", progress=False)
        tiny = write_tiny_lfm2_vl(root / "tiny", seed=0)
        adapter = root / "adapter"
        settings = {"base_model": str(tiny), "output_dir": str(adapter), "max_steps": 2, "batch_size": 2}
        train(load_config(None, settings), str(release), progress=False)
        tiles = [e.path for e in data.examples(release, "eval")]
        calls = [tiles[i % len(tiles)] for i in range(args.requests)]

        # Reference: the app's work in this process, one thread per request as in the app.
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // 2))
        scorer = load_scorer(str(tiny), adapter, device="cpu")
        model = physics.load(root / "baseline" / "baseline.json")
        local = []
        for path in [calls[0], *calls]:  # the first call warms up and is dropped
            start = time.perf_counter()
            tile = read_upload(path)
            scorer.p_yes([tile.image], batch_size=1)
            model.p_yes_tile(tile.rgb)
            proxy_maps(tile.rgb)
            local.append(time.perf_counter() - start)
        local = local[1:]

        env = {
            "CROPMARK_BASE_MODEL": str(tiny),
            "CROPMARK_ADAPTER": str(adapter),
            "CROPMARK_BASELINE": str(root / "baseline" / "baseline.json"),
            "CROPMARK_EXAMPLES": str(root / "no-examples"),
        }
        with run_space(env, root / "space.log") as url:
            client = Client(url, verbose=False)
            remote = []
            for path in [calls[0], *calls]:
                start = time.perf_counter()
                client.predict(handle_file(str(path)), api_name="/predict")
                remote.append(time.perf_counter() - start)
            remote = remote[1:]

    (l50, l95), (r50, r95) = _quantiles(local), _quantiles(remote)
    lines = [
        f"machine: {os.cpu_count()} cores, torch {torch.__version__}, CPU",
        "model: tiny LFM2-VL + 2-step LoRA, and the physics baseline",
        f"{args.requests} sequential requests of 256x512 tiles",
        f"in-process (read, VLM, baseline, maps): median {l50:7.1f} ms, p95 {l95:7.1f} ms (the reference)",
        f"Space via gradio_client:                median {r50:7.1f} ms, p95 {r95:7.1f} ms "
        f"= {r50 / l50:.2f}x / {r95 / l95:.2f}x the reference",
    ]
    print("\n".join(lines))
    if args.write:
        write_section("bench_space", "Space latency per tile (`benchmarks/bench_space.py`)", lines)


if __name__ == "__main__":
    main()
