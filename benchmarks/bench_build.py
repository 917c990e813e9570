"""Build throughput against the codec bound, scaling in processes, and peak memory.

The codec bound is measured in the same run on the same files: Pillow decoding
a 512x512 JPEG composite and encoding a 256x512 JPEG (q95, 4:4:4), nothing
else. Per stage of a tile's work (curation's identity, which decodes every composite
file before the cut; then read, strict decode, full decode, lossless crop, image checks,
gates, halves, audit half check, pHash, in-build audit), the cost per composite is
printed against it. For each tile count (1,000 and 10,000), a
whole build's tiles per second per core are printed as a ratio to it with 1 and 2
worker processes (the smallest count's builds run three times, taking turns, and the
fastest counts: they are short, and the machine's noise weighs most on them), the
2-worker rate against the 1-worker rate, the CPU time per
tile (all processes; less sensitive to other work on the machine than wall time)
against the codec bound's, and peak resident memory (with 1 worker the whole
build runs in one process), which shows whether memory stays flat in the number
of tiles. For the smallest count, one more build with each number of workers is timed
phase by phase (``benchmarks/_build_phases.py``): what runs in the build process alone
bounds what two workers can gain.

    python benchmarks/bench_build.py [--tiles 1000,10000] [--memory-tiles 99000]
                                     [--corpora DIR] [--write]

``--memory-tiles N`` adds one 2-worker build of N composites for its peak memory alone
(its time is printed, not compared), and the growth in MiB per 1,000 tiles from the
smallest 2-worker build; with ``--tiles ''`` only that is measured (against a 1,000-composite
build) and ``--write`` puts it in its own section. 99,000 is the largest corpus the
imagefolder layout accepts: with the card, licence, notice and two ``metadata.csv`` its
release stays under the Hub's recommended 100,000 files per repository. ``--corpora DIR``
keeps the generated corpora there and reuses them on the next run (a 99,000-composite
corpus takes 10 GB and 10 minutes).

Tile corpora are made from a seeded base corpus; extra tiles are copies of base
composites with a distinct pattern of black and white 8x8 blocks along the top of
the Sentinel-2 half (distinct pixels, so distinct composites: a copy that differed
only in metadata would be the same composite), re-encoded as JPEG q95, with a
comment segment (so the scrub has work to do).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._results import write_section  # noqa: E402
from builder.testing.sample import Plan, _row, generate  # noqa: E402


def base_corpus(root: Path, n: int) -> list[Path]:
    plan = Plan(
        unique_train=n,
        unique_eval=0,
        siblings=0,
        identical_copies=0,
        quarantined_train=0,
        quarantined_eval=0,
        conflicts=0,
        missing_train=0,
        missing_eval=0,
        cross_split_rows=0,
        png_share=0.0,
    )
    generate(root, seed=1, plan=plan)
    return sorted((root / "composites").glob("*.jpg"))


def tile_corpus(root: Path, base: list[Path], n: int) -> Path:
    """A corpus of ``n`` distinct JPEG composites (90 % train, 10 % eval).

    Every copy of a base composite goes to its base's split: copies of one base are
    near-duplicates of each other, and across splits they would make every train tile a
    listed near-duplicate pair, which no corpus worth publishing has.
    """
    (root / "composites").mkdir(parents=True)
    (root / "sft").mkdir()
    rows: dict[str, list[str]] = {"train": [], "eval": []}
    pixels = [np.asarray(Image.open(p).convert("RGB")) for p in base]
    for i in range(n):
        marked = pixels[i % len(pixels)].copy()
        bits = np.array([(i >> b) & 1 for b in range(24)], dtype=np.uint8)
        marked[0:8, 0:192] = np.repeat(np.repeat(bits * 255, 8)[None, :, None], 8, axis=0)
        buffer = io.BytesIO()
        Image.fromarray(marked).save(buffer, format="JPEG", quality=95)  # 4:2:0, as the corpus's
        data = buffer.getvalue()
        tag = f"copy {i}".encode()
        data = data[:2] + b"\xff\xfe" + (len(tag) + 2).to_bytes(2, "big") + tag + data[2:]
        rel = f"composites/c{i:06d}.jpg"
        (root / rel).write_bytes(data)
        split = "eval" if (i % len(pixels)) % 10 == 0 else "train"
        rows[split].append(json.dumps(_row(rel, "Yes" if i % 3 else "No")))
    for split, lines in rows.items():
        (root / "sft" / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    return root


def _fresh(context: Any, fn: Any, *args: Any) -> Any:
    """``fn(*args)`` in a fresh process of ``context``."""
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as fresh:
        return fresh.submit(fn, *args).result()


REFERENCE_TILES = 1000  # the small build a memory-only run compares with
ROUNDS = 3  # runs of each of the smallest timed builds (the fastest counts)


def _corpus(child: ProcessPoolExecutor, store: Path, base: list[Path], n: int) -> Path:
    """The tile corpus of ``n`` composites in ``store``, made (in ``child``) unless a complete one
    is there from an earlier run (its ``.complete`` marker, beside it, is written last)."""
    folder = store / f"c{n}-base{len(base)}"
    done = folder.with_name(folder.name + ".complete")
    if not done.is_file():
        shutil.rmtree(folder, ignore_errors=True)
        child.submit(tile_corpus, folder, base, n).result()
        done.write_text("made by benchmarks/bench_build.py\n")
    return folder


def codec_bound(files: list[Path], rounds: int = 3) -> float:
    """Tiles per second on one core: decode 512x512 + encode 256x512 q95 4:4:4."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for path in files:
            with Image.open(path) as image:
                image.load()
                half = image.crop((0, 0, 256, 512))
            half.save(io.BytesIO(), format="JPEG", quality=95, subsampling=0)
        best = min(best, time.perf_counter() - start)
    return len(files) / best


