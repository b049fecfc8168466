"""Errors of the journal and snapshot files: one base class, each kind with a stable `code`.

Callers (the service, the CLI, replay tools) switch on `code`, never on the message text.
"""

from __future__ import annotations

from pathlib import Path


class JournalError(Exception):
    """Base of every journal and snapshot error."""

    code = "journal_error"


class NotAJournal(JournalError):
    """The path is not a journal directory, or a segment file is not one of ours."""

    code = "not_a_journal"


class JournalLocked(JournalError):
    """Another writer holds the directory; nothing was read or written."""

    code = "journal_locked"

    def __init__(self, directory: Path, holder_pid: int | None) -> None:
        self.directory = directory
        self.holder_pid = holder_pid
        held_by = f" by pid {holder_pid}" if holder_pid is not None else ""
        super().__init__(f"journal {directory} is locked{held_by}: only one writer may open it")


class CorruptJournal(JournalError):
    """Damage that is not a torn tail: refused, never skipped, so no fact is silently lost."""

    code = "journal_corrupt"

    def __init__(self, segment: Path, offset: int, reason: str) -> None:
        self.segment = segment
        self.offset = offset
        self.reason = reason
        super().__init__(f"corrupt journal segment {segment} at byte {offset}: {reason}")


class JournalClosed(JournalError):
    code = "journal_closed"


class JournalIOError(JournalError):
    """A write or fsync failed; the writer stops (after a failed fsync the page cache cannot be trusted)."""

    code = "journal_io"


class FrameTooLarge(JournalError):
    code = "frame_too_large"


class CorruptSnapshot(JournalError):
    code = "snapshot_corrupt"
