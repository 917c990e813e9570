"""Bytes and commits of a release push: first publish, unchanged re-publish, one changed tile.

Runs the real ``builder.publish`` code and the real huggingface_hub client against
the local Hub server of the tests (classic LFS, Xet off), on the card-scale
sample release. The baseline is the first publish of the same run: the other
pushes are printed as a share of its bytes.

    python benchmarks/bench_publish.py [--write]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ["HF_HUB_DISABLE_XET"] = "1"  # read when huggingface_hub is imported
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from benchmarks._results import write_section  # noqa: E402
from builder.publish import dataset_bundle, publish  # noqa: E402
from builder.release import BuildConfig, build  # noqa: E402
from builder.sample import generate  # noqa: E402
from tests.hub.server import HubServer, serve  # noqa: E402

REPO = "bench-org/cropmark-disambiguator-s2"


def push(server: HubServer, release: Path, tag: str) -> tuple[int, int, int, float]:
    """(bytes uploaded, files uploaded, commits, seconds) of one publish."""
    server.stats.reset()
    start = time.perf_counter()
    publish(dataset_bundle(release, REPO), REPO, tag=tag, say=lambda line: None)
    wall = time.perf_counter() - start
    return server.stats.uploaded_bytes, server.stats.uploaded_files, server.stats.commits, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="write the figures to benchmarks/RESULTS.md")
    args = parser.parse_args()
    lines: list[str] = []

    def say(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    with tempfile.TemporaryDirectory(prefix="bench_publish_") as tmp, serve() as server:
        os.environ["HF_ENDPOINT"] = server.url
        os.environ["HF_TOKEN"] = "hf_benchmarktoken"
        os.environ["HF_HOME"] = str(Path(tmp) / "hf-home")
        corpus, out = Path(tmp) / "corpus", Path(tmp) / "build"
        generate(corpus, seed=0)
        result = build(BuildConfig(corpus, out, "1.0.0", workers=2, repo_id=REPO))
        tiles = sum(result.report["counts"]["tiles"].values())
        say(f"sample release: {tiles} tiles, {sum(p.is_file() for p in result.release.rglob('*'))} files")
        first = push(server, result.release, "v1.0.0")
        again = push(server, result.release, "v1.0.0")
        tile = next(t for t in result.report["tiles"] if t["source"].endswith(".png") and len(t["rows"]) == 1)
        pixels = np.asarray(Image.open(corpus / tile["source"]).convert("RGB")).copy()
        pixels[:32, :32] = 255 - pixels[:32, :32]
        Image.fromarray(pixels).save(corpus / tile["source"], format="PNG")
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
    if args.write:
        write_section("bench_publish", "Publish: bytes and commits (`benchmarks/bench_publish.py`)", lines)


if __name__ == "__main__":
    main()
