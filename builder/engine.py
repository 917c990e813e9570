"""The engine that runs a build's per-tile stage: the local process pool or a Ray cluster.

The per-tile work (curation's identity decode, the cut, the gates, the hashes, a tile's
audit checks) is a pure function of its task: its input names a file under the corpus and
its result is returned, never written by the worker. An engine is therefore one small
interface, an ordered and streaming ``map``::

    with engine_map("local", workers=2) as map_:
        results = list(map_(fn, items))  # in the order of items, produced as they come

- ``local``: a ``ProcessPoolExecutor`` of ``workers`` spawned processes (or plain ``map``
  with one), chunks of :data:`CHUNK` items, at most :data:`IN_FLIGHT_PER_CPU` chunks per
  worker submitted at once (``Executor.map`` submits every item before it yields one, so
  the driver held every task, its future and its result at once). Workers die with the build.
- ``ray``: the same chunks as Ray tasks (https://docs.ray.io/en/latest/ray-core/tasks.html),
  at most :data:`IN_FLIGHT_PER_CPU` chunks per CPU of the cluster submitted at once (the
  driver's memory stays flat in the number of items), each retried up to :data:`RETRIES`
  times when its worker process or node dies (``max_retries``; an exception the function
  raises is not retried, it is the build's error). The results come back to the driver,
  which writes the release.

Whichever engine runs, the results are the same values in the same order, so the release is
byte-identical. Curation, the leakage search, the cards and the audit stay in the driver.

What a Ray worker needs: the ``cropmark`` package installed (the same code and image
libraries as the driver's, checked: every chunk's result carries a digest of the worker's
``builder`` sources and library versions) and the
corpus at the same path as on the driver (the tasks name files by the corpus's absolute
path). No worker keeps state between tasks.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import importlib
import multiprocessing
import os
import signal
import socket
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from importlib import metadata
from itertools import islice
from pathlib import Path
from typing import Any

from builder.errors import EngineError

Mapper = Callable[[Callable[[Any], Any], Iterable[Any]], Iterator[Any]]

ENGINES = ("local", "ray")
CHUNK = 16  # items per task: a tile costs tens of milliseconds, a task's overhead about one
IN_FLIGHT_PER_CPU = 2  # chunks submitted per CPU (a pool worker, a cluster CPU): one running, one queued
RETRIES = 3  # Ray's max_retries: reruns of a task whose worker process or node died
CONNECT_TIMEOUT_S = 10.0
RAY_EXTRA = "pip install 'cropmark[ray]'"

_PR_SET_PDEATHSIG = 1  # prctl(2): signal sent to this process when its parent thread dies
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt(3) parameters (glibc's malloc.h)
# glibc's largest allowed mmap threshold on 64-bit systems (DEFAULT_MMAP_THRESHOLD_MAX,
# 4 MiB * sizeof(long)): above every temporary array of a tile's work.
_LARGE_BLOCK = 32 << 20


@functools.cache
def keep_large_blocks() -> bool:
    """Have glibc's malloc serve a tile's large temporaries from its heap and keep freed ones
    for the next tile (mallopt(3): ``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD``).

    By default glibc maps every block of 128 KiB or more afresh from the kernel and unmaps
    it when it is freed, raising that threshold by itself only after freeing a larger mapped
    block; so whether a tile's arrays (0.4-6 MB each) cost fresh zeroed pages on every
    call depended on what the process happened to do before (``benchmarks/bench_build.py``
    prints the audit's half check both ways). Called once in every worker process and by
    ``cropmark build --workers 1`` in its own process; a program that builds through the API with one
    worker (the tiles cut in its own process) may call it itself: it lasts for the process's
    life. Returns whether it was set (glibc only; elsewhere nothing changes).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _LARGE_BLOCK) and mallopt(_M_TRIM_THRESHOLD, 2 * _LARGE_BLOCK))


