"""The mail store: Maildir folders under the data folder, one per mailbox, keyed by mailbox id; the
trash that deleted mailboxes wait in; and the purge that empties it after the retention.

Keying by id (not address) means a re-created address never sees an old mailbox's mail. Every path
this module touches is checked to lie directly in the mail root or the trash: whatever an id or a
trash entry says, nothing outside them is ever moved or removed.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from orgmail.config import Settings

log = logging.getLogger("orgmail.store")

# A trash entry is '<UTC time of deletion>.<mailbox id>': its age is in its name, not in an mtime that
# a rename does not change and a backup restore rewrites.
_TRASH_STAMP = "%Y%m%dT%H%M%SZ"
_HOME_NAME = re.compile(r"^mbx_[0-9A-Z]{26}$")
_TRASH_ENTRY = re.compile(r"^(?P<stamp>\d{8}T\d{6}Z)\.(?P<mailbox_id>[A-Za-z0-9_-]+)$")


class MailStore(Protocol):
    def provision(self, mailbox_id: str) -> Path: ...

    def discard(self, mailbox_id: str) -> None: ...

    def retire(self, mailbox_id: str, *, address: str) -> None: ...

    def purge(self, *, now: datetime | None = None) -> list[str]: ...

    def home_ids(self, *, older_than: timedelta) -> list[str]: ...


class MailSessions(Protocol):
    """Whoever serves the mailboxes (Dovecot): told to drop a deleted account's live sessions."""

    def disconnect(self, address: str) -> None: ...


class MaildirStore:
    def __init__(
        self,
        root: Path,
        *,
        trash_root: Path,
        retention: timedelta,
        owner: tuple[int, int] | None = None,
        sessions: MailSessions | None = None,
    ):
        self.root = root.resolve()
        self.trash_root = trash_root.resolve()
        if self.trash_root.is_relative_to(self.root) or self.root.is_relative_to(self.trash_root):
            raise ValueError("the mail trash and the mail root must not contain each other")
        self.retention = retention
        self.owner = owner
        self.sessions = sessions

    @classmethod
    def from_settings(cls, settings: Settings, *, sessions: MailSessions | None = None) -> MaildirStore:
        return cls(
            settings.maildir_root,
            trash_root=settings.mail_trash_root,
            retention=timedelta(days=settings.mailbox_retention_days),
            owner=(settings.mail_uid, settings.mail_gid),
            sessions=sessions,
        )

    def home(self, mailbox_id: str) -> Path:
        path = (self.root / mailbox_id).resolve()
        # Never touch anything outside the store, whatever the id says (or a symlink points to).
        if path.parent != self.root:
            raise ValueError(f"mailbox id {mailbox_id!r} escapes the mail store")
        return path

    def provision(self, mailbox_id: str) -> Path:
        """Make the home and its Maildir, owned by the mail user Dovecot runs as, private to it."""
        home = self.home(mailbox_id)
        self.root.mkdir(parents=True, exist_ok=True)
        made = [home, home / "Maildir", *(home / "Maildir" / sub for sub in ("cur", "new", "tmp"))]
        for path in made:
            path.mkdir(mode=0o700, exist_ok=True)
            if self.owner is not None:
                os.chown(path, *self.owner)
        return home / "Maildir"

    def discard(self, mailbox_id: str) -> None:
        """Undo a provision whose mailbox was never created: nothing to keep, so no trash."""
        shutil.rmtree(self.home(mailbox_id), ignore_errors=True)

    def retire(self, mailbox_id: str, *, address: str) -> None:
        """Disconnect the account's live sessions, then move its home to the trash.

        The sessions go first: an IMAP session still open on the old home could write into it after
        the move. With a retention of 0 the trashed home is purged at once.
        """
        home = self.home(mailbox_id)
        if self.sessions is not None and address:
            self.sessions.disconnect(address)
        if not home.exists():
            return
        self.trash_root.mkdir(parents=True, exist_ok=True)
        entry = self.trash_root / f"{datetime.now(UTC).strftime(_TRASH_STAMP)}.{mailbox_id}"
        # One rename: the home vanishes whole, even if purging it later takes a while.
        os.rename(home, entry)
        log.info("mailbox %s moved to the trash", mailbox_id)
        if self.retention <= timedelta(0):
            self.purge()

    def home_ids(self, *, older_than: timedelta) -> list[str]:
        """Ids of the live homes last changed before `older_than` ago (young ones may be mid-create)."""
        if not self.root.is_dir():
            return []
        cutoff = datetime.now(UTC).timestamp() - older_than.total_seconds()
        return [
            entry.name
            for entry in self.root.iterdir()
            if _HOME_NAME.match(entry.name)
            and entry.is_dir()
            and not entry.is_symlink()
            and entry.stat().st_mtime < cutoff
        ]

    def trashed(self) -> dict[str, Path]:
        """Mailbox id -> its trash entry."""
        if not self.trash_root.is_dir():
            return {}
        entries = {}
        for entry in self.trash_root.iterdir():
            match = _TRASH_ENTRY.match(entry.name)
            if match:
                entries[match["mailbox_id"]] = entry
        return entries

    def purge(self, *, now: datetime | None = None) -> list[str]:
        """Remove trash entries older than the retention; returns their mailbox ids.

        Entries this store did not name are left alone, and a symlink is unlinked, never followed.
        Several processes may purge at once: an entry another one removed first is not an error.
        """
        now = now or datetime.now(UTC)
        purged = []
        for mailbox_id, entry in sorted(self.trashed().items()):
            match = _TRASH_ENTRY.match(entry.name)
            assert match is not None
            trashed_at = datetime.strptime(match["stamp"], _TRASH_STAMP).replace(tzinfo=UTC)
            if now - trashed_at < self.retention:
                continue
            try:
                if entry.is_symlink() or not entry.is_dir():
                    entry.unlink()
                else:
                    shutil.rmtree(entry)
            except FileNotFoundError:
                continue
            log.info("mailbox %s purged from the trash", mailbox_id)
            purged.append(mailbox_id)
        return purged
