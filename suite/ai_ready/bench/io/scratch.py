"""The only place an I/O benchmark writes: a new, uniquely named folder under the user's --path.

Safety rules (this benchmark writes to users' file systems):

* the folder is created fresh (``mkdir``, mode 0700) with a name no one else
  uses, and everything inside is created with ``O_CREAT | O_EXCL | O_NOFOLLOW``
  relative to it, so nothing outside can be reached through a symlink;
* before writing, the planned bytes are checked against a safe share of the
  free space (``InputError``, exit 2, when too much);
* the folder and all it holds are removed on success, on error, on Ctrl-C,
  SIGTERM and SIGHUP (signals are turned into exceptions by ai_ready.stop so
  ``finally`` runs), using ``shutil.rmtree``'s symlink-safe walk;
* a folder whose owner was killed (SIGKILL, a node crash) cannot remove
  itself: :func:`stale_folders` finds such folders by the owner's host and
  process id in their name, for ``bench io`` to report and ``--clean-stale``
  to remove.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Callable

from ai_ready.errors import InputError
from ai_ready.stop import stop_on_signals

PREFIX = "ai-ready-io-"
#: Never plan to use more than this share of the free space.
SAFE_SHARE_OF_FREE = 0.5
CREATE_FLAGS = os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
FILE_MODE = 0o600
#: Attempts, and the pause between them, to remove a scratch folder others may still be writing into.
REMOVE_ATTEMPTS = 20
REMOVE_RETRY_S = 0.25


def check_path(path: Path) -> Path:
    """--path must be an existing, writable folder; one clear error otherwise."""
    if not path.exists():
        raise InputError(f"--path {path} does not exist; give an existing folder on the file system to measure")
    if not path.is_dir():
        raise InputError(f"--path {path} is not a folder")
    if not os.access(path, os.W_OK | os.X_OK):
        raise InputError(f"--path {path} is not writable by this user; give a folder you may write to")
    return path.resolve()


def check_space(path: Path, planned_bytes: int, share: float = SAFE_SHARE_OF_FREE) -> int:
    """Refuse plans that would take more than `share` of the free space; returns the free bytes."""
    free = shutil.disk_usage(path).free
    if planned_bytes > share * free:
        raise InputError(f"the I/O benchmark would write {planned_bytes / 1e9:.2f} GB under {path}, more than "
                         f"{share:.0%} of the {free / 1e9:.2f} GB free; accepted: a smaller --size, "
                         "--checkpoint-gb or --files, or another --path")
    return free


class Scratch:
    """Context manager owning the scratch folder; files are created through it only."""

    def __init__(self, parent: Path, tag: str = "") -> None:
        self.parent = parent
        name = f"{PREFIX}{socket.gethostname()}-{os.getpid()}-{tag}{secrets.token_hex(4)}"
        self.path = parent / name
        self._signals = ExitStack()

    def __enter__(self) -> "Scratch":
        os.mkdir(self.path, 0o700)  # fails if the name exists: it is ours alone
        self._signals.enter_context(stop_on_signals())
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self.remove()
        finally:
            self._signals.close()

    def remove(self) -> None:
        """Remove the folder; retried, because other ranks sharing it may still be finishing a write."""
        for _ in range(REMOVE_ATTEMPTS):
            if not self.path.exists() or self.path.is_symlink():
                return
            shutil.rmtree(self.path, ignore_errors=True)
            if not self.path.exists():
                return
            time.sleep(REMOVE_RETRY_S)
        shutil.rmtree(self.path)  # last try: let the error say what is in the way

    def file(self, name: str, subdir: str | None = None) -> Path:
        """A path inside the scratch folder for a new file (the name may not climb out of it)."""
        if "/" in name or name in ("", ".", ".."):
            raise ValueError(f"scratch file names are plain names, not paths: {name!r}")
        folder = self.subdir(subdir) if subdir else self.path
        return folder / name

    def subdir(self, name: str) -> Path:
        if "/" in name or name in ("", ".", ".."):
            raise ValueError(f"scratch folder names are plain names, not paths: {name!r}")
        folder = self.path / name
        if not folder.is_dir():
            os.mkdir(folder, 0o700)
        if folder.is_symlink():
            raise RuntimeError(f"{folder} became a symlink; refusing to follow it")
        return folder

    def create(self, name: str, subdir: str | None = None, extra_flags: int = 0) -> int:
        """Open a new file for writing; never follows a symlink, never reuses an existing name."""
        return os.open(self.file(name, subdir), CREATE_FLAGS | extra_flags, FILE_MODE)


class JoinedScratch(Scratch):
    """Rank 0's scratch folder, seen from another rank on a shared file system: files go there, and
    rank 0 (which created it) removes it; this rank removes only what it created itself."""

    def __init__(self, path: Path) -> None:
        super().__init__(path.parent)
        self.path = path

    def __enter__(self) -> "JoinedScratch":
        if not self.path.is_dir() or self.path.is_symlink():
            raise FileNotFoundError(self.path)
        self._signals.enter_context(stop_on_signals())
        return self

    def remove(self) -> None:
        """Leave the folder to rank 0; its own files go with rank 0's removal of the whole folder."""


