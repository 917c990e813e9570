"""``pip install .`` (a wheel, not editable) into a fresh virtual environment outside the
repository, then ``cropmark sample`` and ``cropmark build`` from a folder that is not the
checkout: the card templates and licence texts are package data, and nothing reads the
repository's files at run time.

No download: the wheel is built with this environment's setuptools (``--no-build-isolation``)
and installed with ``--no-deps --no-index``; the fresh environment finds the dependencies
through a ``.pth`` line naming this environment's site-packages (a ``.pth`` line adds a
folder to ``sys.path`` without running the ``.pth`` files in it, so this checkout's editable
install is not seen there).
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv outside the repository with the project's wheel installed; its ``bin``."""
    tmp = tmp_path_factory.mktemp("install")
    # Build from the tracked files only, in a copy: setuptools writes build/ and *.egg-info.
    source = tmp / "source"
    files = _run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], ROOT).stdout.split(
        "\0"
    )
    for rel in filter(None, files):
        if (ROOT / rel).is_file():
            (source / rel).parent.mkdir(parents=True, exist_ok=True)
            (source / rel).write_bytes((ROOT / rel).read_bytes())
    wheels = tmp / "wheels"
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-index",
            "--no-build-isolation",
            "-w",
            str(wheels),
            str(source),
        ],
        tmp,
    )
    (wheel,) = wheels.glob("cropmark-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {
        "builder/_cards/" + p.relative_to(ROOT / "cards").as_posix()
        for p in (ROOT / "cards").rglob("*")
        if p.is_file()
    }
    assert shipped <= names, shipped - names
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "builder").rglob("*.py")}
    assert modules <= names, modules - names

    env_dir = tmp / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], tmp)
    (Path(purelib.stdout.strip()) / "cropmark-test-deps.pth").write_text(
        "\n".join(site.getsitepackages()) + "\n", encoding="utf-8"
    )
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        tmp,
    )
    return env_dir / "bin"


def _env(tmp: Path) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CROPMARK_CARDS_DIR", "VIRTUAL_ENV")
    }
    return {**env, "HF_HOME": str(tmp / "hf"), "HF_HUB_OFFLINE": "1", "PATH": os.environ.get("PATH", "")}


def test_the_installed_wheel_builds_a_release_outside_the_repository(installed: Path, tmp_path: Path) -> None:
    env = _env(tmp_path)
    where = _run(
        [
            str(installed / "python"),
            "-c",
            "import json, builder, builder.release.cards as c; "
            "print(json.dumps([builder.__file__, str(c.CARDS_DIR)]))",
        ],
        tmp_path,
        env,
    )
    module, cards_dir = json.loads(where.stdout)
    assert Path(module).is_relative_to(installed.parent) and Path(cards_dir).is_relative_to(installed.parent)
    assert not Path(cards_dir).is_relative_to(ROOT)

    cropmark = str(installed / "cropmark")
    _run([cropmark, "sample", "corpus", "--small"], tmp_path, env)
    built = _run(
        [cropmark, "build", "--corpus", "corpus", "--out", "out", "--version", "1.0.0"], tmp_path, env
    )
    release = tmp_path / "out" / "cropmark-disambiguator-s2" / "1.0.0"
    assert "audit          passed" in built.stdout
    assert (release / "LICENSE").read_text(encoding="utf-8") == (
        ROOT / "cards" / "licenses" / "CDLA-Permissive-2.0.txt"
    ).read_text(encoding="utf-8")
    assert "Cropmark Disambiguator S2" in (release / "README.md").read_text(encoding="utf-8")
    _run([cropmark, "audit", str(release)], tmp_path, env)
    space = _run([cropmark, "card", "space", "--model-id", "O/m", "--dataset-id", "O/d"], tmp_path, env)
    assert "sdk: gradio" in space.stdout
    version = _run([cropmark, "--version"], tmp_path, env)
    assert version.stdout.strip() == "cropmark 0.1.0"