def _best(fn: Any, items: list[Any], rounds: int = 3) -> float:
    """Best-of-``rounds`` milliseconds per item of ``fn`` over ``items``."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for item in items:
            fn(item)
        best = min(best, time.perf_counter() - start)
    return best / len(items) * 1000


def _old_half_check(tile: bytes, source: Path) -> bool:
    """The audit's previous half check (whole-tile mean at 1/4 scale), kept here as the baseline."""
    import numpy as np

    def reduced(image: Image.Image) -> Any:
        image.draft("RGB", (image.width // 4, image.height // 4))
        return np.asarray(image.convert("RGB"), dtype=np.int16)

    with Image.open(source) as composite:
        pixels = reduced(composite)
    with Image.open(io.BytesIO(tile)) as image:
        half = reduced(image)
    return bool(np.abs(half - pixels[:, :64]).mean() < np.abs(half - pixels[:, 64:]).mean())


def check_costs(files: list[Path]) -> list[str]:
    """Per composite, the checks added to see it as displayed, against the codec bound's work."""
    import simplejpeg

    from builder.ingest.composite import cut_s2_half
    from builder.release.audit import check_half

    files = files[:100]
    pairs = [(cut_s2_half(p).data, p) for p in files]

    def codec(path: Path) -> None:
        with Image.open(path) as image:
            image.load()
            half = image.crop((0, 0, 256, 512))
        half.save(io.BytesIO(), format="JPEG", quality=95, subsampling=0)

    bound = _best(codec, files)
    strict = _best(lambda p: simplejpeg.decode_jpeg(p.read_bytes(), strict=True, min_factor=8), files)
    new = _best(lambda pair: list(check_half(pair[0], pair[1], "t")), pairs)
    old = _best(lambda pair: _old_half_check(*pair), pairs)
    return [
        f"per composite: codec bound {bound:.2f} ms; strict JPEG decode (warnings as errors) "
        f"{strict:.2f} ms = {strict / bound:.2f}x the codec bound",
        f"audit half check: block-wise on the displayed composite {new:.2f} ms, "
        f"previous whole-tile mean at 1/4 scale {old:.2f} ms = {new / old:.2f}x",
    ]


def half_check_allocators(files: list[Path], heap: bool) -> float:
    """Milliseconds per composite of the audit's half check on decoded pixels, with glibc's
    malloc keeping large blocks (``heap``, as the build sets it: builder.engine.keep_large_blocks)
    or with its default 128 KiB threshold held fixed (every large array mapped afresh from the
    kernel and unmapped when freed). Run in a fresh process each."""
    import ctypes

    from builder import engine
    from builder.ingest.composite import cut_opened, open_checked, read_composite
    from builder.release import audit

    if heap:
        assert engine.keep_large_blocks(), "glibc's mallopt is not available here"
    else:
        assert ctypes.CDLL(None).mallopt(-3, 128 * 1024), "glibc's mallopt is not available here"
    files = files[:100]
    opened = [open_checked(read_composite(p)) for p in files]
    shown = [np.asarray(o.displayed().convert("RGB")) for o in opened]
    pixels = [audit.inspect_image(cut_opened(o, p).data, "t")[1] for o, p in zip(opened, files, strict=True)]
    return _best(lambda i: list(audit.half_findings(pixels[i], shown[i], "t")), list(range(len(files))))


def stage_costs(files: list[Path]) -> list[str]:
    """Milliseconds per composite of each stage of a tile's work, in the order the build runs
    them (one process, best of 3 rounds over the files, its allocator set as a build's worker
    sets it), as fractions of the codec bound."""
    from builder import engine

    engine.keep_large_blocks()
    from builder.domain import HALF_SIZE
    from builder.ingest.composite import cut_opened, open_checked, read_composite, strict_jpeg
    from builder.quality import halves, sides, thresholds
    from builder.release import audit, curate, leakage
    from builder.release import build as release

    files = files[:100]
    config = thresholds.GateConfig()
    data = [read_composite(p) for p in files]
    opened = [open_checked(d) for d in data]
    cuts = [cut_opened(o, p) for o, p in zip(opened, files, strict=True)]
    shown = [np.asarray(o.displayed().convert("RGB")) for o in opened]
    root = files[0].parents[1]
    pixels = [audit.inspect_image(cut.data, "t")[1] for cut in cuts]
    written = files[0].parents[2] / "written"
    written.mkdir(exist_ok=True)
    for i, cut in enumerate(cuts):
        (written / f"t{i}.jpg").write_bytes(cut.data)
    checks = [(hashlib.sha256(cut.data).hexdigest(), ()) for cut in cuts]
    no_sides = sides.Sides(None, None, None)
    stages: list[tuple[str, Any, list[Any]]] = [
        ("curation's identity (decodes, once per file)", curate.identify, [str(p) for p in files]),
        ("read the file", read_composite, files),
        ("strict entropy decode (simplejpeg)", strict_jpeg, data),
        ("open + full decode (Pillow)", lambda d: open_checked(d, strict=False), data),
        ("lossless crop + scrub", lambda pair: cut_opened(*pair), list(zip(opened, files, strict=True))),
        ("tile decode + image checks (once)", lambda cut: audit.inspect_image(cut.data, "t"), cuts),
        (
            "gates (on the decoded pixels)",
            lambda i: sides.evaluate_corpus_tile(
                root, "", cuts[i].data, config, no_sides, opened[i].displayed(), pixels[i]
            ),
            list(range(len(files))),
        ),
        ("halves order", lambda px: halves.check_halves(px[:, : HALF_SIZE[0]], px[:, HALF_SIZE[0] :]), shown),
        (
            "audit half check (on the decoded pixels)",
            lambda i: list(audit.half_findings(pixels[i], shown[i], "t")),
            list(range(len(files))),
        ),
        ("pHash in 4 views (1/8-scale decode)", lambda cut: leakage.phash_views(cut.data), cuts),
        (
            "in-build audit of the written tile (hash)",
            lambda i: audit.audit_tile((str(written), f"t{i}.jpg", str(files[i]), None, checks[i])),
            list(range(len(files))),
        ),
        (
            "(standalone audit of a tile: decodes again)",
            lambda i: audit.audit_tile((str(written), f"t{i}.jpg", str(files[i]), None, None)),
            list(range(len(files))),
        ),
        (
            "whole worker task (all of the above)",
            release.tile_task,
            [
                (
                    str(root),
                    p.relative_to(root).as_posix(),
                    config,
                    no_sides,
                    "t",
                    hashlib.sha256(d).hexdigest(),
                    True,
                )
                for p, d in zip(files, data, strict=True)
            ],
        ),
    ]

    def codec(path: Path) -> None:
        with Image.open(path) as image:
            image.load()
            half = image.crop((0, 0, *HALF_SIZE))
        half.save(io.BytesIO(), format="JPEG", quality=95, subsampling=0)

    lines = [
        f"per composite, one process ({len(files)} composites; each stage against the codec bound "
        "measured just before it, as the machine's load changes):"
    ]
    for name, fn, items in stages:
        bound_now = _best(codec, files)
        ms = _best(fn, items)
        lines.append(
            f"  {name:<46} {ms:7.2f} ms = {ms / bound_now:5.2f}x the codec bound ({bound_now:.2f} ms)"
        )
    return lines


# Linux keeps a process's peak resident memory across fork and exec (getrusage(2), ru_maxrss:
# exec saves the old memory map's high-water mark), so a build started from this process
# would report at least this process's own peak. The build is started by a small launcher
# instead, whose children start from its own few MiB, and which reports the rusage of its
# waited-for descendants (the build and its workers).
_LAUNCHER = """
import json, resource, subprocess, sys
done = subprocess.run(sys.argv[2:], capture_output=True)
sys.stdout.buffer.write(done.stdout)
sys.stderr.buffer.write(done.stderr)
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(sys.argv[1], "w") as f:
    json.dump({"maxrss": usage.ru_maxrss, "cpu": usage.ru_utime + usage.ru_stime}, f)
sys.exit(done.returncode)
"""


def run_build(corpus: Path, out: Path, workers: int) -> tuple[float, int, int, float]:
    """Wall seconds, tiles published, peak RSS (KiB; the largest of the build's processes) and
    CPU seconds (user + system, the build and its workers) of one build in a fresh process."""
    shutil.rmtree(out, ignore_errors=True)
    usage_file = out.with_name(out.name + ".usage.json")
    cmd = [
        sys.executable,
        "-m",
        "builder.cli",
        "build",
        "--corpus",
        str(corpus),
        "--out",
        str(out),
        "--version",
        "1.0.0",
        "--workers",
        str(workers),
    ]
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, str(usage_file), *cmd], capture_output=True, cwd=ROOT
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"build failed: {done.stderr.decode().strip()}")
    usage = json.loads(usage_file.read_text())
    stdout = done.stdout.decode()
    tiles = sum(int(line.split()[2]) for line in stdout.splitlines() if line.strip().startswith("published"))
    return wall, tiles, int(usage["maxrss"]), float(usage["cpu"])


