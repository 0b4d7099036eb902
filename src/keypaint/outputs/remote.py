"""Pictures in an fsspec location (`s3://bucket/prefix`, `gs://...`, `file:///shared/...`): `serve --out URL`.

The same rules as a local folder (outputs/files.py): day folders `YYYY-MM-DD/`, A1111's numbered names
`NNNNN-<seed>.png`, and nothing is ever replaced. Each file is created exclusively (fsspec's "xb" mode:
`O_EXCL` on a disk, a conditional put on object storage), and a number is first claimed with an exclusively
created `.keypaint-NNNNN.claim` object, so concurrent savers on many machines get distinct numbers.
fsspec and the backend's package (s3fs, gcsfs, ...) come with `keypaint[cluster]` or are installed by hand.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from keypaint.core.control_maps import png_bytes
from keypaint.core.painter import GeneratedImage
from keypaint.errors import OutputError
from keypaint.outputs.control_images import CONTROLS
from keypaint.outputs.files import _NUMBERED, _UNSAFE
from keypaint.outputs.results import encode_generated

_MAX_ATTEMPTS = 10_000


def is_url(text: str) -> bool:
    """`text` names an fsspec location (a protocol before ://), not a local path."""
    return re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", text) is not None


@dataclass(frozen=True)
class RemoteFile:
    """A saved picture: its name under the location and its bytes on demand (as `Path.read_bytes`)."""

    fs: Any
    path: str  # the file system's own path
    relative: str  # under the location: YYYY-MM-DD/NNNNN-<seed>.png

    @property
    def name(self) -> str:
        return self.relative.rsplit("/", 1)[-1]

    def read_bytes(self) -> bytes:
        return bytes(self.fs.cat_file(self.path))


class RemoteFolder:
    """An fsspec location that pictures are saved to and read back from."""

    def __init__(self, url: str) -> None:
        try:
            import fsspec
        except ImportError:
            raise OutputError(f"--out {url}: fsspec is missing (pip install 'keypaint[cluster]')") from None
        try:
            self.fs, root = fsspec.core.url_to_fs(url)
        except (ImportError, ValueError) as exc:  # an unknown protocol, or its package is missing
            raise OutputError(f"--out {url}: {exc}") from None
        self.url, self.root = url, root.rstrip("/")

    def check_writable(self) -> None:
        """`OutputError` unless a file can be created (and removed) there; checked before any model loads."""
        probe = f"{self.root}/.keypaint-check-{datetime.now().strftime('%Y%m%d%H%M%S%f')}"
        try:
            self.fs.makedirs(self.root, exist_ok=True)
            with self.fs.open(probe, "xb"):
                pass
            self.fs.rm(probe)
        except Exception as exc:  # every backend raises its own errors; all mean the same here
            raise OutputError(f"cannot write to output location {self.url}: {exc}") from None

    def save(self, result: GeneratedImage, when: datetime | None = None) -> RemoteFile:
        """Write `result` (marked; infotext and JSON inside) as `DAY/NNNNN-<seed>.png`, replacing nothing."""
        day = (when or datetime.now()).strftime("%Y-%m-%d")
        folder = f"{self.root}/{day}"
        self.fs.makedirs(folder, exist_ok=True)
        self._save_controls(result, folder)
        path = self._claim_and_write(encode_generated(result, "png", None), folder, str(result.seed))
        return RemoteFile(self.fs, path, f"{day}/{path.rsplit('/', 1)[-1]}")

    def read(self, relative: str) -> bytes | None:
        """The bytes of the file `relative` names under the location (a name already checked), or None."""
        try:
            return bytes(self.fs.cat_file(f"{self.root}/{relative}"))
        except (FileNotFoundError, IsADirectoryError):
            return None

    def _numbers(self, folder: str) -> set[int]:
        names = (entry.rsplit("/", 1)[-1] for entry in self.fs.ls(folder, detail=False, refresh=True))
        matches = (_NUMBERED.match(name.rsplit(".", 1)[0]) for name in names)
        return {int(match.group(1)) for match in matches if match}

    def _claim_and_write(self, data: bytes, folder: str, stem_hint: str) -> str:
        """outputs.files' numbering on exclusive creates: claim a number, check it is free, write the file."""
        suffix = _UNSAFE.sub("_", stem_hint).strip("._")[:80]
        number = max(self._numbers(folder), default=-1) + 1
        for _ in range(_MAX_ATTEMPTS):
            claim = f"{folder}/.keypaint-{number:05d}.claim"
            try:
                with self.fs.open(claim, "xb"):
                    pass
            except FileExistsError:  # another saver is naming this number right now
                number += 1
                continue
            final = f"{folder}/{number:05d}-{suffix}.png" if suffix else f"{folder}/{number:05d}.png"
            try:
                numbers = self._numbers(folder)
                if number in numbers:
                    raise FileExistsError(final)
                with self.fs.open(final, "xb") as handle:
                    handle.write(data)
                return final
            except FileExistsError:
                number = max(number + 1, max(self._numbers(folder), default=-1) + 1)
            finally:
                self.fs.rm(claim)
        raise OutputError(f"no free file number in {self.url} after {_MAX_ATTEMPTS} tries")

    def _save_controls(self, result: GeneratedImage, folder: str) -> None:
        """Each control unit's image once, as `DAY/controls/<sha256>.png` (as outputs.control_images)."""
        for unit in result.params.control_units:
            if unit.image is None:
                continue
            data = png_bytes(unit.image)
            path = f"{folder}/{CONTROLS}/{hashlib.sha256(data).hexdigest()}.png"
            self.fs.makedirs(f"{folder}/{CONTROLS}", exist_ok=True)
            try:
                with self.fs.open(path, "xb") as handle:
                    handle.write(data)
            except FileExistsError:  # the same image (same name, same bytes) is there already
                pass
