"""The per-tile stage on Ray: the same release bytes as the local pool, retries of a killed
worker, bounded submission, and one-line errors (builder/engine.py)."""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray

from builder import engine
from builder.cli import main
from builder.errors import EngineError
from builder.release import build as release
from builder.release.build import BuildConfig, BuildResult, build


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def _same(a: BuildResult, b: BuildResult) -> None:
    """Every byte of the release and of the private report is the same."""
    assert _files(a.release) == _files(b.release)
    assert (a.private / "report.json").read_bytes() == (b.private / "report.json").read_bytes()
    assert a.report.release_digest == b.report.release_digest


@pytest.fixture(scope="module")
def local_release(_small_corpus_master: Path, tmp_path_factory: pytest.TempPathFactory) -> BuildResult:
    """The small corpus built by the local engine (one process), the reference bytes."""
    return build(BuildConfig(_small_corpus_master, tmp_path_factory.mktemp("local"), "1.0.0"))


def test_the_command_line_starts_its_own_ray_and_writes_the_same_bytes(
    _small_corpus_master: Path, local_release: BuildResult, tmp_path: Path
) -> None:
    """What a user runs: `cropmark build --engine ray` from outside the repository, without a
    cluster: the build starts a Ray instance on this machine, whose workers import the
    installed package, and shuts it down. (First in this module: no Ray runs in this process.)"""
    assert not ray.is_initialized()
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    out = tmp_path / "out"
    args = ["build", "--corpus", str(_small_corpus_master), "--out", str(out), "--version", "1.0.0"]
    proc = subprocess.run(
        [sys.executable, "-m", "builder.cli", "--quiet", *args, "--engine", "ray"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "audit          passed (0 findings)" in proc.stdout
    final = out / "cropmark-disambiguator-s2" / "1.0.0"
    assert _files(final) == _files(local_release.release)
    assert (release.private_dir(final) / "report.json").read_bytes() == (
        local_release.private / "report.json"
    ).read_bytes()


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A local Ray instance with 2 CPUs (so 2 worker processes run tasks), started by the test."""
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        logging_level="WARNING",
        log_to_driver=False,
        object_store_memory=256 * 1024**2,
    )
    try:
        yield ray.cluster_resources()
    finally:
        ray.shutdown()


def test_ray_build_is_byte_identical_to_the_local_pool(
    ray_cluster: dict[str, Any], _small_corpus_master: Path, local_release: BuildResult, tmp_path: Path
) -> None:
    assert ray_cluster["CPU"] == 2
    on_ray = build(BuildConfig(_small_corpus_master, tmp_path, "1.0.0", engine="ray"))
    _same(on_ray, local_release)
    assert ray.is_initialized()  # a connection the caller opened is the caller's to close


_REAL_TILE_TASK = release.tile_task


def _die_once(marker: Path, task: Any) -> Any:
    """The cut of one tile; then, the first time any worker gets here, that worker kills itself
    (SIGKILL: no Python cleanup, as when the kernel's OOM killer or a lost node ends it)."""
    outcome = _REAL_TILE_TASK(task)
    try:
        fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        return outcome
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable")


def test_a_worker_killed_mid_task_is_retried_and_the_release_is_the_same(
    ray_cluster: dict[str, Any],
    _small_corpus_master: Path,
    local_release: BuildResult,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A Ray worker dies inside a task, after the first tile of its chunk; Ray runs the task
    again (max_retries) and the build publishes the same bytes as the local pool."""
    marker = tmp_path / "killed"  # the test's tmp folder: the workers run on this machine
    # The workers unpickle this function by its module (tests.test_engine): Ray puts the
    # driver's working directory, the repository, on their sys.path.
    monkeypatch.setattr(release, "tile_task", functools.partial(_die_once, marker))
    on_ray = build(BuildConfig(_small_corpus_master, tmp_path / "out", "1.0.0", engine="ray"))
    assert marker.is_file(), "no worker was killed: the test proved nothing"
    pid = int(marker.read_text())
    assert pid != os.getpid()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # that worker is gone; the retry ran elsewhere
    _same(on_ray, local_release)


def _pid_of(x: int) -> tuple[int, int]:
    time.sleep(0.005)  # a chunk lasts long enough that both workers get some
    return x * x, os.getpid()


def test_ray_map_is_ordered_streaming_and_bounded(ray_cluster: dict[str, Any]) -> None:
    with engine.ray_map() as map_:
        results = list(map_(_pid_of, range(200)))
        assert [r[0] for r in results] == [x * x for x in range(200)]
        assert len({pid for _, pid in results}) == 2  # both workers ran chunks
        assert os.getpid() not in {pid for _, pid in results}
        # An endless input: a map that submitted everything before yielding would never return.
        first = next(iter(map_(_pid_of, itertools.count())))
        assert first[0] == 0


def test_local_map_is_ordered_streaming_and_bounded() -> None:
    """The pool's map yields in order, on both workers, and submits only a window of chunks
    ahead: ``Executor.map`` took every item (and held its task, future and result) before it
    yielded the first, so an endless input never returned and the driver's memory grew with
    the tiles."""
    with engine.local_map(2) as map_:
        results = list(map_(_pid_of, range(200)))
        assert [r[0] for r in results] == [x * x for x in range(200)]
        assert len({pid for _, pid in results}) == 2
        assert os.getpid() not in {pid for _, pid in results}
        taken = itertools.count()
        # A long input (Executor.map took all 100,000 before it yielded the first result).
        items = (next(taken) for _ in range(100_000))
        mapped = map_(_pid_of, items)
        assert next(mapped)[0] == 0
        # The first result came back after a window of chunks was submitted, not the input.
        assert next(taken) == 2 * engine.IN_FLIGHT_PER_CPU * engine.CHUNK
        mapped.close()  # the chunks not started are cancelled
        assert [r[0] for r in map_(_pid_of, range(5))] == [0, 1, 4, 9, 16]  # the pool still works


def test_local_map_raises_a_tasks_error_and_cancels_the_rest() -> None:
    with engine.local_map(2) as map_, pytest.raises(EngineError, match=r"^item 20 is bad$"):
        list(map_(_fail, range(64)))


def test_a_worker_killed_mid_build_is_one_line_not_the_pools_traceback() -> None:
    """A worker that ends without returning (here SIGKILL, as the out-of-memory killer sends)
    broke the pool, whose error printed 39 lines of its internals."""
    with (
        engine.local_map(2) as map_,
        pytest.raises(EngineError, match=r"^a worker process .* ended abruptly") as e,
    ):
        list(map_(_die_at_20, range(64)))
    assert "\n" not in str(e.value)
    # Killed between two stages, the next stage's first submit finds the pool broken.
    with (
        engine.local_map(2) as map_,
        pytest.raises(EngineError, match=r"^a worker process .* ended abruptly"),
    ):
        with contextlib.suppress(EngineError):
            list(map_(_die_at_20, range(21)))
        list(map_(_pid_of, range(64)))


def _die_at_20(x: int) -> int:
    if x == 20:
        os.kill(os.getpid(), signal.SIGKILL)
    return x


def _fail(x: int) -> int:
    if x == 20:
        raise EngineError(f"item {x} is bad")
    return x


def test_an_error_in_a_task_is_the_builds_error_not_retried(ray_cluster: dict[str, Any]) -> None:
    with engine.ray_map() as map_, pytest.raises(EngineError, match=r"^item 20 is bad$"):
        list(map_(_fail, range(64)))


def test_a_worker_with_other_code_is_refused(
    ray_cluster: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The workers' builder sources and library versions are hashed in the worker; a driver
    whose digest differs (here: a driver that believes it runs other code) refuses their
    results."""
    monkeypatch.setattr(engine, "code_digest", lambda: "0" * 64)
    with engine.ray_map() as map_, pytest.raises(EngineError, match="other cropmark code or libraries"):
        list(map_(_pid_of, range(4)))


def test_the_digest_covers_the_image_libraries(monkeypatch: pytest.MonkeyPatch) -> None:
    here = engine.code_digest.__wrapped__()
    assert here == engine.code_digest()
    real = engine.metadata.version
    monkeypatch.setattr(engine.metadata, "version", lambda name: "0.0" if name == "pillow" else real(name))
    assert engine.code_digest.__wrapped__() != here


def _always_die(x: int) -> int:
    os.kill(os.getpid(), signal.SIGKILL)
    return x


def test_a_task_whose_worker_always_dies_stops_the_build_in_one_line(ray_cluster: dict[str, Any]) -> None:
    with (
        engine.ray_map() as map_,
        pytest.raises(EngineError, match=r"did not complete \(run up to 4 times\)") as caught,
    ):
        list(map_(_always_die, range(3)))
    assert "\n" not in str(caught.value)


def test_without_ray_installed_the_error_names_the_extra(
    small_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    monkeypatch.setitem(sys.modules, "ray.exceptions", None)
    args = ["build", "--corpus", str(small_corpus), "--out", str(tmp_path), "--version", "1.0.0"]
    assert main([*args, "--engine", "ray"]) == 2
    err = capsys.readouterr().err
    assert err == "error: --engine ray needs Ray, which is not installed: pip install 'cropmark[ray]'\n"
    assert not (tmp_path / "cropmark-disambiguator-s2" / "1.0.0").exists()


def test_without_an_address_the_build_starts_its_own_instance(monkeypatch: pytest.MonkeyPatch) -> None:
    """``address="local"``: Ray's ``address=None`` would join a cluster that `ray start` left
    registered on the machine (someone else's, perhaps) instead of starting one for the build."""
    seen: dict[str, Any] = {}

    def init(**kwargs: Any) -> None:
        seen.update(kwargs)
        raise RuntimeError("not started by this test")

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", init)
    with pytest.raises(EngineError, match="cannot start or reach Ray on this machine"), engine.ray_map():
        pass
    assert seen["address"] == "local"


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _stop_processes_under(folder: str) -> None:
    """Stop the processes of the cluster whose temp dir is ``folder`` (``ray stop`` would stop
    every Ray process of the machine)."""
    mine = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if folder.encode() in (entry / "cmdline").read_bytes() and int(entry.name) != os.getpid():
                    mine.append(int(entry.name))
            except OSError:
                continue
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in mine:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        time.sleep(2)


def test_a_build_joins_a_cluster_started_by_ray_start(
    _small_corpus_master: Path, local_release: BuildResult, tmp_path: Path
) -> None:
    """The README's cluster commands: `ray start --head`, then a build with --ray-address and
    RAY_AUTH_MODE=token writes the local build's bytes and leaves the cluster running; without
    RAY_AUTH_MODE the cluster refuses the build and the one-line error says what to set."""
    import shutil
    import socket
    import tempfile

    ray_bin = Path(sys.executable).with_name("ray")
    temp = tempfile.mkdtemp(prefix="rc", dir="/tmp")  # short: Ray's socket paths live under it
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE")}
    head = [str(ray_bin), "start", "--head", "--num-cpus", "2", "--include-dashboard", "false"]
    start = subprocess.run(
        [*head, "--port", str(port), "--temp-dir", temp, "--disable-usage-stats"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    try:
        assert start.returncode == 0, start.stderr
        address = f"{socket.gethostbyname(socket.gethostname())}:{port}"
        out = tmp_path / "out"
        args = ["--quiet", "build", "--corpus", str(_small_corpus_master), "--out", str(out)]
        cmd = [sys.executable, "-m", "builder.cli", *args, "--engine", "ray", "--ray-address", address]
        refused = subprocess.run(
            [*cmd, "--version", "1.0.0"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600
        )
        assert refused.returncode == 2
        last = refused.stderr.strip().splitlines()[-1]
        assert last.startswith(f"error: cannot start or reach Ray at {address}")
        assert "RAY_AUTH_MODE=token" in last
        joined = subprocess.run(
            [*cmd, "--version", "1.0.1"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={**env, "RAY_AUTH_MODE": "token"},
            timeout=600,
        )
        assert joined.returncode == 0, joined.stderr
        final = out / "cropmark-disambiguator-s2" / "1.0.1"
        reference = {k: v for k, v in _files(local_release.release).items() if k != "README.md"}
        assert {k: v for k, v in _files(final).items() if k != "README.md"} == reference
        host, _, head_port = address.rpartition(":")
        with socket.create_connection((host, int(head_port)), timeout=10):  # still running
            pass
        # Without an address, beside that cluster, the build starts its own instance: joining
        # the cluster without RAY_AUTH_MODE=token would have been refused (above).
        own = [sys.executable, "-m", "builder.cli", *args, "--engine", "ray", "--version", "1.0.2"]
        alone = subprocess.run(own, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
        assert alone.returncode == 0, alone.stderr
    finally:
        _stop_processes_under(temp)
        shutil.rmtree(temp, ignore_errors=True)


def _allocator_set(_: int) -> tuple[int, int]:
    """In a worker: how often keep_large_blocks ran (its cache) and the process id."""
    return engine.keep_large_blocks.cache_info().currsize, os.getpid()


def test_every_worker_keeps_large_blocks_and_a_callers_process_is_left_alone() -> None:
    """The pool's workers set glibc's thresholds when they start (the per-tile arrays stay on
    the heap); the call is honoured here. A one-worker map runs in the caller's process and
    leaves its allocator as it was: the setting would last for the caller's whole life."""
    assert engine.keep_large_blocks() is True  # glibc, Linux: mallopt accepted both settings
    with engine.local_map(2) as map_:
        seen = dict(map_(_allocator_set, range(64)))
    assert set(seen) == {1}
    engine.keep_large_blocks.cache_clear()
    with engine.local_map(1) as map_:
        assert next(iter(map_(_allocator_set, [0])))[0] == 0


def test_cropmark_build_sets_its_own_process_allocator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``cropmark build`` owns its process: with --workers 1 the tiles are cut there (with a pool
    of workers, only the workers set it)."""
    from tests.data.factory import TinyCorpus

    calls: list[str] = []
    real = engine.keep_large_blocks

    def recorded() -> bool:
        calls.append("set")
        return real()

    monkeypatch.setattr(engine, "keep_large_blocks", recorded)
    corpus = TinyCorpus(tmp_path / "corpus").write()
    for workers in ("2", "1"):
        assert (
            main(
                [
                    "--quiet",
                    "build",
                    "--corpus",
                    str(corpus),
                    "--out",
                    str(tmp_path / f"out{workers}"),
                    "--version",
                    "1.0.0",
                    "--workers",
                    workers,
                ]
            )
            == 0
        )
    assert calls == ["set"]  # the one-worker build only: a pool's workers set their own
