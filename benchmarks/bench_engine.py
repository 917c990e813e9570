"""The per-tile stage on the local pool and on Ray: the same build, the engine's overhead per
tile, and an estimate of the time and cost of 1M and 10M tiles on a cluster.

The same N-tile corpus (default 10,000; made as ``bench_build.py`` makes its corpora) is built
three times, each in a fresh process: by the local engine in one process (the baseline), by
the local pool with 2 workers, and by Ray on a local instance with 2 CPUs (started by the
driver with ``ray.init(num_cpus=2)``; its start is timed apart). The three releases must be
the same bytes (their digests are compared). Printed: wall time, tiles per second, each
engine's rate against the 1-process baseline, and Ray's overhead per tile against the pool.

The per-tile CPU cost of the mapped work (curation's identity decode and the cut/gates/
hashes/audit task) is measured in this process on the same composites; the rest of the
1-process build's CPU time per tile is the driver's share (manifests, curation, writing the
tiles, leakage search, cards, the audit's hashes), which stays in one process on any engine.
The estimate for 1M and 10M tiles is computed from those measured figures:

    time = tiles x driver share  +  tiles x (mapped cost + Ray overhead) / (nodes x vCPUs)
    cost = time x nodes x price per node-hour

    python benchmarks/bench_engine.py [--tiles 10000] [--nodes 8] [--write]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._results import write_section  # noqa: E402
from benchmarks.bench_build import base_corpus, tile_corpus  # noqa: E402

# The named cluster node of the estimate (override with --node-type/--node-vcpus/--node-price).
NODE_TYPE = "AWS EC2 c7i.8xlarge (32 vCPU, 64 GiB)"
NODE_VCPUS = 32
# An assumed price, not one read from the price list when the benchmark ran (this machine has no
# network): the dollars scale with it, the node-hours do not. Give the day's price with --node-price.
NODE_PRICE = 1.428  # USD per node-hour, assumed for on-demand Linux in us-east-1
PRICE_SOURCE = "assumed; the day's on-demand price: https://aws.amazon.com/ec2/pricing/on-demand/"

RAY_DRIVER = """
import sys, time
import ray
start = time.perf_counter()
ray.init(num_cpus=int(sys.argv[3]), include_dashboard=False, logging_level="WARNING", log_to_driver=False)
print(f"ray-init-seconds {time.perf_counter() - start:.3f}", file=sys.stderr)
from builder.cli import main
args = ["--quiet", "build", "--corpus", sys.argv[1], "--out", sys.argv[2], "--version", "1.0.0"]
code = main([*args, "--engine", "ray"])
ray.shutdown()
sys.exit(code)
"""


def mapped_cpu(corpus: Path, sample: int) -> float:
    """CPU seconds per composite of the work an engine maps (identify, then the tile task),
    in this process, over the first ``sample`` composites of ``corpus``."""
    from builder.quality import sides, thresholds
    from builder.release import build as release
    from builder.release.curate import identify

    files = sorted((corpus / "composites").glob("*.jpg"))[:sample]
    config, no_sides = thresholds.GateConfig(), sides.Sides(None, None, None)
    start = time.process_time()
    for path in files:
        identity = identify(str(path))
        release.tile_task(
            (str(corpus), path.relative_to(corpus).as_posix(), config, no_sides, "t", identity.sha256, True)
        )
    return (time.process_time() - start) / len(files)


def build_cmd(corpus: Path, out: Path, *extra: str) -> list[str]:
    args = ["build", "--corpus", str(corpus), "--out", str(out), "--version", "1.0.0", *extra]
    return [sys.executable, "-m", "builder.cli", "--quiet", *args]


def cpu_of(cmd: list[str], out: Path) -> tuple[float, float, str, str]:
    """Wall seconds and CPU seconds (the process and the children it waited for: the local
    pool's workers; not Ray's, which its raylet starts) of one build in a fresh process, the
    release's digest, and its standard error."""
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"build failed: {stderr.strip()[-2000:]}")
    report = out / "cropmark-disambiguator-s2" / "1.0.0.private" / "report.json"
    digest = json.loads(report.read_text())["release_digest"]
    return wall, usage.ru_utime + usage.ru_stime, digest, stderr


