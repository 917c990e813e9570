"""The layout registry: a layout is added in one place, and everything else follows it.

A layout registered only in :data:`builder.layouts.registry.LAYOUTS` (here a throwaway
TSV layout, monkeypatched in) is offered by the CLI, checked, written, carded, audited by
its own checks and cleaned up after a killed build, with no other module edited.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from builder.cli import main
from builder.errors import PolicyError
from builder.files import CARDS_DIR
from builder.layouts import registry
from builder.layouts.base import AuditContext, LayoutOptions, LayoutSpec, Sample
from builder.layouts.policy import CROPMARK, Policy, require
from builder.release import cards
from builder.release.build import stale_name

NAME = "tsv-dummy"


def _write(
    samples: Sequence[Sample], dest: Path, private: Path, options: LayoutOptions, policy: Policy
) -> dict[str, Any]:
    (dest / "tiles").mkdir()
    (dest / "data").mkdir()
    lines = ["file_name\tsplit\tlabel"]
    for sample in samples:
        shutil.copyfile(sample.path, dest / "tiles" / sample.file_name)
        lines.append(f"{sample.file_name}\t{sample.split}\t{sample.label}")
    (dest / "data" / "tiles.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    splits = sorted({s.split for s in samples})
    return {"splits": {split: {"rows": sum(1 for s in samples if s.split == split)} for split in splits}}


def _checks(context: AuditContext) -> Iterator[str]:
    for rel, digest in sorted(context.digests.items()):
        if rel.startswith("tiles/") and digest not in context.published:
            yield f"{rel}: a tsv-dummy tile the imagefolder audit did not pass"


def _policy_check(options: LayoutOptions, policy: Policy) -> None:
    if options.coords:
        require(policy, "coordinates", "--coords (tsv-dummy)")


DUMMY = LayoutSpec(
    name=NAME,
    top_level=frozenset({"README.md", "LICENSE", "NOTICE.md", "data", "tiles"}),
    options=("shard_mb", "coords"),
    audited="tiles and policy",
    configs=lambda: [
        {"config_name": "default", "data_files": [{"split": "train", "path": "data/tiles.tsv"}]}
    ],
    writer=_write,
    checks=_checks,
    policy_check=_policy_check,
    marks=(("data", ".tsv"),),
)


@pytest.fixture
def dummy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Register the dummy layout, and give it the card section every layout has."""
    monkeypatch.setitem(registry.LAYOUTS, NAME, DUMMY)
    templates = tmp_path / "cards"
    shutil.copytree(CARDS_DIR, templates)
    (templates / "layouts" / f"{NAME}.md.j2").write_text(
        "## Dataset structure\n\nThe tiles are in `tiles/`, listed in `data/tiles.tsv`.\n\n", encoding="utf-8"
    )
    monkeypatch.setattr(cards, "CARDS_DIR", templates)


def _build(corpus: Path, out: Path, *args: str) -> int:
    return main(["build", "--corpus", str(corpus), "--out", str(out), "--version", "1.0.0", *args])


def test_every_registered_layout_is_complete() -> None:
    assert registry.names()[0] == registry.primary().name == "imagefolder"
    assert [layout.name for layout in registry.LAYOUTS.values() if layout.primary] == ["imagefolder"]
    option_names = set(LayoutOptions.__dataclass_fields__)
    for layout in registry.LAYOUTS.values():
        assert (CARDS_DIR / "layouts" / f"{layout.name}.md.j2").is_file(), layout.name
        assert {"README.md", "LICENSE", "NOTICE.md"} <= layout.top_level, layout.name
        assert set(layout.options) <= option_names, layout.name
        assert layout.configs(), layout.name
        # The primary layout is written by the build and audited by the release audit;
        # every other one brings its writer and its own checks.
        assert (layout.writer is None) == (layout.checks is None) == layout.primary, layout.name
    assert registry.readers("fractions") == "sft-jsonl, hdf5"


def test_a_layout_added_to_the_registry_alone_is_offered_checked_and_cleaned_up(
    dummy: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["build", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert NAME in help_text.split("--layout", 1)[1].split("--policy", 1)[0]  # a choice of --layout
    assert f"parquet, {NAME}: largest shard in MiB" in help_text  # it reads --shard-mb
    assert f"hdf5, {NAME}: write coords" in help_text

    registry.check(NAME, LayoutOptions(), CROPMARK)
    with pytest.raises(PolicyError, match="tsv-dummy"):
        registry.check(NAME, LayoutOptions(coords=True), CROPMARK)
    assert cards.layout_configs(NAME) == DUMMY.configs()
    assert stale_name("1.0.0").fullmatch(f".1.0.0.{NAME}.tmp-123")
    assert not stale_name("1.0.0").fullmatch(".1.0.0.other.tmp-123")


def test_a_layout_added_to_the_registry_alone_is_built_carded_and_audited(
    dummy: None, small_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    # Its policy check runs before anything is written.
    assert _build(small_corpus, out, "--layout", NAME, "--coords") == 2
    assert "--coords (tsv-dummy)" in capsys.readouterr().err
    assert not (out / "cropmark-sentinel2" / "1.0.0").exists()

    assert _build(small_corpus, out, "--layout", NAME) == 0
    built = capsys.readouterr().out
    assert f"layout         {NAME} (eval " in built
    release = next(out.glob("*/1.0.0"))
    assert sorted(p.name for p in release.iterdir()) == ["LICENSE", "NOTICE.md", "README.md", "data", "tiles"]
    card = (release / "README.md").read_text(encoding="utf-8")
    assert "path: data/tiles.tsv" in card and "listed in `data/tiles.tsv`" in card
    tiles = sorted((release / "tiles").iterdir())
    assert len((release / "data" / "tiles.tsv").read_text(encoding="utf-8").splitlines()) == len(tiles) + 1

    assert main(["audit", str(release)]) == 0
    assert f"({NAME}): layout, tiles and policy clean" in capsys.readouterr().out

    # Its own checks run in the audit: a tile that is not an audited one is refused by them.
    forged = release / "tiles" / tiles[0].name.replace(tiles[0].name[7:19], "a" * 12)
    forged.write_bytes(tiles[0].read_bytes() + b"\0")
    (release / "extra.txt").write_text("x", encoding="utf-8")
    assert main(["audit", str(release)]) == 1
    found = capsys.readouterr().out
    assert f"tiles/{forged.name}: a tsv-dummy tile the imagefolder audit did not pass" in found
    assert f"extra.txt: not part of a {NAME} release" in found

    # Audited without its private report, it is known by its registered marks alone.
    shutil.move(release.with_name("1.0.0.private"), tmp_path / "hidden.private")
    assert main(["audit", str(release)]) == 1
    found = capsys.readouterr().out
    assert f"no private report: data/tiles.tsv is a file of the {NAME} layout" in found


def test_an_unregistered_layout_is_refused(
    small_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _build(small_corpus, tmp_path / "out", "--layout", NAME) == 2
    assert f"invalid choice: '{NAME}'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
