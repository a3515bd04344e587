"""Transactions: task runs that commit or roll back together, as Prefect's do.

A transaction is opened with ``with transaction():`` and becomes the active one (a
context variable) inside the block. A task run inside one, or of a task with commit or
rollback hooks, has a transaction of its own, a child of the one active where the run
was created (for a submitted run: where it was submitted); other task runs have none,
which costs them nothing. A run that completes stages its task's ``on_commit`` and
``on_rollback`` hooks on its transaction and hands it to the parent; a run that ends any
other way (after its retries) rolls its transaction back, and with it the parent. When
the outermost transaction leaves its block it commits its children (their commit hooks
run, in the order the runs finished), or, when an exception leaves the block, rolls them
back (their rollback hooks run, last finished first).

A transaction with a ``key`` writes a record of its commit to
``$FLOWKIT_HOME/transactions`` (a small JSON file, written atomically); a later
transaction with the same key begins committed, so ``txn.is_committed()`` says the work
was done, and nothing inside it commits or rolls back again.

Each commit and rollback of an opened transaction, and of a task run's transaction that
ran hooks, is told to the event bus as a ``TransactionEnded`` record of the run it
happened in: the run store keeps it, the run page shows it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Generator, Iterable
from contextlib import contextmanager
from contextvars import ContextVar, Token
from enum import Enum
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast

import attrs

from .. import events
from ..events import TransactionEnded
from ..home import home, make_private_directory
from ..ids import new_id
from ..results.storage import write_atomic
from .runs import current_run

if TYPE_CHECKING:
    from ...states import State
    from .runs import Run

__all__ = [
    "CommitMode",
    "IsolationLevel",
    "Transaction",
    "TransactionHook",
    "TransactionState",
    "begin",
    "get_transaction",
    "leave",
    "record_path",
    "settle",
    "transaction",
]

TransactionHook = Callable[["Transaction"], object]
"""``fn(transaction)``: a task's ``on_commit`` or ``on_rollback`` hook."""

_log = logging.getLogger("flowkit.transactions")


class IsolationLevel(Enum):
    """How a keyed transaction sees others with its key (Prefect's names).

    ``READ_COMMITTED``: it sees their committed records, as they are when it begins.
    ``SERIALIZABLE`` needs a lock manager shared by the runs, which flowkit does not have;
    asking for it is an error.
    """

    READ_COMMITTED = "READ_COMMITTED"
    SERIALIZABLE = "SERIALIZABLE"


class CommitMode(Enum):
    """When a transaction commits.

    ``LAZY`` (the default at the top): when the outermost transaction leaves its block.
    ``EAGER``: as soon as this one leaves its block. ``OFF``: never; left uncommitted by
    everyone, it is rolled back. A nested transaction without a mode takes its parent's.
    """

    EAGER = "EAGER"
    LAZY = "LAZY"
    OFF = "OFF"


class TransactionState(Enum):
    """Where a transaction is in its life."""

    PENDING = "PENDING"
    ACTIVE = "ACTIVE"
    STAGED = "STAGED"
    COMMITTED = "COMMITTED"
    ROLLED_BACK = "ROLLED_BACK"


class _Logger(Protocol):
    """What a transaction needs of a logger: stdlib's, an adapter, or a run logger."""

    def info(self, msg: str, /, *args: Any) -> Any: ...
    def error(self, msg: str, /, *args: Any, exc_info: Any = ...) -> Any: ...


_active: ContextVar[Transaction | None] = ContextVar("flowkit_transaction", default=None)

_MISSING: Any = object()


@attrs.define(eq=False)
class _Outcome:
    """One hook that ran, for the record: its name, its kind, the run that staged it."""

    hook: str
    kind: Literal["commit", "rollback"]
    task_run: str | None
    error: str | None = None


