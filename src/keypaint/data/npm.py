"""Fetch npm tarballs once and read JSON out of them without unpacking.

The emoji data ships as npm packages. The GPU machine has no npm and no network, so every tarball is
looked up in a folder first and `npm pack` is only a way to fill that folder.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keypaint.data.errors import DataError


@dataclass(frozen=True)
class NpmPackage:
    """A pinned npm package; `npm pack` names its tarball `<scope>-<name>-<version>.tgz`."""

    name: str  # e.g. "@iconify-json/noto"
    version: str  # the pinned default, e.g. "1.2.9"

    @property
    def stem(self) -> str:
        return self.name.lstrip("@").replace("/", "-")

    @property
    def tarball_name(self) -> str:
        return f"{self.stem}-{self.version}.tgz"


def find_tarball(package: NpmPackage, folder: Path) -> Path | None:
    """The pinned tarball in `folder`, else the only other version there, else None."""
    exact = folder / package.tarball_name
    if exact.is_file():
        return exact
    pattern = re.compile(re.escape(package.stem) + r"-\d+\.\d+\.\d+[^/]*\.tgz")
    others = sorted(p for p in folder.glob(f"{package.stem}-*.tgz") if pattern.fullmatch(p.name))
    if len(others) > 1:
        names = ", ".join(p.name for p in others)
        raise DataError(f"{folder}: several versions of {package.name} ({names}); keep one or {exact.name}")
    return others[0] if others else None


def npm_pack(package: NpmPackage, folder: Path) -> Path:
    """Download one tarball with `npm pack` into `folder` (the only step that needs a network)."""
    npm = shutil.which("npm")
    if npm is None:
        raise DataError(
            f"{package.tarball_name} is not in {folder} and npm is not installed; "
            f"run `npm pack {package.name}@{package.version}` elsewhere and pass --from-tarballs"
        )
    folder.mkdir(parents=True, exist_ok=True)
    spec = f"{package.name}@{package.version}"
    result = subprocess.run(
        [npm, "pack", spec, "--pack-destination", str(folder)], capture_output=True, text=True, check=False
    )
    path = folder / package.tarball_name
    if result.returncode != 0 or not path.is_file():
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise DataError(f"npm pack {spec} failed: {detail[-1] if detail else 'no output'}")
    return path


def resolve_tarballs(
    packages: list[NpmPackage], *, npm_cache: Path, from_tarballs: Path | None = None
) -> dict[str, Path]:
    """Map package name -> tarball path; offline when `from_tarballs` is given, else fill `npm_cache`."""
    found: dict[str, Path] = {}
    missing: list[NpmPackage] = []
    for package in packages:
        path = find_tarball(package, from_tarballs or npm_cache)
        if path is None:
            missing.append(package)
        else:
            found[package.name] = path
    if missing and from_tarballs is not None:
        names = ", ".join(p.tarball_name for p in missing)
        raise DataError(f"{from_tarballs}: missing {names} (fetch them with `npm pack` where npm works)")
    for package in missing:
        found[package.name] = npm_pack(package, npm_cache)
    return found


def read_members(tarball: Path, members: list[str], *, required: set[str] | None = None) -> dict[str, Any]:
    """Parse the named JSON members of a tarball in one pass; absent optional members are left out."""
    wanted = set(members)
    out: dict[str, Any] = {}
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            for info in tar:
                if info.name in wanted and info.isfile():
                    handle = tar.extractfile(info)
                    if handle is not None:
                        out[info.name] = json.loads(handle.read().decode("utf-8"))
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"{tarball}: not a readable .tgz ({exc})") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{tarball}: a JSON file inside cannot be parsed ({exc})") from exc
    absent = sorted((required if required is not None else wanted) - out.keys())
    if absent:
        raise DataError(f"{tarball}: missing {', '.join(absent)}")
    return out


def sha256_file(path: Path) -> str:
    """Checksum recorded in sources.json so a later build can prove it used the same bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
