"""Latency per tile of the Space against the same work in-process.

Builds the small sample release, fits the physics baseline, and launches
``space/app.py`` on loopback with either the tiny random LFM2-VL and a 2-step
adapter (``--model tiny``, the default) or the real-size random stand-in of
LFM2.5-VL-450M (``--model standin``, no adapter). Tiles are sent one at a time,
the way the page sends them (upload, queue, event stream, output images
fetched), through Gradio's HTTP API (upload, ``POST /gradio_api/call/predict``, its
event stream, the picture fetched; one reused httpx client), and through
``gradio_client`` twice: the way ``space/app.py``'s docstring
documents (one reused ``Client`` with one SSL context) and with gradio_client's
defaults (one reused ``Client(url)``, which builds a new SSL context for each of the
four HTTP steps of a call). Both clients download the picture, as the page does. The
reference, measured in the same run, is the app's own work done in-process (read and
check the upload, score with the VLM and the baseline, draw what was scored beside its
proxy maps), so the ratio is what HTTP, the queue and the client add. The five ways take
turns tile by tile, so a change of machine load meets all of them alike. The Space's peak
memory is its process's high-water mark (``VmHWM``).

    python benchmarks/bench_space.py [--model tiny|standin] [--requests 60] [--write]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from benchmarks._results import write_section  # noqa: E402
from builder.model import data  # noqa: E402
from builder.model import evaluate as model_evaluate  # noqa: E402
from builder.release.build import BuildConfig, build  # noqa: E402
from builder.testing.sample import SMALL_PLAN, generate  # noqa: E402


def quantiles(seconds: list[float]) -> tuple[float, float]:
    """Median and 95th percentile in milliseconds."""
    ms = np.array(seconds) * 1000
    return float(np.median(ms)), float(np.percentile(ms, 95))


class HttpxBuilds:
    """Counts the ``httpx.Client`` objects this process builds and the seconds spent building
    them (an httpx client given ``verify=True`` builds its SSL context from certifi's CA bundle),
    by wrapping ``httpx.Client.__init__`` for the benchmark's run."""

    def __init__(self) -> None:
        import httpx

        self.count, self.seconds, self.lock = 0, 0.0, threading.Lock()
        original = httpx.Client.__init__

        def timed(client: Any, *args: Any, **kwargs: Any) -> None:
            start = time.perf_counter()
            original(client, *args, **kwargs)
            with self.lock:
                self.count += 1
                self.seconds += time.perf_counter() - start

        httpx.Client.__init__ = timed  # type: ignore[method-assign,assignment]

    def read(self) -> tuple[int, float]:
        with self.lock:
            return self.count, self.seconds


def interleaved(
    calls: dict[str, Callable[[Path], Any]], paths: list[Path], builds: HttpxBuilds
) -> dict[str, list[tuple[float, int, float]]]:
    """Per call of each way: its seconds, and the httpx clients it built and the seconds they
    took; the ways take turns tile by tile so that all of them meet the same machine load, and
    the first round warms up and is dropped."""
    out: dict[str, list[tuple[float, int, float]]] = {name: [] for name in calls}
    for path in [paths[0], *paths]:
        for name, call in calls.items():
            made, building = builds.read()
            start = time.perf_counter()
            call(path)
            elapsed = time.perf_counter() - start
            now_made, now_building = builds.read()
            out[name].append((elapsed, now_made - made, now_building - building))
    return {name: rows[1:] for name, rows in out.items()}


def peak_mib(pid: int) -> float:
    """A process's peak resident memory (VmHWM) in MiB; NaN where /proc has no such line."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("tiny", "standin"), default="tiny")
    parser.add_argument("--requests", type=int, default=None, help="default 60 (tiny), 12 (standin)")
    parser.add_argument("--write", action="store_true", help="write the figures to benchmarks/RESULTS.md")
    args = parser.parse_args()
    requests = args.requests or (60 if args.model == "tiny" else 12)
    import torch
    from gradio_client import handle_file

    from builder.model import baseline as physics
    from builder.model.scoring import load_scorer
    from builder.model.train import load_config, train
    from builder.model.upload import figure, read_upload
    from builder.testing.standin import write_standin
    from builder.testing.tiny import write_tiny_lfm2_vl
    from tests.space_server import BrowserClient, HttpApiClient, client, default_client, run_space

    with tempfile.TemporaryDirectory(prefix="bench_space_") as tmp:
        root = Path(tmp)
        generate(root / "corpus", seed=7, plan=SMALL_PLAN)
        release = build(BuildConfig(root / "corpus", root / "build", "1.0.0")).release
        model_evaluate.train_baseline(str(release), root / "baseline", progress=False)
        if args.model == "tiny":
            base = write_tiny_lfm2_vl(root / "tiny", seed=0)
            adapter: Path | None = root / "adapter"
            settings = {"base_model": str(base), "output_dir": str(adapter), "max_steps": 2, "batch_size": 2}
            train(load_config(None, settings), str(release), progress=False)
        else:
            base, adapter = write_standin(root / "standin", seed=0), None
        tiles = [e.path for e in data.examples(release, "eval")]
        calls = [tiles[i % len(tiles)] for i in range(requests)]

        # Reference: the app's work in this process, with the app's threads per request.
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // 2))
        scorer = load_scorer(str(base), adapter, device="cpu")
        model = physics.load(root / "baseline" / "baseline.json")

        def in_process(path: Path) -> None:
            tile = read_upload(path)
            scorer.p_yes([tile.image], batch_size=1)
            model.p_yes_tile(tile.rgb)
            figure(tile)

        env = {
            "CROPMARK_BASE_MODEL": str(base),
            "CROPMARK_ADAPTER": str(adapter or ""),
            "CROPMARK_BASELINE": str(root / "baseline" / "baseline.json"),
            "CROPMARK_EXAMPLES": str(root / "no-examples"),
        }
        builds = HttpxBuilds()
        with run_space(env, root / "space.log") as (url, process):
            browser, api, plain = BrowserClient(url), client(url), default_client(url)
            http_api = HttpApiClient(url)
            rows = interleaved(
                {
                    "local": in_process,
                    "page": browser.predict,
                    "http": http_api.predict,
                    "client": lambda p: api.predict(handle_file(str(p)), api_name="/predict"),
                    "default": lambda p: plain.predict(handle_file(str(p)), api_name="/predict"),
                },
                calls,
                builds,
            )
            browser.close()
            http_api.close()
            peak = peak_mib(process.pid)

    seconds = {name: [row[0] for row in way] for name, way in rows.items()}

    def building(name: str) -> str:
        """How many httpx clients a call of this way built (median), and the median time building them."""
        made = int(np.median([row[1] for row in rows[name]]))
        ms = float(np.median([row[2] for row in rows[name]])) * 1000
        return f"{made} httpx client(s) built per call, median {ms:.1f} ms building them"

    (l50, l95), (p50, p95) = quantiles(seconds["local"]), quantiles(seconds["page"])
    (c50, c95), (d50, d95) = quantiles(seconds["client"]), quantiles(seconds["default"])
    h50, h95 = quantiles(seconds["http"])
    load = os.getloadavg()[0]
    described = {
        "tiny": "tiny LFM2-VL + 2-step LoRA, and the physics baseline",
        "standin": "random-weight LFM2.5-VL-450M stand-in at the real sizes (float32, no adapter), "
        "and the physics baseline",
    }[args.model]
    lines = [
        f"machine: {os.cpu_count()} cores (load average {load:.1f} at the end), torch {torch.__version__}, "
        "CPU (no GPU on this machine)",
        f"model: {described}",
        f"{requests} sequential requests of 256x512 tiles; the Space scores with "
        f"{max(1, (os.cpu_count() or 1) // 2)} torch thread(s) per request (2 at once)",
        f"in-process (read, VLM, baseline, figure):  median {l50:8.1f} ms, p95 {l95:8.1f} ms (the reference)",
        f"Space, as the page calls it:               median {p50:8.1f} ms, p95 {p95:8.1f} ms "
        f"= {p50 / l50:.2f}x / {p95 / l95:.2f}x the reference",
        f"Space via Gradio's HTTP API (documented):  median {h50:8.1f} ms, p95 {h95:8.1f} ms "
        f"= {h50 / l50:.2f}x / {h95 / l95:.2f}x the reference",
        f"Space via gradio_client, documented way:   median {c50:8.1f} ms, p95 {c95:8.1f} ms "
        f"= {c50 / l50:.2f}x / {c95 / l95:.2f}x the reference ({building('client')})",
        f"Space via gradio_client, Client(url) only: median {d50:8.1f} ms, p95 {d95:8.1f} ms "
        f"= {d50 / l50:.2f}x / {d95 / l95:.2f}x the reference ({building('default')})",
        "documented way: one Client(url, ssl_verify=httpx.create_ssl_context()), reused (space/app.py); "
        "Client(url) only: one Client(url), reused; both download the picture, as the page does",
        f"Space process peak memory (VmHWM): {peak:.0f} MiB",
    ]
    print("\n".join(lines))
    if args.write:
        name, title = {
            "tiny": ("bench_space", "Space latency per tile, tiny model (`benchmarks/bench_space.py`)"),
            "standin": (
                "bench_space_standin",
                "Space latency per tile, real-size stand-in (`benchmarks/bench_space.py --model standin`)",
            ),
        }[args.model]
        write_section(name, title, lines)


if __name__ == "__main__":
    main()
