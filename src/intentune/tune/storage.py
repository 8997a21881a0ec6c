"""Where a study lives: in memory, or in storage that several worker processes share (``intentune tune --storage``).

A storage is named by one string:

- ``sqlite:///PATH.db``, ``postgresql://USER:PASSWORD@HOST/DB``, ``mysql://...``: an Optuna ``RDBStorage`` (any
  SQLAlchemy database URL; its driver package installed). SQLite suits the workers of one machine: its
  transactions take the write lock when they begin (``BEGIN IMMEDIATE``), so that two workers cannot both take
  the same queued trial (SQLite ignores the ``SELECT ... FOR UPDATE`` that guards it on other databases);
- ``journal:PATH``: an Optuna ``JournalStorage`` on an append-only log file (created when missing), for workers
  that share a file system (an NFS folder, say) and no database server.

Workers started with the same command join the same study: its default name is a hash of what defines it (the
config without the data files' paths and the device, the search space, and the training and validation rows).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import Config
from ..errors import ConfigError

if TYPE_CHECKING:
    import optuna

    from ..data import Examples

JOURNAL_PREFIX = "journal:"
SQLITE_TIMEOUT_S = 60  # how long a worker waits for another one's write lock on a SQLite file
OPEN_RETRY_WAITS_S = (0.5, 1.0, 2.0)  # pauses before opening a database again (see open_storage)
USAGE = "expected sqlite:///PATH.db, a database URL (postgresql://USER:PASSWORD@HOST/DB) or journal:PATH"
# Config keys that do not change what a trial measures: where the data files lie and which device trains.
NAME_IGNORES = {"data": ("train_file", "validation_file"), "train": ("device",)}


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """The Optuna storage that ``url`` names (see the module docstring).

    Raises:
        ConfigError: for a string that names no storage, a journal file in a missing folder, a database whose
            driver is not installed, or one that cannot be opened; one line, with any password masked.
    """
    shown = mask_password(url)
    if url.startswith(JOURNAL_PREFIX):
        return _journal(url.removeprefix(JOURNAL_PREFIX), shown)
    if "://" not in url:
        raise ConfigError(f"storage {shown!r}: {USAGE}")
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    engine_kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}} if url.startswith("sqlite:") else None
    try:
        return _open_database(url, engine_kwargs)
    except ImportError as exc:  # Optuna's message is generic; the cause names the missing module
        cause = exc.__cause__ or exc
        raise ConfigError(f"storage {shown}: its database driver is not installed ({cause}); install it") from None
    except (SQLAlchemyError, ValueError, OSError) as exc:
        hint = f"; {USAGE}" if isinstance(exc, (ArgumentError, ValueError)) else ""  # not a URL SQLAlchemy reads
        raise ConfigError(f"storage {shown}: cannot open it ({_first_line(exc, url)}){hint}") from None


def _open_database(url: str, engine_kwargs: dict[str, Any] | None) -> optuna.storages.BaseStorage:
    """``RDBStorage(url)``, opened again after a pause when another worker was creating the same new database's
    tables at the same moment (Optuna creates them unlocked: "table ... already exists", a duplicate version row)."""
    import optuna
    from sqlalchemy.exc import IntegrityError, SQLAlchemyError

    for wait in OPEN_RETRY_WAITS_S:
        try:
            return _locked_if_sqlite(optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs))
        except SQLAlchemyError as exc:
            if not (isinstance(exc, IntegrityError) or "already exists" in str(exc)):
                raise
            time.sleep(wait)
    return _locked_if_sqlite(optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs))


def _locked_if_sqlite(storage: optuna.storages.RDBStorage) -> optuna.storages.RDBStorage:
    """``storage``, whose transactions on a SQLite file begin with ``BEGIN IMMEDIATE``.

    Optuna hands a queued trial to a worker by reading its state and setting it to running in one transaction,
    with ``SELECT ... FOR UPDATE``. SQLite has no row locks, and Python's sqlite3 driver begins a transaction only
    at the first write, so two workers can both read "waiting" and both run the trial (the second one's result is
    then refused: "Cannot tell a COMPLETE trial"). Taking the database's write lock when each transaction begins
    makes the read and the write one step; the others wait up to :data:`SQLITE_TIMEOUT_S`. This is the recipe of
    SQLAlchemy's SQLite dialect documentation ("Serializable isolation / Savepoints / Transactional DDL").
    """
    engine = storage.engine
    if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
        return storage  # another database locks rows itself; an in-memory one has one process and lives in its pool
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _no_driver_begin(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # the driver emits no BEGIN of its own; the listener below does

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # the connections Optuna opened before the listeners were added are closed
    return storage


def _journal(path: str, shown: str) -> optuna.storages.BaseStorage:
    if not path.strip():
        raise ConfigError(f"storage {shown!r}: no file after {JOURNAL_PREFIX!r}; {USAGE}")
    file = Path(path).expanduser()
    if not file.parent.is_dir():
        raise ConfigError(f"storage {shown}: folder {file.parent} does not exist; create it first")
    if file.is_dir():
        raise ConfigError(f"storage {shown}: {file} is a folder; name a log file in it")
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(str(file)))


def mask_password(url: str) -> str:
    """``url`` with the password of its ``USER:PASSWORD@`` part replaced by ``***`` (for logs, errors, reports)."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


def _first_line(exc: BaseException, url: str) -> str:
    """The first line of an error (SQLAlchemy appends a line with a link), any password in it masked."""
    text = (str(exc).strip() or type(exc).__name__).splitlines()[0]
    password = re.search(r"://[^:/@]*:([^@/]*)@", url)
    return text.replace(password.group(1), "***") if password and password.group(1) else text


def default_study_name(config: Config, space: Mapping[str, Any], data: tuple[Examples, Examples]) -> str:
    """``tune-`` and 12 hex digits of a hash of the config (without :data:`NAME_IGNORES`), the search space and the
    training and validation rows: the same command on the same data names the same study on every machine, and a
    changed setting or data file starts a new one."""
    settings = config.to_dict()
    for section, keys in NAME_IGNORES.items():
        for key in keys:
            settings.get(section, {}).pop(key, None)
    rows = [[list(split.texts), list(split.labels)] for split in data]
    payload = json.dumps([settings, dict(space), rows], sort_keys=True, default=str)
    return "tune-" + hashlib.sha256(payload.encode()).hexdigest()[:12]
