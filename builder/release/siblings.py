"""A sibling layout written from the audited imagefolder release, with its card and its audit.

:func:`convert` runs after the imagefolder staging passed its audit: it writes the layout
(:mod:`builder.layouts`) into its own hidden temporary folder, renders its dataset card
(:mod:`builder.release.cards`) and audits it (:mod:`builder.layouts.audit`) before the
build puts it in place. Nothing partial is ever left.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from builder.errors import AuditError, ConfigError
from builder.ingest.corpus import Site
from builder.layouts import registry
from builder.layouts.base import LayoutOptions, common_files, samples
from builder.release import cards
from builder.release.audit import audit_sibling
from builder.release.report import AuditResult, BuildReport

if TYPE_CHECKING:  # for the annotation only: the build imports this module
    from builder.release.build import BuildConfig


def convert(
    config: BuildConfig, staged: Path, private: Path, report: BuildReport, sites: dict[str, Site]
) -> tuple[Path, BuildReport]:
    """Write ``config.layout`` from the audited imagefolder ``staged``; audit it; return its folder
    and the report of the converted release.

    The new folder is a hidden temporary sibling that :func:`builder.release.build.build`
    renames into place (or removes, on any error). The returned report is ``report``
    with the new ``layout``, ``layout_summary``, ``data_fingerprint``, ``files`` and
    ``audit``; sidecars and other private outputs go to ``private``.

    Raises:
        CropmarkError: a sample that cannot be written, or an audit finding.
    """
    options: LayoutOptions = config.layout_options or LayoutOptions()
    dest = staged.with_name(f".{config.version}.{config.layout}.tmp-{staged.name.rsplit('-', 1)[-1]}")
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir()
    try:
        items = samples(staged, report.tiles, sites)
        writer = registry.get(config.layout).writer
        if writer is None:
            raise ConfigError(f"layout {config.layout!r} is written by the build itself, not from a release")
        summary = writer(items, dest, private, options, config.policy)
        common_files(staged, dest)
        report = replace(
            report,
            layout=config.layout,
            layout_summary=summary,
            data_fingerprint=cards.data_fingerprint(dest),
        )
        card = cards.dataset_card(report, config.repo_id)
        (dest / "README.md").write_text(card, encoding="utf-8")
        files = {
            p.relative_to(dest).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(dest.rglob("*"))
            if p.is_file()
        }
        report = replace(report, files=files)
        findings = [f"README.md: {problem}" for problem in cards.validate_dataset_card(card, report, dest)]
        findings += audit_sibling(dest, report, private)
        report = replace(report, audit=AuditResult.of(findings))
        if findings:
            raise AuditError(str(dest), findings)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    shutil.rmtree(staged, ignore_errors=True)
    return dest, report