def _die_with_parent(parent: int) -> None:
    """Worker initializer: the kernel kills this worker (SIGKILL) when the build dies, and
    its allocator keeps large blocks (:func:`keep_large_blocks`).

    ``PR_SET_PDEATHSIG`` fires when the thread that started the worker exits; the
    executor starts its workers from the thread that submits work, the build's main
    thread. A parent that died before the call is caught by the ``getppid`` check.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)
    keep_large_blocks()


def _without_interrupts(start: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``start(*args, **kwargs)`` with SIGINT blocked in this thread, so that the processes it
    spawns start with SIGINT blocked for their whole life (a blocked mask survives fork and
    exec, and Python does not unblock it).

    Ctrl-C reaches every process of the terminal's foreground group: a worker still importing
    printed its own KeyboardInterrupt traceback, dozens of lines around the build's one line.
    The build's process handles the interrupt (it cancels the work and the workers die with
    it); a SIGINT that comes in the meantime is delivered here when the mask is restored.
    A pool spawns its processes only from ``submit`` (with the spawn context, from any
    ``submit`` that finds no idle worker), so every ``submit`` goes through here.
    """
    if threading.current_thread() is not threading.main_thread():
        return start(*args, **kwargs)  # signals are delivered to the main thread only
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        return start(*args, **kwargs)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextmanager
def local_map(workers: int) -> Iterator[Mapper]:
    """A ``map`` over ``workers`` processes, in order and streaming (or plain ``map``).

    Workers die with the build and start with SIGINT blocked (the build answers Ctrl-C); an
    error or an interrupt cancels the work not yet started, and each worker finishes only
    the chunk it holds.
    """
    if workers == 1:
        yield map  # in the caller's process, whose allocator is its own (the CLI sets it)
        return
    # spawn: a clean interpreter per worker, safe whatever threads the caller runs.
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_die_with_parent, initargs=(os.getpid(),)
    )
    window = workers * IN_FLIGHT_PER_CPU

    def map_(fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        pending: deque[Future[list[Any]]] = deque()
        try:
            for chunk in _chunks(items, CHUNK):
                # A pool spawns its processes from ``submit``: SIGINT stays blocked there.
                pending.append(_without_interrupts(pool.submit, run_items, fn, chunk))
                if len(pending) >= window:
                    yield from pending.popleft().result()
            while pending:
                yield from pending.popleft().result()
        except BrokenProcessPool:
            # A worker ended without returning (SIGKILL, the kernel's out-of-memory killer, a
            # crash in a C library): the pool is unusable, from a result or from the next
            # submit, and its own error is a traceback's worth of the pool's internals.
            raise EngineError(
                "a worker process of the per-tile stage ended abruptly (killed, out of memory, or a "
                "crash in a library); nothing was published: build again, with fewer --workers if "
                "memory is short"
            ) from None
        finally:
            for future in pending:  # an error, an interrupt or an abandoned map: drop the rest
                future.cancel()

    try:
        yield map_
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


# The distributions whose versions shape a tile's bytes or verdicts (decoders, encoders, the
# cloud detector): a worker must run the same ones as the driver.
_LIBRARIES = ("pillow", "numpy", "jpeglib", "simplejpeg", "rasterio", "s2cloudless", "lightgbm", "scipy")


@functools.cache
def code_digest() -> str:
    """SHA-256 over the paths and bytes of this installation's ``builder/**/*.py`` and the
    versions of :data:`_LIBRARIES`.

    A driver and a worker with the same digest run the same per-tile code.
    """
    package = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    for name in _LIBRARIES:
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = "absent"
        digest.update(f"{name}=={installed}\0".encode())
    return digest.hexdigest()


def run_items(fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
    """One chunk of the local pool: ``fn`` over ``items`` in order."""
    return [fn(item) for item in items]


def run_chunk(fn: Callable[[Any], Any], items: Sequence[Any]) -> tuple[str, list[Any]]:
    """One Ray task: ``fn`` over ``items`` in order, with the digest of the code that ran it."""
    keep_large_blocks()
    return code_digest(), run_items(fn, items)


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _check_reachable(address: str) -> None:
    """Refuse in seconds a ``HOST:PORT`` (or ``ray://HOST:PORT``) nothing listens on.

    ``ray.init`` would wait minutes for such an address before it fails. ``auto``,
    ``local`` and other forms are left to Ray.

    Raises:
        EngineError: the port cannot be connected to.
    """
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit() or not host:
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise EngineError(
            f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}); start it "
            "(`ray start --head` on its head node) or give its address with --ray-address or RAY_ADDRESS"
        ) from None


