"""``load_dataset(<release folder>)`` shows what is on disk, in a fresh and in a reused cache.

Every load runs the README's own command (``python -c "from datasets import load_dataset; ..."``)
in a fresh process whose Hugging Face home is the test's, then a second process with the same
call that lists the rows it got, so that names and labels are compared with ``metadata.csv``.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from builder.release import cards
from builder.release.build import BuildConfig, build
from builder.testing.sample import SMALL_PLAN, generate

ROOT = Path(__file__).resolve().parent.parent
README_LOAD = re.compile(
    r'^python -c "(from datasets import load_dataset; print\(load_dataset\(\'([^\']+)\'\)\))"$', re.M
)
ROWS = """
import json, sys
from datasets import Image, load_dataset
ds = load_dataset(sys.argv[1])
print("ROWS " + json.dumps({
    split: sorted(
        (image["path"], ds[split].features["label"].int2str(label))
        for image, label in zip(ds[split].cast_column("image", Image(decode=False))["image"], ds[split]["label"])
    )
    for split in ds
}))
"""


def _readme_command() -> tuple[str, str]:
    """The load command the README gives for a local build, and the release path it loads."""
    match = README_LOAD.search((ROOT / "README.md").read_text(encoding="utf-8"))
    assert match, 'README.md gives no `python -c "from datasets import load_dataset; ..."` line'
    return match[1], match[2]


def _env(hf_home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE"))}
    return {**env, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}


def _load(cwd: Path, hf_home: Path) -> dict[str, list[tuple[str, str]]]:
    """Run the README's command in ``cwd``, then (same process) list the rows the same call gives."""
    code, rel = _readme_command()
    shown = subprocess.run(
        [sys.executable, "-c", code + "\n" + ROWS, rel],
        cwd=cwd,
        env=_env(hf_home),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert shown.returncode == 0, shown.stderr
    listed: dict[str, list[list[str]]] = json.loads(shown.stdout.split("ROWS ", 1)[1])
    counts = {
        s: int(n)
        for s, n in re.findall(r"(\w+): Dataset\(\{\s+features: \[[^\]]*\],\s+num_rows: (\d+)", shown.stdout)
    }
    assert counts == {split: len(items) for split, items in listed.items()}, shown.stdout
    return {
        split: [(Path(p).resolve().as_posix(), label) for p, label in items]
        for split, items in listed.items()
    }


def _on_disk(release: Path) -> dict[str, list[tuple[str, str]]]:
    out = {}
    for split in ("train", "eval"):
        folder = release / "data" / split
        with (folder / "metadata.csv").open(encoding="utf-8", newline="") as handle:
            out[split] = sorted(
                ((folder / r["file_name"]).resolve().as_posix(), r["label"]) for r in csv.DictReader(handle)
            )
    return out


def _build(corpus: Path, out: Path) -> Path:
    return build(BuildConfig(corpus, out, "1.0.0")).release


@pytest.fixture(scope="module")
def corpora(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three small corpora: the small plan (seeds 7 and 9: same counts, other tiles) and a smaller one."""
    root = tmp_path_factory.mktemp("corpora")
    fewer = dataclasses.replace(SMALL_PLAN, unique_train=14, unique_eval=5)
    made = {"a": (7, SMALL_PLAN), "same_counts": (9, SMALL_PLAN), "fewer": (8, fewer)}
    for name, (seed, plan) in made.items():
        generate(root / name, seed=seed, plan=plan)
    return {name: root / name for name in made}


def test_rebuild_in_place_is_what_load_dataset_shows(corpora: dict[str, Path], tmp_path: Path) -> None:
    _, rel = _readme_command()
    work, cache = tmp_path / "work", tmp_path / "hf-reused"
    release = work / rel
    assert _build(corpora["a"], work / "build") == release
    first = _load(work, cache)
    assert first == _on_disk(release)

    # Fewer tiles, then other tiles with the very same counts, each into the same folder.
    for corpus in ("fewer", "same_counts"):
        assert _build(corpora[corpus], work / "build") == release
        again = _load(work, cache)
        assert again == _on_disk(release), corpus
        assert again != first
        assert _load(work, tmp_path / f"hf-fresh-{corpus}") == again
        first = again


def test_two_releases_of_one_version_at_two_paths(corpora: dict[str, Path], tmp_path: Path) -> None:
    _, rel = _readme_command()
    cache = tmp_path / "hf-reused"
    one, two = tmp_path / "one", tmp_path / "two"
    _build(corpora["a"], one / "build")
    _build(corpora["fewer"], two / "build")
    assert _load(one, cache) == _on_disk(one / rel)
    assert _load(two, cache) == _on_disk(two / rel)
    assert _load(one, cache) == _on_disk(one / rel)


def test_the_card_names_the_data_it_describes(corpora: dict[str, Path], tmp_path: Path) -> None:
    result = build(BuildConfig(corpora["a"], tmp_path / "build", "1.0.0"))
    card = (result.release / "README.md").read_text(encoding="utf-8")
    assert cards.card_fingerprints(card) == [cards.data_fingerprint(result.release)]
    assert re.fullmatch("[a-p]{64}", cards.card_fingerprints(card)[0] or "")
    assert cards.validate_dataset_card(card, result.report, result.release) == []

    # A README copied from another build of the same version is refused: datasets would reuse
    # the cache of the other build's data.
    other = build(BuildConfig(corpora["fewer"], tmp_path / "other", "1.0.0")).release
    shutil.copyfile(other / "README.md", result.release / "README.md")
    problems = cards.validate_dataset_card(
        (other / "README.md").read_text(encoding="utf-8"), result.report, result.release
    )
    assert any("configs description names data files" in p for p in problems), problems