ENGINE_PHASES = (
    "curation (identity decodes on the engine)",
    "cut, gates, pHash on the engine; tiles written",
)


def run_phases(corpus: Path, out: Path, workers: int) -> dict[str, Any]:
    """One build in a fresh process with its phases timed (``benchmarks/_build_phases.py``)."""
    shutil.rmtree(out, ignore_errors=True)
    result = out.with_name(out.name + ".phases.json")
    cmd = [sys.executable, "-m", "benchmarks._build_phases", str(corpus), str(out), str(workers), str(result)]
    done = subprocess.run(cmd, capture_output=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"build failed: {done.stderr.decode().strip()}")
    phases: dict[str, Any] = json.loads(result.read_text())
    return phases


def phase_lines(runs: dict[int, dict[str, Any]]) -> list[str]:
    """Where a build's wall time goes, per phase, for each number of workers; and its serial part."""
    tiles = next(iter(runs.values()))["tiles"]
    names = list(dict.fromkeys(name for run in runs.values() for name in run["phases"]))
    if "workers' start" in names:  # a part of the identity stage: shown under it
        names.remove("workers' start")
        names.insert(names.index(ENGINE_PHASES[0]) + 1, "workers' start")
    head = " | ".join(f"{w} worker(s): wall s / build CPU s" for w in runs)
    lines = [
        f"where the {tiles}-tile build's time goes (each phase's wall time and the build process's CPU):"
    ]
    lines.append(f"  {'phase':52s} {head}")

    def row(name: str, cells: list[tuple[float, float] | None]) -> str:
        shown = [f"{'-':>14s} {'':19s}" if c is None else f"{c[0]:6.2f} / {c[1]:5.2f}{'':19s}" for c in cells]
        return f"  {name:52s} " + " | ".join(shown).rstrip()

    lines.append(row("imports", [tuple(r["imports"]) for r in runs.values()]))
    for name in names:
        label = f"  of which {name} (until the first result)" if name == "workers' start" else name
        lines.append(
            row(label, [tuple(r["phases"][name]) if name in r["phases"] else None for r in runs.values()])
        )
    rest = []
    for r in runs.values():
        counted = [v for k, v in r["phases"].items() if k != "workers' start"]
        rest.append((r["build"][0] - sum(v[0] for v in counted), r["build"][1] - sum(v[1] for v in counted)))
    lines.append(row("rest (staging, metadata.csv, card, stopping workers)", rest))
    lines.append(row("whole build (after the imports)", [tuple(r["build"]) for r in runs.values()]))
    serial: dict[int, float] = {}
    for workers, r in runs.items():
        whole = r["imports"][0] + r["build"][0]
        serial[workers] = whole - sum(r["phases"][k][0] for k in ENGINE_PHASES)
        lines.append(
            f"  {workers} worker(s): {serial[workers]:.2f} s of {whole:.2f} s outside the engine's two "
            f"stages ({serial[workers] / whole:.0%}), in the build process alone"
        )
    if 1 in runs and 2 in runs:
        one = runs[1]["imports"][0] + runs[1]["build"][0]
        stages = one - serial[1]
        start = runs[2]["phases"].get("workers' start", [0.0])[0]
        best, started = one / (serial[1] + stages / 2), one / (serial[1] + start + stages / 2)
        lines.append(
            f"  two workers' best over one with this serial part (Amdahl): {best:.2f}x; "
            f"with the workers' start as well: {started:.2f}x"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tiles", default="1000,10000", help="tile counts of the timed build runs ('' for none)"
    )
    parser.add_argument("--base", type=int, default=200, help="distinct generated composites")
    parser.add_argument("--memory-tiles", type=int, default=0, help="one more build, for its peak memory")
    parser.add_argument("--corpora", type=Path, help="keep and reuse the generated corpora in this folder")
    parser.add_argument("--write", action="store_true", help="write the figures to benchmarks/RESULTS.md")
    args = parser.parse_args()
    sizes = sorted({int(x) for x in args.tiles.split(",") if x.strip()})
    if not sizes and not args.memory_tiles:
        raise SystemExit("nothing to measure: give --tiles or --memory-tiles")
    lines = [
        f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
        f"load average {os.getloadavg()[0]:.1f} at the start"
    ]

    def say(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    with tempfile.TemporaryDirectory(prefix="bench_build_") as tmp:
        tmpdir = Path(tmp)
        store = args.corpora or tmpdir
        store.mkdir(parents=True, exist_ok=True)
        base = base_corpus(tmpdir / "base", args.base)
        reference = sizes or [REFERENCE_TILES]  # a memory-only run compares with a small build
        wanted = reference + ([args.memory_tiles] if args.memory_tiles else [])
        # Measured and made in a child process: decoded composites would otherwise stay in this
        # process's memory (the builds' memory is measured apart from it: see _LAUNCHER).
        spawn = multiprocessing.get_context("spawn")
        bound = 0.0
        with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as child:
            if sizes:
                bound = codec_bound(base)
                say(f"codec bound (1 core): {bound:.1f} tiles/s")
                for line in child.submit(check_costs, base).result():
                    say(line)
                for line in child.submit(stage_costs, base).result():
                    say(line)
                mapped, heap = (_fresh(spawn, half_check_allocators, base, heap) for heap in (False, True))
                say(
                    f"audit half check with every large array mapped afresh (glibc's default threshold, "
                    f"held) {mapped:.2f} ms, with large blocks kept (as the build sets it) {heap:.2f} ms "
                    f"= {heap / mapped:.2f}x"
                )
            corpora = {n: _corpus(child, store, base, n) for n in wanted}
        peaks: dict[int, float] = {}  # tiles: peak MiB of the 2-worker build
        for n in sizes:
            # The smallest builds are short, so the machine's noise weighs most on them: they run
            # ROUNDS times, taking turns with 1 and 2 workers, and the fastest of each counts.
            rounds = ROUNDS if n == sizes[0] else 1
            timed: dict[int, list[tuple[float, int, int, float]]] = {1: [], 2: []}
            for _ in range(rounds):
                for workers in (1, 2):
                    timed[workers].append(run_build(corpora[n], tmpdir / "out", workers))
            one = 0.0
            for workers in (1, 2):
                wall, tiles, rss, cpu = min(timed[workers])
                rss = max(run[2] for run in timed[workers])
                per_core = tiles / wall / workers
                one = one or tiles / wall
                scaling = f", {tiles / wall / one:.2f}x the 1-worker rate" if workers > 1 else ""
                if workers == 2:
                    peaks[tiles] = rss / 1024
                walls = "/".join(f"{run[0]:.0f}" for run in timed[workers])
                said = f"fastest of {rounds}: {walls} s" if rounds > 1 else f"{wall:.0f} s"
                say(
                    f"build {tiles} tiles, {workers} worker(s): {tiles / wall:.1f} tiles/s, "
                    f"{per_core:.1f} tiles/s/core = {per_core / bound:.2f}x codec bound per core{scaling}; "
                    f"CPU {cpu / tiles * 1000:.0f} ms/tile = {tiles / cpu / bound:.2f}x the codec bound's; "
                    f"peak memory {rss / 1024:.0f} MiB ({said})"
                )
            if n == sizes[0]:  # the smallest build, where the fixed part weighs most
                runs = {workers: run_phases(corpora[n], tmpdir / "out", workers) for workers in (1, 2)}
                for line in phase_lines(runs):
                    say(line)
        if args.memory_tiles:
            if not peaks:
                _, tiles, rss, _ = run_build(corpora[REFERENCE_TILES], tmpdir / "out", 2)
                peaks[tiles] = rss / 1024
                say(f"build {tiles} tiles, 2 worker(s), for memory: peak memory {rss / 1024:.0f} MiB")
            wall, tiles, rss, _ = run_build(corpora[args.memory_tiles], tmpdir / "out", 2)
            small = min(peaks)
            growth = (rss / 1024 - peaks[small]) / (tiles - small) * 1000
            say(
                f"build {tiles} tiles, 2 worker(s), for memory: peak memory {rss / 1024:.0f} MiB "
                f"({wall:.0f} s); {growth:.2f} MiB more per 1,000 tiles than the {small}-tile "
                f"2-worker build's {peaks[small]:.0f} MiB"
            )
    say(f"load average {os.getloadavg()[0]:.1f} at the end")
    if args.write:
        if sizes:
            write_section("bench_build", "Build throughput and memory (`benchmarks/bench_build.py`)", lines)
        else:
            write_section(
                "bench_build_memory", "Build peak memory at scale (`benchmarks/bench_build.py`)", lines
            )


if __name__ == "__main__":
    main()
