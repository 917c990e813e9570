"""Where one build's wall time goes: run a build and time its phases in the build process.

    python -m benchmarks._build_phases CORPUS OUT WORKERS RESULT.json

Each phase is a function of the build, wrapped here (the build itself is unchanged): its
wall time and the build process's own CPU time in it. With worker processes the two
differ: the engine's stages (curation's identity decodes, the cut) run in the workers,
the rest in the build process alone, which is what two workers cannot speed up.
``workers' start`` is the wall time from the identity stage's first task to its first
result (the pool's processes start on first use; none with one worker).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PHASES: dict[str, list[float]] = {}  # name: [wall s, build-process CPU s]


def _wrapped() -> tuple[tuple[Any, str, str], ...]:
    """(owner, function, phase): every function the build calls through that owner's namespace.

    Imported here, not at the top: the pool's spawned processes import this module as their
    main module, and should import no more than a build's workers do.
    """
    from builder.quality import sides
    from builder.release import audit, cards, report
    from builder.release import build as release_build

    return (
        (release_build, "read_manifests", "manifests"),
        (release_build, "read_sites", "manifests"),
        (sides, "load_config", "manifests"),
        (release_build, "curate", "curation (identity decodes on the engine)"),
        (release_build, "_write_tiles", "cut, gates, pHash on the engine; tiles written"),
        (release_build, "_site_leakage", "leakage searches"),
        (release_build, "_leakage", "leakage searches"),
        (cards, "validate_dataset_card", "card validation"),
        (audit, "audit_release", "audit of the staged release"),
        (report.BuildReport, "write_json", "report.json"),
        (release_build, "_commit", "commit"),
    )


def _timed(fn: Callable[..., Any], phase: str) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            spent = PHASES.setdefault(phase, [0.0, 0.0])
            spent[0] += time.perf_counter() - wall
            spent[1] += time.process_time() - cpu

    return timed


def _first_result(map_: Callable[..., Any]) -> Callable[..., Any]:
    """The engine's map, noting the wall time to its first result (the first map only)."""

    def mapped(fn: Callable[..., Any], items: Iterable[Any]) -> Iterator[Any]:
        begun = time.perf_counter()
        for i, result in enumerate(map_(fn, items)):
            if i == 0 and "workers' start" not in PHASES:
                PHASES["workers' start"] = [time.perf_counter() - begun, 0.0]
            yield result

    return mapped


def main() -> None:
    corpus, out, workers, result = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
    start, start_cpu = time.perf_counter(), time.process_time()
    wrapped = _wrapped()
    from builder import engine
    from builder.release import build as release_build

    imports = [time.perf_counter() - start, time.process_time() - start_cpu]
    for owner, name, phase in wrapped:
        setattr(owner, name, _timed(getattr(owner, name), phase))
    engine_map = engine.engine_map

    @contextmanager
    def first_result_map(*args: Any, **kwargs: Any) -> Iterator[Any]:
        with engine_map(*args, **kwargs) as map_:
            yield map_ if workers == 1 else _first_result(map_)

    release_build.engine.engine_map = first_result_map
    begun, cpu = time.perf_counter(), time.process_time()
    done = release_build.build(
        release_build.BuildConfig(corpus=corpus, out=out, version="1.0.0", workers=workers)
    )
    total = [time.perf_counter() - begun, time.process_time() - cpu]
    result.write_text(
        json.dumps(
            {
                "tiles": len(done.report.tiles),
                "imports": imports,
                "build": total,
                "phases": PHASES,
            }
        )
    )


if __name__ == "__main__":  # the pool's processes are spawned: they import this module too
    main()
