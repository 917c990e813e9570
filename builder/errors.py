"""Errors a user can act on.

Each error subclasses the matching built-in and its message names the file or
value found, what is allowed and the next step. The CLI prints ``str(error)`` on
one line and exits non-zero; a traceback only with ``--debug``.
"""

from __future__ import annotations


class CropmarkError(Exception):
    """Base class of every error the CLI reports as one line."""


class CorpusNotFoundError(CropmarkError, FileNotFoundError):
    """The corpus folder or one of its manifests does not exist."""


class CorpusLayoutError(CropmarkError, ValueError):
    """The corpus exists but is not laid out as a corpus (no manifests, bad names)."""


class SpecialFileError(CropmarkError, OSError):
    """A corpus path holds a FIFO, a device, a socket or a folder where a regular file belongs."""


class FileTooLargeError(CropmarkError, OSError):
    """A file is larger than anything of its kind can be (a size limit of the project)."""


class BuildLockedError(CropmarkError, OSError):
    """Another build is writing the same release right now."""


class ConfigError(CropmarkError, ValueError):
    """A build option has a value that is not allowed."""


class EngineError(CropmarkError, RuntimeError):
    """The engine of the per-tile stage cannot run: Ray is not installed, its cluster cannot
    be reached, its workers run other code, or a task failed more often than it is retried."""


class EmptyReleaseError(CropmarkError, ValueError):
    """Curation and the gates rejected every row: there is nothing to publish."""


class AuditError(CropmarkError, ValueError):
    """The audit found a leak or a malformed release; nothing was published."""

    def __init__(self, release: str, findings: list[str]) -> None:
        self.findings = findings
        shown = "; ".join(findings[:3])
        more = f" (and {len(findings) - 3} more)" if len(findings) > 3 else ""
        super().__init__(
            f"audit refused {release}: {len(findings)} finding(s): {shown}{more}. "
            "Nothing was published; fix the corpus or the builder and build again."
        )


class ReleaseNotFoundError(CropmarkError, FileNotFoundError):
    """A release folder to audit or publish does not exist."""


class ReleaseLayoutError(CropmarkError, ValueError):
    """A release exists but a split, its metadata.csv or its labels are missing or wrong."""


class ModelLoadError(CropmarkError, OSError):
    """A base model, an adapter or a baseline cannot be loaded, or they do not fit together."""


class PolicyError(CropmarkError, ValueError):
    """A layout option would write a field (coordinates, dates, ids) the release's policy forbids."""


class LayoutDataError(CropmarkError, ValueError):
    """A sample cannot be written in the chosen layout (non-finite array, missing image)."""


class PublishError(CropmarkError, RuntimeError):
    """A publish refused by its gate, or stopped by the Hub; the message says what the remote holds."""


class PublishConflictError(PublishError):
    """The remote moved while publishing (HTTP 409/412); nothing was forced."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C while a command wrote somewhere: the message says what was left behind."""
