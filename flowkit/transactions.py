"""Transactions: task runs that commit or roll back as one, with Prefect's API.

```python
from pathlib import Path

from flowkit import flow, task
from flowkit.transactions import transaction

@task
def write(path: str) -> None:
    Path(path).write_text("rows")

@write.on_rollback
def remove(txn) -> None:
    Path("out.txt").unlink()

@task
def check(path: str) -> None:
    if not Path(path).read_text().strip():
        raise ValueError("empty")

@flow
def pipeline() -> None:
    with transaction():
        write("out.txt")
        check("out.txt")  # if it fails, remove() undoes write()
```

See docs/transactions.md.
"""

from __future__ import annotations

from ._engine.lifecycle.transactions import (
    CommitMode,
    IsolationLevel,
    Transaction,
    TransactionState,
    get_transaction,
    transaction,
)

__all__ = [
    "CommitMode",
    "IsolationLevel",
    "Transaction",
    "TransactionState",
    "get_transaction",
    "transaction",
]