def published(out: Path) -> int:
    report = out / "cropmark-disambiguator-s2" / "1.0.0.private" / "report.json"
    return len(json.loads(report.read_text())["tiles"])


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=10_000, help="composites in the build (default 10,000)")
    parser.add_argument("--base", type=int, default=200, help="distinct generated composites")
    parser.add_argument("--cpus", type=int, default=2, help="local pool workers and local Ray CPUs")
    parser.add_argument("--sample", type=int, default=200, help="composites timed for the mapped cost")
    parser.add_argument("--nodes", type=int, default=8, help="nodes of the estimate's cluster")
    parser.add_argument("--node-type", default=NODE_TYPE, help="the estimate's node, in words")
    parser.add_argument("--node-vcpus", type=int, default=NODE_VCPUS, help="vCPUs of one node")
    parser.add_argument("--node-price", type=float, default=NODE_PRICE, help="USD per node-hour")
    parser.add_argument("--price-source", default=PRICE_SOURCE, help="where the price is listed")
    parser.add_argument("--write", action="store_true", help="write the figures to benchmarks/RESULTS.md")
    args = parser.parse_args()
    import ray  # the ray extra: pip install 'cropmark[ray]'

    lines = [
        f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, Ray {ray.__version__}, "
        f"load average {os.getloadavg()[0]:.1f} at the start"
    ]

    def say(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    with tempfile.TemporaryDirectory(prefix="bench_engine_") as tmp:
        tmpdir = Path(tmp)
        base = base_corpus(tmpdir / "base", args.base)
        corpus = tile_corpus(tmpdir / "corpus", base, args.tiles)
        mapped = mapped_cpu(corpus, min(args.sample, args.tiles))
        out = tmpdir / "out"
        one_wall, one_cpu, one_digest, _ = cpu_of(build_cmd(corpus, out, "--workers", "1"), out)
        tiles = published(out)
        pool_wall, pool_cpu, pool_digest, _ = cpu_of(build_cmd(corpus, out, "--workers", str(args.cpus)), out)
        ray_cmd = [sys.executable, "-c", RAY_DRIVER, str(corpus), str(out), str(args.cpus)]
        ray_wall, _, ray_digest, stderr = cpu_of(ray_cmd, out)
        init = next(float(w.split()[1]) for w in stderr.splitlines() if w.startswith("ray-init-seconds"))
    if not one_digest == pool_digest == ray_digest:
        raise SystemExit(f"the releases differ: {one_digest} {pool_digest} {ray_digest}")
    digest = hashlib.sha256(one_digest.encode()).hexdigest()[:12]
    ray_build = ray_wall - init
    say(
        f"{args.tiles:,} composites -> {tiles:,} tiles published; "
        f"the three releases are the same bytes ({digest})"
    )
    say(
        f"1 process (baseline)      {one_wall:7.1f} s  {tiles / one_wall:6.1f} tiles/s  "
        f"CPU {one_cpu / tiles * 1000:.1f} ms/tile"
    )
    say(
        f"local pool, {args.cpus} workers     {pool_wall:7.1f} s  {tiles / pool_wall:6.1f} tiles/s  "
        f"= {one_wall / pool_wall:.2f}x the baseline's rate; CPU {pool_cpu / tiles * 1000:.1f} ms/tile"
    )
    say(
        f"Ray, {args.cpus} CPUs (local)       {ray_wall:7.1f} s  {tiles / ray_wall:6.1f} tiles/s  "
        f"= {one_wall / ray_wall:.2f}x the baseline's rate (ray.init {init:.1f} s of it; without it "
        f"{tiles / ray_build:.1f} tiles/s = {one_wall / ray_build:.2f}x)"
    )
    overhead = (ray_build - pool_wall) / tiles
    say(
        f"Ray's overhead per tile against the pool: {overhead * 1000:+.2f} ms of wall time "
        f"({(ray_wall - pool_wall) / tiles * 1000:+.2f} ms with ray.init), "
        f"{overhead / (one_wall / tiles):+.1%} of the baseline's {one_wall / tiles * 1000:.1f} ms per tile"
    )
    driver = max(0.0, one_cpu / tiles - mapped)
    extra = max(0.0, overhead * args.cpus)  # CPU-seconds per tile that Ray adds on its CPUs
    say(
        f"per tile, measured: mapped work {mapped * 1000:.1f} ms CPU (identify + tile task, "
        f"{min(args.sample, args.tiles)} composites in one process); driver share "
        f"{driver * 1000:.1f} ms (the baseline's CPU per tile less the mapped work); Ray adds "
        f"{extra * 1000:.1f} ms of its CPUs' time per tile (its wall-time overhead x {args.cpus} CPUs)"
    )
    vcpus = args.nodes * args.node_vcpus
    say(
        f"estimate on {args.nodes} x {args.node_type} = {vcpus} vCPUs, at ${args.node_price:.3f} "
        f"per node-hour ({args.price_source}; --node-price):"
    )
    for n in (1_000_000, 10_000_000):
        stage = n * (mapped + extra) / vcpus
        serial = n * driver
        total = stage + serial + init
        cost = total / 3600 * args.nodes * args.node_price
        say(
            f"  {n:>10,} tiles: per-tile stage {_duration(stage)} on the cluster + driver "
            f"{_duration(serial)} in one process = {_duration(total)}, "
            f"{total / 3600 * args.nodes:,.1f} node-hours = ${cost:,.0f} "
            f"(the stage alone: ${stage / 3600 * args.nodes * args.node_price:,.0f})"
        )
    say(
        "  assumed, not measured: a vCPU does a tile's work at this machine's per-core cost; the "
        "driver's share grows linearly with the tiles; the shared file system serves the corpus as "
        "fast as the tasks read it; nodes are billed for the whole build. Not included: starting "
        "the nodes, and writing a sibling layout (an imagefolder release stops at 100,000 files: "
        "1M tiles need --layout parquet)"
    )
    say(f"load average {os.getloadavg()[0]:.1f} at the end")
    if args.write:
        write_section(
            "bench_engine", "Per-tile engines: local pool and Ray (`benchmarks/bench_engine.py`)", lines
        )


if __name__ == "__main__":
    main()
