"""The exception hierarchy: each class is a ``FlowkitError`` and the builtin it resembles,
and Prefect's names catch the same errors."""

from __future__ import annotations

import pytest

from flowkit import exceptions
from flowkit.exceptions import (
    CancelledRun,
    CrashedRun,
    FailedRun,
    FlowkitError,
    FlowTimeoutError,
    FutureDeadlockError,
    MissingContextError,
    ParameterTypeError,
    PausedRun,
    PrefectException,
    SerializationError,
    TaskTimeoutError,
    UnfinishedRun,
    UnfinishedRunError,
    UpstreamFailedError,
    UpstreamTaskError,
)

BUILTIN = [
    (MissingContextError, RuntimeError),
    (UnfinishedRunError, RuntimeError),
    (PausedRun, RuntimeError),
    (FailedRun, RuntimeError),
    (CrashedRun, RuntimeError),
    (CancelledRun, RuntimeError),
    (UpstreamFailedError, RuntimeError),
    (ParameterTypeError, TypeError),
    (FutureDeadlockError, RuntimeError),
    (TaskTimeoutError, TimeoutError),
    (FlowTimeoutError, TimeoutError),
    (exceptions.ReservedArgumentError, TypeError),
    (exceptions.MissingResult, LookupError),
    (exceptions.ParameterBindError, TypeError),
    (exceptions.InvalidNameError, ValueError),
    (SerializationError, TypeError),
    (exceptions.ConcurrencySlotAcquisitionError, LookupError),
    (exceptions.AcquireConcurrencySlotTimeoutError, TimeoutError),
    (exceptions.WorkerCrashedError, RuntimeError),
    (exceptions.MatplotlibMissingError, RuntimeError),
]


@pytest.mark.parametrize(("error", "builtin"), BUILTIN, ids=[e.__name__ for e, _ in BUILTIN])
def test_each_error_is_the_builtin_it_resembles(error: type[Exception], builtin: type) -> None:
    with pytest.raises(builtin):
        raise error("x")


def test_every_class_in_the_module_is_a_flowkit_error() -> None:
    classes = [getattr(exceptions, name) for name in exceptions.__all__]
    assert [c for c in classes if not issubclass(c, FlowkitError)] == []


def test_every_error_class_is_tested_for_its_builtin() -> None:
    named = {getattr(exceptions, name) for name in exceptions.__all__}
    assert named - {FlowkitError} == {error for error, _ in BUILTIN}


@pytest.mark.parametrize(
    ("prefect_name", "flowkit_class"),
    [
        (PrefectException, FlowkitError),
        (UnfinishedRun, UnfinishedRunError),
        (UpstreamTaskError, UpstreamFailedError),
    ],
)
def test_prefect_names_are_the_flowkit_classes(
    prefect_name: type[Exception], flowkit_class: type[Exception]
) -> None:
    assert prefect_name is flowkit_class


def test_except_prefect_exception_catches_flowkit_errors() -> None:
    with pytest.raises(PrefectException):
        raise TaskTimeoutError("too slow")


def test_a_paused_run_is_caught_as_an_unfinished_run() -> None:
    with pytest.raises(UnfinishedRun):
        raise PausedRun("paused")


def test_dunder_all_is_sorted() -> None:
    assert exceptions.__all__ == sorted(exceptions.__all__)
