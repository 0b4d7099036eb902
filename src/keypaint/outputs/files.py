"""Writing a finished file: atomically, never over an existing one, with the usual permissions.

Every picture keypaint writes goes through here: the bytes go to a temporary file beside the target,
are synced, then hard-linked to a name that must not exist yet (the check and the naming are one step).
The temporary file is created with mode 0666, so the process's umask gives it the permissions any
other program's files get (0644 under the common umask 022), not `tempfile.mkstemp`'s private 0600.
Numbered names follow A1111 (`00000-<seed>.png`); concurrent savers get distinct numbers (`_claim_name`).
"""

from __future__ import annotations

import errno
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path

from keypaint.errors import OutputError

_NUMBERED = re.compile(r"(\d+)(?:-|$)")  # A1111: the number is the file stem up to the first "-"
_UNSAFE = re.compile(r"[^\w.+=@-]+")
_MAX_ATTEMPTS = 10_000
# errors with which a file system says it has no hard links (FAT, some network shares)
_NO_HARDLINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.ENOSYS}
_USUAL_MODE = 0o666  # what open() asks for; the umask takes away the rest


def write_numbered(data: bytes, folder: Path, *, stem_hint: str = "", ext: str = "png") -> Path:
    """Write `data` as `folder/NNNNN-<stem_hint>.<ext>`, NNNNN one more than the highest number there.

    Safe against other processes saving into the same folder at the same time: every caller gets its own
    file, and no existing file is ever replaced.
    """
    suffix = _UNSAFE.sub("_", stem_hint).strip("._")[:80]
    return _write(data, folder, lambda tmp: _claim_name(tmp, folder, suffix, ext), f".{ext}.tmp")


def write_new(data: bytes, path: Path) -> Path:
    """Write `data` as exactly `path`; `OutputError` if something is there already (never replaced)."""
    path = Path(path)

    def name(tmp: Path) -> Path:
        try:
            _link_or_reserve(tmp, path)
        except FileExistsError:
            raise OutputError(f"{path} exists; keypaint never overwrites a file") from None
        return path

    return _write(data, path.parent, name, f".{path.name}.tmp")


def next_number(folder: Path) -> int:
    """1 + the highest A1111-style file number in `folder` (0 for an empty folder)."""
    return max(_numbers(folder), default=-1) + 1


def _write(data: bytes, folder: Path, name: Callable[[Path], Path], suffix: str) -> Path:
    """Temp file in `folder`, synced, then `name(tmp)` gives it its final name; the temp file never stays."""
    tmp: Path | None = None
    try:
        fd, tmp = _temp_file(folder, suffix)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        final = name(tmp)
        _sync_dir(folder)
        return final
    except OSError as exc:
        raise OutputError(f"cannot save a picture in {folder}: {exc.strerror or exc}") from None
    finally:
        if tmp is not None and os.path.lexists(tmp):
            os.unlink(tmp)


def _temp_file(folder: Path, suffix: str) -> tuple[int, Path]:
    """A new, exclusively created file in `folder` with the usual permissions (0666 minus the umask)."""
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        path = folder / f".keypaint-{secrets.token_hex(8)}{suffix}"
        try:
            return os.open(path, flags, _USUAL_MODE), path
        except FileExistsError:
            continue
    raise OutputError(f"cannot create a temporary file in {folder}")


def _numbers(folder: Path) -> set[int]:
    with os.scandir(folder) as entries:
        matches = (_NUMBERED.match(os.path.splitext(entry.name)[0]) for entry in entries)
        return {int(match.group(1)) for match in matches if match}


def _claim_name(tmp: Path, folder: Path, suffix: str, ext: str = "png") -> Path:
    """Give the synced temp file its final name under the next free number; never replaces a file.

    Savers with different stem hints would not collide on the name alone, so a number is first claimed
    with an exclusively created `.keypaint-NNNNN.claim` file. While holding it, a saver checks that no
    picture has that number yet (one made before the claim was taken shows up here) and then links.
    """
    number = next_number(folder)
    for _ in range(_MAX_ATTEMPTS):
        claim = folder / f".keypaint-{number:05d}.claim"
        try:
            os.close(os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:  # another saver is naming this number right now
            number += 1
            continue
        final = folder / (f"{number:05d}-{suffix}.{ext}" if suffix else f"{number:05d}.{ext}")
        try:
            if number in _numbers(folder):
                raise FileExistsError(final)
            _link_or_reserve(tmp, final)
            return final
        except FileExistsError:
            number = max(number + 1, next_number(folder))
        finally:
            os.unlink(claim)
    raise OutputError(f"no free file number in {folder} after {_MAX_ATTEMPTS} tries")


def _link_or_reserve(tmp: Path, final: Path) -> None:
    """Hard-link `tmp` as `final` (fails if `final` exists); without hard links, `_reserve_and_replace`."""
    try:
        os.link(tmp, final)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in _NO_HARDLINKS:
            raise
        _reserve_and_replace(tmp, final)


def _reserve_and_replace(tmp: Path, final: Path) -> None:
    """For file systems without hard links: create `final` exclusively (an empty placeholder that only
    this call owns), then move the temp file over it. Raises FileExistsError if the name is taken."""
    os.close(os.open(final, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    os.replace(tmp, final)


def _sync_dir(folder: Path) -> None:
    """Make the new directory entry durable; not every platform can open a directory, so best effort."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