#: A scratch folder's name: PREFIX, the owner's host and process id, optional tags ("rank1-", "train-r0-"),
#: 8 hex digits. Tags are never all digits, so the process id is the last all-digit part before them.
_NAME = re.compile(rf"^{re.escape(PREFIX)}(?P<host>.+)-(?P<pid>\d+)-(?:[A-Za-z0-9_]*[A-Za-z_][A-Za-z0-9_]*-)*"
                   r"[0-9a-f]{8}$")


@dataclass(frozen=True)
class StaleFolder:
    """A scratch folder whose owning process on this host is gone."""

    path: Path
    pid: int
    nbytes: int


def stale_folders(parent: Path, host: str | None = None) -> list[StaleFolder]:
    """Scratch folders under `parent` left by runs on this host whose process no longer exists (killed with
    SIGKILL, or the node went down). Folders of other hosts are never judged: on a shared file system their
    owners may be running."""
    host = host or socket.gethostname()
    found = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return []
    for entry in entries:
        match = _NAME.match(entry.name)
        if not match or match["host"] != host or not entry.is_dir(follow_symlinks=False):
            continue
        pid = int(match["pid"])
        if _owner_alive(pid, entry.stat(follow_symlinks=False).st_mtime):
            continue
        found.append(StaleFolder(Path(entry.path), pid, _tree_bytes(Path(entry.path))))
    return sorted(found, key=lambda f: f.path.name)


def _owner_alive(pid: int, folder_mtime: float) -> bool:
    """Whether process `pid` may still own a folder last changed at `folder_mtime` (a process started after
    that is a later one that reused the number)."""
    import psutil

    try:
        return psutil.Process(pid).create_time() <= folder_mtime + 1.0
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return True  # exists, but we may not look at it: assume it is the owner


def _tree_bytes(folder: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(folder):  # never follows symlinks
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


def remove_stale(folder: StaleFolder) -> None:
    """Remove a stale folder (symlink-safe walk); the name is checked again so nothing else is touched."""
    if not _NAME.match(folder.path.name) or folder.path.is_symlink():
        raise ValueError(f"not an ai-ready scratch folder: {folder.path}")
    shutil.rmtree(folder.path)


def announce_stale(root: Path, clean: bool, note: Callable[[str], None]) -> None:
    """Say what killed runs left under `root` and, with `clean` (--clean-stale), remove it; never silently."""
    stale = stale_folders(root)
    if not stale:
        return
    total = sum(f.nbytes for f in stale)
    names = ", ".join(f.path.name for f in stale[:5]) + (f" and {len(stale) - 5} more" if len(stale) > 5 else "")
    if not clean:
        note(f"ai-ready: warning: {len(stale)} scratch folder(s) of killed runs on this host hold "
             f"{total / 1e6:,.1f} MB under {root} ({names}); remove them with "
             f"`ai-ready bench io --path {root} --clean-stale`")
        return
    for folder in stale:
        remove_stale(folder)
    note(f"ai-ready: removed {len(stale)} scratch folder(s) of killed runs ({total / 1e6:,.1f} MB) under {root}: "
         f"{names}")
