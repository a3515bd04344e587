"""Transactions: task runs that commit or roll back as one, with Prefect's API.

```python
from flowkit import flow, task
from flowkit.transactions import transaction

@task
def write(path: str) -> None: ...

@write.on_rollback
def remove(txn) -> None: ...

@flow
def pipeline() -> None:
    with transaction():
        write("out.txt")
        check("out.txt")   # if it fails, remove() undoes write()
```

See docs/transactions.md.
"""

from __future__ import annotations

from ._engine.transactions import (
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
