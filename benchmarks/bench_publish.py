"""Publish: bytes and commits per push, and peak memory while publishing a 1 GiB layout.

**Protocol.** Every figure is for classic LFS (``basic`` transfer, and ``multipart`` for
files of 64 MiB or more), the protocol ``builder.hub.publish`` always uses, whatever
``HF_HUB_DISABLE_XET`` says (``builder/hub/client.py`` says why). Xet is not measured: the
local server does not speak it.

1. Bytes and commits: the real ``builder.hub.publish`` code and huggingface_hub client
   against the local Hub server of the tests, on the card-scale sample release. The
   baseline is the first publish of the same run: the other pushes are printed as a
   share of its bytes.
2. Peak memory: a child process publishes a layout of random bytes shaped like a
   Parquet release (shards of 200 MiB, and a folder of 100 KiB tiles) of 256 MiB and of
   1 GiB to the server running in another process, and reports its peak resident set
   size (``ru_maxrss``). Baselines measured in the same run: the child's peak after
   importing everything (before publishing), and the same 256 MiB layout sent from
   memory (each file read whole, as publish did before it streamed).

    python benchmarks/bench_publish.py [--write]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from benchmarks._results import write_section  # noqa: E402
from builder.hub.bundles import Bundle, LocalFile, dataset_bundle  # noqa: E402
from builder.hub.publish import publish  # noqa: E402
from builder.release.build import BuildConfig, build  # noqa: E402
from builder.testing.sample import generate  # noqa: E402
from tests.hub.server import Account, HubServer, serve  # noqa: E402

ORG = "bench-org"
REPO = f"{ORG}/cropmark-disambiguator-s2"
TOKEN = "hf_benchmarktoken0123456789"
MiB = 1 << 20


def push(server: HubServer, release: Path, tag: str) -> tuple[int, int, int, float]:
    """(bytes uploaded, files uploaded, commits, seconds) of one publish."""
    server.stats.reset()
    start = time.perf_counter()
    publish(dataset_bundle(release, REPO), REPO, tag=tag, say=lambda line: None)
    wall = time.perf_counter() - start
    return server.stats.uploaded_bytes, server.stats.uploaded_files, server.stats.commits, wall


def bytes_and_commits(tmp: Path, say: Callable[[str], None]) -> None:
    with serve({TOKEN: Account("bench", (ORG,))}) as server:
        os.environ["HF_ENDPOINT"] = server.url
        corpus, out = tmp / "corpus", tmp / "build"
        generate(corpus, seed=0)
        result = build(BuildConfig(corpus, out, "1.0.0", workers=2, repo_id=REPO))
        tiles = sum(result.report.counts.tiles.values())
        say(f"sample release: {tiles} tiles, {sum(p.is_file() for p in result.release.rglob('*'))} files")
        first = push(server, result.release, "v1.0.0")
        again = push(server, result.release, "v1.0.0")
        tile = next(t for t in result.report.tiles if t.source.endswith(".png") and len(t.rows) == 1)
        pixels = np.asarray(Image.open(corpus / tile.source).convert("RGB")).copy()
        pixels[:32, :32] = 255 - pixels[:32, :32]
        Image.fromarray(pixels).save(corpus / tile.source, format="PNG")
        result = build(BuildConfig(corpus, out, "1.0.1", workers=2, repo_id=REPO))
        one = push(server, result.release, "v1.0.1")
    for name, (nbytes, nfiles, commits, wall) in (
        ("first publish", first),
        ("unchanged re-publish", again),
        ("one changed tile", one),
    ):
        say(
            f"{name:<22} {nbytes / 1024:>9.1f} KiB in {nfiles:>4} file(s), {commits} commit(s), "
            f"{nbytes / first[0]:.4f}x the first publish's bytes, {wall:.1f} s"
        )


def layout(folder: Path, total_mb: int) -> None:
    """Random bytes shaped like a Parquet release: 200 MiB shards, and 100 KiB tiles for the rest."""
    shards = total_mb * 4 // 5 // 200
    (folder / "data").mkdir(parents=True)
    for i in range(shards):
        with (folder / "data" / f"train-{i:05d}-of-{shards:05d}.parquet").open("wb") as out:
            for _ in range(200):
                out.write(os.urandom(MiB))
    tiles = (total_mb * MiB - shards * 200 * MiB) // (100 * 1024)
    (folder / "tiles").mkdir()
    for i in range(tiles):
        (folder / "tiles" / f"t{i:05d}.jpg").write_bytes(os.urandom(100 * 1024))


def measure(folder: Path, repo: str, in_memory: bool) -> None:
    """Child: publish ``folder`` and print its peak RSS before and after, as JSON."""
    import huggingface_hub  # noqa: F401  everything publishing imports, before the baseline

    import builder.hub.client  # noqa: F401

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    paths = sorted(p for p in folder.rglob("*") if p.is_file())
    files = tuple(
        LocalFile.from_bytes(rel, p.read_bytes()) if in_memory else LocalFile.from_path(rel, p)
        for p in paths
        for rel in [p.relative_to(folder).as_posix()]
    )
    publish(Bundle("dataset", files, ()), repo, say=lambda line: None)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    size = sum(f.size for f in files) / MiB
    print(json.dumps({"before": before, "peak": peak, "seconds": time.perf_counter() - start, "mib": size}))


def peak_memory(tmp: Path, say: Callable[[str], None]) -> None:
    hub = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.hub.server",
            "--token",
            f"{TOKEN}:bench:{ORG}",
            "--root",
            str(tmp / "hub"),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert hub.stdout is not None
        url = hub.stdout.readline().strip()
        env = {**os.environ, "HF_ENDPOINT": url, "HF_TOKEN": TOKEN, "HF_HOME": str(tmp / "home")}
        env.pop("HF_HUB_DISABLE_XET", None)  # the user's default: publish chooses classic LFS itself
        runs = [(256, False), (256, True), (1024, False)]
        for size, in_memory in runs:
            # A layout of its own for each run: content the server already holds is never uploaded.
            folder = tmp / f"layout-{size}-{'memory' if in_memory else 'stream'}"
            layout(folder, size)
            how = "read into memory" if in_memory else "streamed"
            args = [str(folder), f"{ORG}/layout-{size}-{'memory' if in_memory else 'stream'}"]
            done = subprocess.run(
                [sys.executable, __file__, "--measure", *args, *(["--in-memory"] if in_memory else [])],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            got = json.loads(done.stdout.strip().splitlines()[-1])
            shutil.rmtree(folder)
            say(
                f"{got['mib']:>6.0f} MiB layout, {how:<16} peak RSS {got['peak']:>6.0f} MiB "
                f"(after imports {got['before']:.0f} MiB: +{got['peak'] - got['before']:.0f} MiB, "
                f"{(got['peak'] - got['before']) / got['mib']:.3f}x the layout), {got['seconds']:.1f} s"
            )
    finally:
        hub.terminate()
        hub.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="write the figures to benchmarks/RESULTS.md")
    parser.add_argument("--measure", nargs=2, metavar=("FOLDER", "REPO"), help=argparse.SUPPRESS)
    parser.add_argument("--in-memory", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(Path(args.measure[0]), args.measure[1], args.in_memory)
        return
    lines: list[str] = []

    def say(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    say("protocol: classic LFS (basic; multipart for files of 64 MiB or more), as publish always uses")
    say("memory layouts: random bytes (200 MiB shards, 100 KiB tiles), new to the server, sent as a Bundle")
    with tempfile.TemporaryDirectory(prefix="bench_publish_") as tmp:
        os.environ["HF_TOKEN"] = TOKEN
        os.environ["HF_HOME"] = str(Path(tmp) / "hf-home")
        bytes_and_commits(Path(tmp), say)
        peak_memory(Path(tmp), say)
    if args.write:
        write_section(
            "bench_publish", "Publish: bytes, commits and peak memory (`benchmarks/bench_publish.py`)", lines
        )


if __name__ == "__main__":
    main()