def _import_ray() -> tuple[Any, Any]:
    """The ``ray`` module and its ``ray.exceptions`` (an optional dependency: the ``ray`` extra)."""
    try:
        return importlib.import_module("ray"), importlib.import_module("ray.exceptions")
    except ImportError:
        raise EngineError(f"--engine ray needs Ray, which is not installed: {RAY_EXTRA}") from None


@contextmanager
def ray_map(address: str | None = None) -> Iterator[Mapper]:
    """A ``map`` whose chunks run as Ray tasks, in order and streaming.

    Args:
        address: the cluster to connect to (``HOST:PORT``, ``ray://HOST:PORT`` or ``auto``);
            ``None``: ``RAY_ADDRESS`` if set, else a Ray instance started on this machine for
            this build. If this process already called ``ray.init``, that connection is used
            (and left open).

    Raises:
        EngineError: Ray is not installed, the cluster cannot be reached, a worker runs other
            code than the driver, or a task's worker died more than :data:`RETRIES` times.
    """
    ray, errors = _import_ray()
    started = False
    if not ray.is_initialized():
        target = address or os.environ.get("RAY_ADDRESS") or None
        if target is not None:
            _check_reachable(target)
        try:
            ray.init(
                # "local": a new instance for this build, even where `ray start` left a cluster
                # registered on this machine (address=None would join that one).
                address=target or "local",
                include_dashboard=False,
                logging_level="WARNING",
                log_to_driver=False,
                configure_logging=False,
            )
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"at {target}" if target else "on this machine"
            hint = ""
            if target and "RAY_AUTH_MODE" not in os.environ:
                # Ray 2.60's `ray start` turns token authentication on; a client joins such a
                # cluster only with RAY_AUTH_MODE=token and the cluster's token.
                hint = (
                    "; a cluster started by `ray start` checks a token: set RAY_AUTH_MODE=token "
                    "and give its token (~/.ray/auth_token from the head node, or RAY_AUTH_TOKEN)"
                )
            raise EngineError(
                f"cannot start or reach Ray {where}: {' '.join(str(exc).split())}{hint}"
            ) from None
        started = True
    try:
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        task = ray.remote(max_retries=RETRIES, retry_exceptions=False)(run_chunk)
        driver = code_digest()

        def map_(fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
            pending: deque[Any] = deque()
            chunks = _chunks(items, CHUNK)
            try:
                for chunk in chunks:
                    pending.append(task.remote(fn, chunk))
                    if len(pending) >= cpus * IN_FLIGHT_PER_CPU:
                        yield from _result(pending.popleft())
                while pending:
                    yield from _result(pending.popleft())
            finally:
                for ref in pending:  # an error or an interrupt: drop the work not yet returned
                    ray.cancel(ref, force=True)

        def _result(ref: Any) -> list[Any]:
            try:
                digest, results = ray.get(ref)
            except errors.RayTaskError as exc:  # the function's own error, raised as it was
                cause = exc.cause
                raise (cause if isinstance(cause, Exception) else exc) from None
            except errors.RayError as exc:
                raise EngineError(
                    f"a Ray task of the per-tile stage did not complete (run up to {RETRIES + 1} times): "
                    f"{' '.join(str(exc).split())[:300]}"
                ) from None
            if digest != driver:
                raise EngineError(
                    "a Ray worker runs other cropmark code or libraries than this build (digest "
                    f"{digest[:12]} there, {driver[:12]} here): install the same versions on every node "
                    "(pip install -c constraints.txt)"
                )
            return list(results)

        yield map_
    finally:
        if started:
            ray.shutdown()


@contextmanager
def engine_map(engine: str, workers: int = 1, address: str | None = None) -> Iterator[Mapper]:
    """The ordered, streaming ``map`` of ``engine`` (one of :data:`ENGINES`).

    Args:
        engine: ``local`` (a pool of ``workers`` processes) or ``ray`` (:func:`ray_map`).
        workers: processes of the local pool (1 = in this process); Ray uses its cluster's CPUs.
        address: the Ray cluster (see :func:`ray_map`); only with ``ray``.

    Raises:
        EngineError: an unknown engine, or :func:`ray_map`'s errors.
    """
    if engine == "local":
        with local_map(workers) as map_:
            yield map_
    elif engine == "ray":
        with ray_map(address) as map_:
            yield map_
    else:
        raise EngineError(f"engine {engine!r}: use one of {', '.join(ENGINES)}")