@attrs.define(eq=False)
class Transaction:
    """A group of work that commits or rolls back as one.

    Open one with ``transaction()``; inside the block ``get_transaction()`` returns it.

    Attributes:
        key: Names the work: a committed transaction with this key leaves a record, and a
            later one with the key begins committed. ``None``: no record.
        commit_mode: When it commits (``None`` until it begins: then its parent's, or
            ``LAZY``).
        isolation_level: ``READ_COMMITTED``; ``None`` until it begins: then its parent's.
        state: Where it is in its life.
        overwrite: Begin uncommitted even when a record of the key exists, and write the
            record again on commit.
        write_on_commit: Whether a commit writes the key's record.
        children: The transactions that ended inside it (task runs' and nested ones), in
            the order they ended.
        on_commit_hooks: ``fn(transaction)`` called when it commits.
        on_rollback_hooks: ``fn(transaction)`` called when it rolls back, last first.
        logger: Where it says which hooks run and what failed, for itself and the
            transactions in it (task runs' too): by default its parent's, else flowkit's
            ``transactions`` logger, its lines bound to the current run.
    """

    key: str | None = None
    commit_mode: CommitMode | None = None
    isolation_level: IsolationLevel | None = IsolationLevel.READ_COMMITTED
    state: TransactionState = TransactionState.PENDING
    overwrite: bool = False
    write_on_commit: bool = True
    children: list[Transaction] = attrs.field(factory=list, repr=False)
    on_commit_hooks: list[TransactionHook] = attrs.field(factory=list, repr=False)
    on_rollback_hooks: list[TransactionHook] = attrs.field(factory=list, repr=False)
    logger: _Logger | logging.Logger | logging.LoggerAdapter[Any] | None = attrs.field(
        default=None, repr=False
    )
    _values: dict[str, Any] = attrs.field(factory=dict, init=False, repr=False)
    _parent: Transaction | None = attrs.field(default=None, init=False, repr=False)
    _token: Token[Transaction | None] | None = attrs.field(default=None, init=False, repr=False)
    _entered: bool = attrs.field(default=False, init=False, repr=False)
    # A task run's own transaction: the run's name; it is recorded only if hooks ran.
    _task_run: str | None = attrs.field(default=None, init=False, repr=False)
    # Commits and rollbacks cascade to children from whichever thread ends a run.
    _lock: threading.RLock = attrs.field(factory=threading.RLock, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        _check(self.key, self.commit_mode, self.isolation_level, self.overwrite,
               self.write_on_commit)  # fmt: skip

    def set(self, name: str, value: Any) -> None:
        """Keep ``value`` under ``name`` for the rest of the transaction (and those nested
        in it, and the hooks it calls)."""
        self._values[name] = value

    def get(self, name: str, default: Any = _MISSING) -> Any:
        """The value kept under ``name`` here or, if not here, in the parent transaction.

        It is a copy (``copy.deepcopy``): changing it changes nothing kept; ``set`` does.

        Raises:
            ValueError: Nothing is kept under ``name`` and no ``default`` was given.
        """
        if name in self._values:
            return copy.deepcopy(self._values[name])
        if self._parent is not None:
            return self._parent.get(name, default)
        if default is not _MISSING:
            return default
        raise ValueError(
            f"the transaction has no value under {name!r}: txn.set({name!r}, value) it "
            f"first, or pass a default: txn.get({name!r}, default)"
        )

    def is_committed(self) -> bool:
        """Whether it committed, or began committed (a record of its key exists)."""
        return self.state is TransactionState.COMMITTED

    def is_rolled_back(self) -> bool:
        """Whether it rolled back."""
        return self.state is TransactionState.ROLLED_BACK

    def is_staged(self) -> bool:
        """Whether a task run staged its hooks on it and it has not ended yet."""
        return self.state is TransactionState.STAGED

    def is_pending(self) -> bool:
        """Whether it has not begun."""
        return self.state is TransactionState.PENDING

    def is_active(self) -> bool:
        """Whether it has begun and nothing was staged, committed or rolled back yet."""
        return self.state is TransactionState.ACTIVE

    def get_parent(self) -> Transaction | None:
        """The transaction that was active when this one began, if any."""
        return self._parent

    def add_child(self, transaction: Transaction) -> None:
        """Make ``transaction`` one this one commits and rolls back with itself."""
        with self._lock:
            self.children.append(transaction)

    @classmethod
    def get_active(cls) -> Transaction | None:
        """The transaction active here, if any (``get_transaction()``)."""
        return _active.get()

    def __enter__(self) -> Transaction:
        """Begin: become the active transaction.

        Raises:
            RuntimeError: It was entered before (a transaction is used once).
        """
        if self._entered:
            raise RuntimeError(
                f"transaction {self.key!r} was entered already: a transaction is used once; "
                "open a new one with transaction()"
            )
        self._entered = True
        self._begin(_active.get())
        self._token = _active.set(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """End: roll back if an exception leaves the block, else commit as its mode says.

        The exception, if any, goes on.
        """
        if self._token is not None:
            _active.reset(self._token)
            self._token = None
        self._end(failed=exc_type is not None)

    def commit(self) -> bool:
        """Commit now: its children first, then its own commit hooks, then its record.

        A hook that raises is logged; this transaction then rolls back instead.

        Returns:
            Whether it committed (``False``: it had committed or rolled back already, or
            a hook raised).
        """
        outcomes: list[_Outcome] = []
        done = self._commit(outcomes)
        self._tell("commit" if done else "rollback", outcomes, changed=done)
        return done

    def rollback(self) -> bool:
        """Roll back now: its own rollback hooks, last first, then its children's.

        A hook that raises is logged, and the rest are not called.

        Returns:
            Whether it rolled back (``False``: it had committed or rolled back already, or
            a hook raised).
        """
        outcomes: list[_Outcome] = []
        done = self._rollback(outcomes)
        self._tell("rollback", outcomes, changed=done)
        return done

    # --- the life of a transaction -------------------------------------------------

    def _begin(self, parent: Transaction | None) -> None:
        self._parent = parent
        if self.logger is None and parent is not None:
            self.logger = parent.logger  # the lines of the runs in it go where its go
        if self.commit_mode is None:
            self.commit_mode = parent.commit_mode if parent is not None else CommitMode.LAZY
        if self.isolation_level is None:
            self.isolation_level = (
                parent.isolation_level if parent is not None else IsolationLevel.READ_COMMITTED
            )
        self.state = TransactionState.ACTIVE
        if self.key is not None and not self.overwrite and _recorded(self.key):
            self.state = TransactionState.COMMITTED

    def _end(self, *, failed: bool) -> None:
        """What leaving the block (or a task run's end) does, in Prefect's order."""
        parent = self._parent
        if failed:
            self.rollback()
        else:
            if self.commit_mode is CommitMode.EAGER:
                self.commit()
            if parent is None:
                if self.commit_mode is CommitMode.OFF:
                    self.rollback()  # nobody took charge of committing it
                elif self.commit_mode is CommitMode.LAZY:
                    self.commit()
        if parent is not None:
            parent.add_child(self)  # the parent commits or rolls back with it
            if self.state is TransactionState.ROLLED_BACK:
                parent.rollback()

    def _stage(self, on_commit: Iterable[TransactionHook],
               on_rollback: Iterable[TransactionHook]) -> None:  # fmt: skip
        with self._lock:
            if self.state is not TransactionState.COMMITTED:
                self.on_commit_hooks += on_commit
                self.on_rollback_hooks += on_rollback
                self.state = TransactionState.STAGED

    def _commit(self, outcomes: list[_Outcome]) -> bool:
        with self._lock:
            if self.state in (TransactionState.COMMITTED, TransactionState.ROLLED_BACK):
                return False
            try:
                for child in list(self.children):
                    child._commit(outcomes)
                for hook in self.on_commit_hooks:
                    self._run_hook(hook, "commit", outcomes)
                if self.key is not None and self.write_on_commit:
                    _write_record(self.key)
            except Exception:
                self._say_error(f"Committing {self._name} failed; rolling it back", True)
                self._rollback(outcomes)
                return False
            self.state = TransactionState.COMMITTED
            return True

    def _rollback(self, outcomes: list[_Outcome]) -> bool:
        with self._lock:
            if self.state in (TransactionState.COMMITTED, TransactionState.ROLLED_BACK):
                return False
            try:
                for hook in reversed(self.on_rollback_hooks):
                    self._run_hook(hook, "rollback", outcomes)
            except Exception:
                self._say_error(f"Rolling back {self._name} failed; its other rollback "
                                "hooks were not called", True)  # fmt: skip
                return False
            self.state = TransactionState.ROLLED_BACK
            for child in reversed(self.children):
                child._rollback(outcomes)
            return True

    def _run_hook(self, hook: TransactionHook, kind: Literal["commit", "rollback"],
                  outcomes: list[_Outcome]) -> None:  # fmt: skip
        name = _hook_name(hook)
        outcome = _Outcome(name, kind, self._task_run)
        outcomes.append(outcome)
        self._say(f"Running {kind} hook {name!r}")
        try:
            hook(self)
        except Exception as exc:
            outcome.error = str(events.error_info(exc, with_traceback=False))
            self._say_error(f"{kind.capitalize()} hook {name!r} raised {outcome.error}")
            raise
        self._say(f"{kind.capitalize()} hook {name!r} finished running successfully")

    # --- saying what happened ------------------------------------------------------

    def _say(self, message: str) -> None:
        if self.logger is not None:
            self.logger.info(message)
        else:
            _log.info(message, extra=_run_fields())

    @property
    def _name(self) -> str:
        if self._task_run is not None:
            return f"the transaction of task run {self._task_run!r}"
        return f"transaction {self.key!r}" if self.key is not None else "the transaction"

    def _say_error(self, message: str, exc_info: bool = False) -> None:
        if self.logger is not None:
            self.logger.error(message, exc_info=exc_info)
        else:
            _log.error(message, exc_info=exc_info, extra=_run_fields())

    def _tell(self, action: Literal["commit", "rollback"], outcomes: list[_Outcome],
              *, changed: bool) -> None:  # fmt: skip
        """Put the record of a commit or rollback on the event bus, for the run it
        happened in: always for an opened transaction, for a task run's when hooks ran."""
        if not changed and not outcomes:
            return
        if self._task_run is not None and not outcomes:
            return
        run = current_run.get()
        if run is None:
            return  # no run to show it on
        info = run.info
        hooks = [attrs.asdict(o) for o in outcomes]
        events.emit(
            TransactionEnded(
                str(new_id()), info.id, info.root_id, time.time(), action, self.key,
                self._task_run, json.dumps(hooks),
            )
        )  # fmt: skip


def _hook_name(hook: Callable[..., Any]) -> str:
    return getattr(hook, "__name__", None) or type(hook).__name__


def _run_fields() -> dict[str, str] | None:
    """Log record fields binding a line to the current run, as run loggers' are."""
    run = current_run.get()
    if run is None:
        return None
    info = run.info
    return {**info.fields, "run_label": info.label}


def _check(
    key: object,
    commit_mode: object,
    isolation_level: object,
    overwrite: object,
    write_on_commit: object,
) -> None:
    """Refuse what a transaction cannot mean.

    Raises:
        TypeError: An argument has the wrong type.
        ValueError: ``isolation_level`` is ``SERIALIZABLE``, or ``key`` is empty.
    """
    if key is not None and not isinstance(key, str):
        raise TypeError(f"transaction key must be a string or None, got {key!r}")
    if key == "":
        raise ValueError("transaction key must not be empty: pass a name, or None for no record")
    if commit_mode is not None and not isinstance(commit_mode, CommitMode):
        raise TypeError(
            f"commit_mode must be a CommitMode (EAGER, LAZY or OFF) or None, got {commit_mode!r}"
        )
    if isolation_level is IsolationLevel.SERIALIZABLE:
        raise ValueError(
            "isolation_level=IsolationLevel.SERIALIZABLE needs a lock manager shared by the "
            "runs, which flowkit does not have; leave it out (READ_COMMITTED), and to keep "
            "two runs of one key apart use a concurrency limit named after the key "
            "(flowkit.concurrency.concurrency)"
        )
    if isolation_level is not None and not isinstance(isolation_level, IsolationLevel):
        raise TypeError(
            f"isolation_level must be an IsolationLevel or None, got {isolation_level!r}"
        )
    for name, value in (("overwrite", overwrite), ("write_on_commit", write_on_commit)):
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be True or False, got {value!r}")


# --- records of keyed commits ---------------------------------------------------------


def record_path(key: str) -> Path:
    """Where the record of a commit with ``key`` is kept."""
    digest = hashlib.sha256(key.encode()).hexdigest()
    return home() / "transactions" / f"{digest}.json"


def _recorded(key: str) -> bool:
    """Whether a commit with ``key`` left a record (one that cannot be read is none)."""
    try:
        record = json.loads(record_path(key).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and cast("dict[str, Any]", record).get("key") == key


def _write_record(key: str) -> None:
    path = record_path(key)
    make_private_directory(path.parent)
    run = current_run.get()
    record = {"key": key, "committed": time.time(),
              "run_id": run.info.id if run is not None else None}  # fmt: skip
    write_atomic(path, json.dumps(record).encode())


# --- the public entry points, and the engine's ------------------------------------------


def get_transaction() -> Transaction | None:
    """The transaction active here: the innermost ``with transaction()`` block's, or
    inside a task run's body, that run's own; ``None`` outside any."""
    return _active.get()


@contextmanager
def transaction(
    key: str | None = None,
    store: None = None,
    commit_mode: CommitMode | None = None,
    isolation_level: IsolationLevel | None = None,
    overwrite: bool = False,
    write_on_commit: bool = True,
    logger: _Logger | logging.Logger | logging.LoggerAdapter[Any] | None = None,
) -> Generator[Transaction, None, None]:
    """Open a transaction: the task runs created in the block commit or roll back with it.

    Args:
        key: Names the work. A commit writes a record of it under ``FLOWKIT_HOME``, and
            a later transaction with this key begins committed (``is_committed()``).
        store: Prefect's record store; flowkit keeps records under ``FLOWKIT_HOME``, so
            only ``None`` is accepted.
        commit_mode: ``EAGER``, ``LAZY`` or ``OFF``; ``None``: the parent's, else ``LAZY``.
        isolation_level: ``READ_COMMITTED``; ``None``: the parent's.
        overwrite: Begin uncommitted even if the key has a record, and rewrite it.
        write_on_commit: Whether a commit writes the key's record.
        logger: Where the lines about its hooks, and those of the task runs in it, go;
            default: the parent transaction's, else flowkit's, bound to the current run.

    Yields:
        The transaction.

    Raises:
        TypeError: An argument has the wrong type.
        ValueError: ``store`` is given, or ``isolation_level`` is ``SERIALIZABLE``.
    """
    if store is not None:
        raise ValueError(
            f"transaction(store={store!r}): flowkit keeps transaction records under "
            "FLOWKIT_HOME and takes no store; leave store out (point FLOWKIT_HOME "
            "elsewhere to keep them apart)"
        )
    with Transaction(
        key=key, commit_mode=commit_mode, isolation_level=isolation_level,
        overwrite=overwrite, write_on_commit=write_on_commit, logger=logger,
    ) as txn:  # fmt: skip
        yield txn


class _RunTransaction(Transaction):
    """A task run's own transaction: begun and ended by the engine, not a block."""

    def __attrs_post_init__(self) -> None:
        pass  # made by the engine, with nothing to check

    def start(self, run: Run) -> None:
        self._task_run = run.name
        self._entered = True
        self._begin(run.transaction)
        self._token = _active.set(self)

    def stop(self) -> None:
        if self._token is not None:
            _active.reset(self._token)
            self._token = None

    def settle(self, run: Run, state: State[Any]) -> None:
        if state.is_completed():
            if state.name != "Cached":  # a cached run did its work before: nothing to undo
                task = cast("_WithTransactionHooks", run.definition)
                self._stage(task.on_commit_hooks, task.on_rollback_hooks)
            self._end(failed=False)
        else:
            self._end(failed=True)


def begin(run: Run) -> Transaction | None:
    """Begin the transaction of a task run, a child of the one active where the run was
    created, and make it the active one (its body's ``get_transaction()``) until
    ``leave``. A run outside any transaction whose task has no commit or rollback hooks
    gets none: it would commit nothing, and every task run would pay for it."""
    task = cast("_WithTransactionHooks", run.definition)
    if run.transaction is None and not (task.on_commit_hooks or task.on_rollback_hooks):
        return None
    txn = _RunTransaction(commit_mode=None, isolation_level=None)
    txn.start(run)
    return txn


def leave(txn: Transaction) -> None:
    """Make the transaction active before ``begin(run)`` active again."""
    cast("_RunTransaction", txn).stop()


class _WithTransactionHooks(Protocol):
    on_commit_hooks: tuple[TransactionHook, ...]
    on_rollback_hooks: tuple[TransactionHook, ...]


def settle(txn: Transaction, run: Run, state: State[Any]) -> None:
    """End a task run's transaction by its final ``state``: a completed run stages its
    task's hooks and hands the transaction to its parent (which commits it, or commits
    it now if it has none); any other end rolls it back, with its parent. Hooks that
    raise are logged, never raised."""
    token = current_run.set(run)  # records and hook lines belong to the run
    try:
        cast("_RunTransaction", txn).settle(run, state)
    finally:
        current_run.reset(token)
