"""One config loader for gates.json, --policy and the training config: the same refusals for all three."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from builder.config import MAX_CONFIG_BYTES
from builder.errors import ConfigError
from builder.layouts import policy
from builder.model.train import load_config as training_config
from builder.quality import thresholds

LOADERS: dict[str, tuple[Callable[[Path], Any], str, str]] = {
    # loader, the name of a setting it knows with a good value, and the start of its errors
    "gates": (thresholds.load_config, '"max_cloud": 0.2', ""),
    "policy": (policy.load, '"coordinates": true', "policy file: "),
    "training": (training_config, '"lora_r": 8', "training config "),
}

REFUSED: dict[str, tuple[Callable[[Path, str], object], str]] = {
    "a key given twice": (lambda p, good: p.write_text(f"{{{good}, {good}}}"), "is given twice; keep one"),
    "a FIFO": (lambda p, _: os.mkfifo(p), "is a FIFO, not a"),
    "a folder": (lambda p, _: p.mkdir(), "is a folder, not a"),
    "a dangling link": (lambda p, _: p.symlink_to(p.with_name("nowhere")), "is a symbolic link to nothing"),
    "too large": (
        lambda p, good: p.write_text(f"{{{good}}}" + " " * MAX_CONFIG_BYTES),
        "is too large for a config",
    ),
    "not UTF-8": (lambda p, good: p.write_bytes(f'{{{good}, "x\xe9": 1}}'.encode("latin-1")), "is not UTF-8"),
    "deeply nested": (lambda p, _: p.write_text("[" * 100_000 + "]" * 100_000), "nested too deeply to read"),
    "a list": (lambda p, _: p.write_text("[1]"), "list; expected a"),
}


@pytest.mark.parametrize("loader", sorted(LOADERS))
@pytest.mark.parametrize("case", sorted(REFUSED))
def test_every_config_refuses_the_same_files_in_one_line(loader: str, case: str, tmp_path: Path) -> None:
    load, good, prefix = LOADERS[loader]
    make, message = REFUSED[case]
    path = tmp_path / "config.json"
    make(path, good)
    with pytest.raises(ConfigError) as caught:
        load(path)
    error = str(caught.value)
    assert error.startswith(f"{prefix}{path}") and message in error and "\n" not in error, error


@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_every_config_reads_a_good_file_with_a_byte_order_mark(loader: str, tmp_path: Path) -> None:
    load, good, _ = LOADERS[loader]
    path = tmp_path / "config.json"
    path.write_bytes(b"\xef\xbb\xbf" + f"{{{good}}}".encode())
    load(path)  # no error
    assert {"gates": lambda: thresholds.load_config(path).max_cloud == 0.2,
            "policy": lambda: policy.load(path).coordinates is True,
            "training": lambda: training_config(path).lora_r == 8}[loader]()  # fmt: skip


def test_the_training_config_is_yaml_read_safely(tmp_path: Path) -> None:
    path = tmp_path / "lora.yaml"
    path.write_text("lora_r: 4\nlearning_rate: 1.0e-4\n")
    config = training_config(path)
    assert (config.lora_r, config.learning_rate) == (4, 1.0e-4)
    for text, message in (
        ("lora_r: 4\nlora_r: 8\n", "setting 'lora_r' is given twice"),
        ("!!python/object/apply:os.system ['true']\n", "is not YAML/JSON (could not determine a constructor"),
        ("lora_r: [\n", "is not YAML/JSON ("),
        ("lora_rank: 4\n", "unknown setting(s) ['lora_rank']"),
        ("lora_r: '4'\n", "lora_r = '4'; expected int"),
    ):
        path.write_text(text)
        with pytest.raises(ConfigError) as caught:
            training_config(path)
        assert message in str(caught.value) and "\n" not in str(caught.value), caught.value
