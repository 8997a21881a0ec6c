"""Atomic writes of folders and files: a folder or file is either the old one or the new one, whole, never
missing and never half-written, even when the process is killed at any instruction.

A new folder is built in a hidden sibling (``.NAME.tmp-PID-XXXX``) and then swapped into place. On Linux
(``renameat2`` with ``RENAME_EXCHANGE``) and macOS (``renamex_np`` with ``RENAME_SWAP``) the swap is one atomic
system call that exchanges the two folders, so the target always exists; the old contents, now in the hidden
sibling, are removed afterwards. Elsewhere the old folder is first renamed aside (``.NAME.old-PID-XXXX``) and the
next write (or :func:`recover_folder`) puts it back if the process died between the two renames. Hidden siblings
left by a killed process are removed by the next write to the same target.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2  # Linux renameat2 flag
_RENAME_SWAP = 2  # macOS renamex_np flag


def _leftover_pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"^\.{re.escape(name)}\.(tmp|old)-(\d+)-")


@contextlib.contextmanager
def atomic_folder(target: str | Path, *, keep_existing: bool = False) -> Iterator[Path]:
    """Build a folder in a hidden temporary sibling and swap it into place when the block ends without error.

    On an error inside the block the temporary folder is removed and ``target`` is left as it was. With
    ``keep_existing``, a ``target`` that another process completed meanwhile is kept and the new folder dropped
    (for caches that several processes may fill at once: a reader of the first one never sees it removed).

    Example:
        >>> with atomic_folder("runs/shop/model") as tmp:
        ...     (tmp / "intentune.json").write_text("{}")

    Yields:
        The temporary folder to write into.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=target.parent))
    try:
        yield tmp
        _sync_tree(tmp)
        if keep_existing:
            try:
                os.rename(tmp, target)
            except OSError:  # an existing, non-empty target: another process completed it, and it stays
                if not target.is_dir():
                    raise
        else:
            replace_folder(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # the new folder on error, the old contents after a swap


def replace_folder(new: Path, target: Path) -> None:
    """Put the folder ``new`` in the place of ``target``; afterwards ``new``'s path holds the old contents (when
    there were any) for the caller to remove. ``target`` exists at every moment if it existed before.
    """
    if not target.exists() and not target.is_symlink():
        os.rename(new, target)
    elif not _exchange(new, target):
        _replace_in_two_steps(new, target)
    _sync_dir(target.parent)


def write_file_atomic(path: str | Path, data: str | bytes) -> None:
    """Write a file through a hidden temporary sibling and a rename, so readers see the old or the new file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.tmp-{os.getpid()}-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(raw)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise
    _sync_dir(path.parent)


def recover_folder(target: Path) -> None:
    """Put back an old folder that a killed two-step replacement left aside, when ``target`` is missing.

    Only the leftovers of processes that are no longer running are considered, so a write in progress elsewhere
    is not disturbed.
    """
    if target.exists():
        return
    aside = [p for p in _leftovers(target) if ".old-" in p.name and p.is_dir() and not _process_alive(_pid_of(p))]
    if aside:
        os.rename(max(aside, key=lambda p: p.stat().st_mtime), target)


def clean_leftovers(target: Path) -> None:
    """Remove hidden siblings of ``target`` that earlier writes left behind when their process was killed.

    A sibling whose process is still running belongs to a write in progress and is kept.
    """
    recover_folder(target)
    for path in _leftovers(target):
        if _process_alive(_pid_of(path)):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                path.unlink()


def _leftovers(target: Path) -> list[Path]:
    pattern = _leftover_pattern(target.name)
    if not target.parent.is_dir():
        return []
    return [p for p in target.parent.iterdir() if pattern.match(p.name)]


def _pid_of(leftover: Path) -> int:
    """The process id in a hidden sibling's name (``.NAME.tmp-PID-XXXX``)."""
    return int(leftover.name.rsplit(".", 1)[-1].split("-")[1])


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # this process is not inside another write to the same target
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one system call; False where the platform or file system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if sys.platform.startswith("linux"):
            call = libc.renameat2
            args: tuple[object, ...] = (_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
        elif sys.platform == "darwin":
            call = libc.renamex_np
            args = (os.fsencode(a), os.fsencode(b), _RENAME_SWAP)
        else:
            return False
    except (AttributeError, OSError):
        return False
    if call(*args) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _replace_in_two_steps(new: Path, target: Path) -> None:
    """Rename ``target`` aside, then ``new`` into place, then the old one to ``new``'s path for removal."""
    aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-{os.getpid()}-", dir=target.parent))
    os.rmdir(aside)
    os.rename(target, aside)
    try:
        os.rename(new, target)
    except OSError:
        os.rename(aside, target)
        raise
    os.rename(aside, new)


def _sync_tree(folder: Path) -> None:
    """Flush the files of ``folder`` to disk, so a power loss after the swap cannot leave them empty."""
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    _sync_dir(folder)


def _sync_dir(folder: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on folders; the rename itself is still atomic
    finally:
        os.close(fd)
