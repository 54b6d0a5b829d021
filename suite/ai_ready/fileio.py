"""Writing outputs: atomically (a killed run never leaves a truncated result or report), and when the
system refuses (a full disk, a quota, a read-only or vanished folder) as one :class:`WriteFailed` that
names the file and what it was, which the command line prints as one line (exit 1)."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from ai_ready.errors import InputError


class WriteFailed(OSError):
    """Writing `what` (the result file, the report, ...) to `filename` failed; `kept` says where anything
    that could not be written went instead. An OSError, so callers that handle those still do."""

    def __init__(self, what: str, path: str | os.PathLike[str], cause: OSError, kept: str = "") -> None:
        super().__init__(cause.errno, cause.strerror or str(cause), os.fspath(path))
        self.what = what
        self.kept = kept

    def __str__(self) -> str:
        reason = f"{self.strerror} (errno {self.errno})" if self.errno else str(self.strerror)
        return f"cannot write the {self.what} {self.filename}: {reason}" + (f"; {self.kept}" if self.kept else "")

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle through this constructor (OSError's own would pass errno, strerror, filename to it)."""
        return type(self), (self.what, self.filename, OSError(self.errno, self.strerror), self.kept)


@contextmanager
def write_errors(what: str, path: str | os.PathLike[str]) -> Iterator[None]:
    """Turn an OSError inside into a WriteFailed naming `what` and `path` (the outermost caller's name wins:
    it knows best what the file is for)."""
    try:
        yield
    except OSError as exc:
        raise WriteFailed(what, path, exc, getattr(exc, "kept", "")) from exc


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8",
                      what: str = "output file") -> Path:
    """Write `text` to `path` through a temporary file in the same folder and rename it.

    The rename is atomic on POSIX file systems, so readers see either the old
    file or the complete new one. The temporary file is removed on any error;
    an OSError becomes a WriteFailed naming `what` and `path`.
    """
    target = Path(path)
    with write_errors(what, target):
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            os.fchmod(fd, _mode_for(target))
            with os.fdopen(fd, "w", encoding=encoding) as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
    return target


def _mode_for(target: Path) -> int:
    """Keep an existing file's permissions; a new file gets 0666 less the umask (mkstemp would give 0600)."""
    try:
        return target.stat().st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def ensure_writable_dir(path: Path, option: str = "-o") -> Path:
    """Create the output folder if needed; one clear error (InputError) naming ``option`` when it cannot be used."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise InputError(f"{option} {path}: a file is in the way of this output folder; accepted: a folder path") from None
    except OSError as exc:
        raise InputError(f"{option} {path}: cannot create the output folder ({exc.strerror})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise InputError(f"{option} {path}: the output folder is not writable by this user")
    return path


def check_writable_file(path: Path, option: str) -> None:
    """Refuse now (InputError), before anything is measured, an output file that could not be written at the
    end: a folder in its place, a folder for it that cannot be made (it is made now, as the write would), or
    one that is not writable."""
    if path.is_dir():
        raise InputError(f"{option} {path}: is a folder; accepted: a file path")
    parent = path.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{option} {path}: cannot make the folder '{parent}' ({exc.strerror or exc})") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{option} {path}: cannot write into '{parent}'")
