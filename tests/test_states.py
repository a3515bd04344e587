"""States: the record of where a run is, and the named constructors that build them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

import flowkit
from flowkit import State
from flowkit.client.schemas.objects import StateType as ClientStateType
from flowkit.exceptions import (
    CancelledRun,
    CrashedRun,
    FailedRun,
    PausedRun,
    UnfinishedRun,
    UnfinishedRunError,
)
from flowkit.states import (
    AwaitingConcurrencySlot,
    AwaitingRetry,
    Cached,
    Cancelled,
    Cancelling,
    Completed,
    Crashed,
    Failed,
    Late,
    NotReady,
    Paused,
    Pending,
    Retrying,
    Running,
    Scheduled,
    StateConstructor,
    StateType,
    Suspended,
    TimedOut,
)

PREDICATES = (
    "is_scheduled",
    "is_pending",
    "is_running",
    "is_completed",
    "is_failed",
    "is_crashed",
    "is_cancelled",
    "is_paused",
    "is_cancelling",
)


# Each named constructor, the name it gives its states, and the one kind of state it makes.
NAMED = [
    (Scheduled, "Scheduled", StateType.SCHEDULED, "is_scheduled"),
    (Late, "Late", StateType.SCHEDULED, "is_scheduled"),
    (AwaitingConcurrencySlot, "AwaitingConcurrencySlot", StateType.SCHEDULED, "is_scheduled"),
    (Paused, "Paused", StateType.PAUSED, "is_paused"),
    (Suspended, "Suspended", StateType.PAUSED, "is_paused"),
    (Cancelling, "Cancelling", StateType.CANCELLING, "is_cancelling"),
    (Pending, "Pending", StateType.PENDING, "is_pending"),
    (Running, "Running", StateType.RUNNING, "is_running"),
    (Retrying, "Retrying", StateType.RUNNING, "is_running"),
    (AwaitingRetry, "AwaitingRetry", StateType.SCHEDULED, "is_scheduled"),
    (Completed, "Completed", StateType.COMPLETED, "is_completed"),
    (Cached, "Cached", StateType.COMPLETED, "is_completed"),
    (Failed, "Failed", StateType.FAILED, "is_failed"),
    (TimedOut, "TimedOut", StateType.FAILED, "is_failed"),
    (NotReady, "NotReady", StateType.PENDING, "is_pending"),
    (Crashed, "Crashed", StateType.CRASHED, "is_crashed"),
    (Cancelled, "Cancelled", StateType.CANCELLED, "is_cancelled"),
]
NAMED_IDS = [name for _, name, _, _ in NAMED]
FINAL_TYPES = {StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED}

constructors = st.sampled_from([constructor for constructor, _, _, _ in NAMED])


# Fields


def test_state_keeps_its_type_name_and_message() -> None:
    state = Failed("it broke")
    assert state.type is StateType.FAILED
    assert state.name == "Failed"
    assert state.message == "it broke"


def test_message_defaults_to_none() -> None:
    assert Completed().message is None


def test_timestamp_is_utc_and_taken_at_creation() -> None:
    before = datetime.now(UTC)
    state = Running()
    after = datetime.now(UTC)
    assert state.timestamp.tzinfo is not None
    assert state.timestamp.utcoffset() == UTC.utcoffset(None)
    assert before <= state.timestamp <= after


def test_constructor_keeps_data_and_exception() -> None:
    error = ValueError("x")
    assert Completed(data=[1, 2]).data == [1, 2]
    assert Failed(exception=error).exception is error


def test_state_is_immutable() -> None:
    state = Completed(data=1)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        state.data = 2  # type: ignore[misc]


def test_states_compare_equal_whatever_their_timestamps() -> None:
    first = Completed("done", data=3)
    second = attrs.evolve(first, timestamp=datetime(2000, 1, 1, tzinfo=UTC))
    assert first == second


def test_states_with_different_data_differ() -> None:
    assert Completed(data=1) != Completed(data=2)


def test_state_constructor_makes_states_of_its_kind() -> None:
    skipped = StateConstructor(StateType.COMPLETED, "Skipped")
    state = skipped("nothing to do")
    assert (state.type, state.name, state.message) == (
        StateType.COMPLETED,
        "Skipped",
        "nothing to do",
    )


# result()


def test_result_of_a_completed_state_is_its_data() -> None:
    assert Completed(data={"rows": 3}).result() == {"rows": 3}


def test_a_state_built_by_type_is_named_after_it() -> None:
    state = State(type=StateType.FAILED, message="Test returned state", data="hello!")
    assert state.name == "Failed"
    assert state.result(raise_on_failure=False) == "hello!"
    assert State(StateType.CANCELLING).name == "Cancelling"


def test_result_of_a_cached_state_is_its_data() -> None:
    assert Cached(data=7).result() == 7


def test_result_of_a_completed_state_may_be_none() -> None:
    assert Completed().result() is None


@pytest.mark.parametrize("constructor", [Failed, TimedOut, NotReady, Crashed, Cancelled])
def test_result_raises_the_stored_exception(constructor: StateConstructor) -> None:
    error = KeyError("missing")
    with pytest.raises(KeyError) as caught:
        constructor(exception=error).result()
    assert caught.value is error


def test_result_raises_a_stored_base_exception() -> None:
    interrupt = KeyboardInterrupt()
    with pytest.raises(KeyboardInterrupt) as caught:
        Crashed(exception=interrupt).result()
    assert caught.value is interrupt


def test_result_without_raising_returns_the_stored_exception() -> None:
    error = ValueError("bad")
    assert Failed(exception=error).result(raise_on_failure=False) is error


def test_result_without_raising_returns_the_data_of_a_failed_state_that_has_some() -> None:
    returned = [Failed("inner")]
    assert Failed("1/1 states failed.", data=returned).result(raise_on_failure=False) is returned


def test_a_pending_state_without_an_exception_has_no_result() -> None:
    with pytest.raises(UnfinishedRunError):
        NotReady().result(raise_on_failure=False)


def test_result_without_raising_returns_the_data_of_a_completed_state() -> None:
    assert Completed(data=5).result(raise_on_failure=False) == 5


@pytest.mark.parametrize(
    ("constructor", "error"),
    [(Failed, FailedRun), (TimedOut, FailedRun), (Crashed, CrashedRun), (Cancelled, CancelledRun)],
)
def test_result_of_a_final_state_without_exception_raises_prefects_error(
    constructor: StateConstructor, error: type[Exception]
) -> None:
    with pytest.raises(error, match=r"ended in state \w+\('why'\) and holds no exception"):
        constructor("why").result()


def test_result_without_raising_returns_the_error_of_a_state_without_exception() -> None:
    assert isinstance(Crashed().result(raise_on_failure=False), CrashedRun)


@pytest.mark.parametrize("error", [FailedRun, CrashedRun, CancelledRun])
def test_run_errors_are_runtime_errors(error: type[Exception]) -> None:
    assert issubclass(error, RuntimeError)


UNFINISHED = [
    Scheduled, Late, AwaitingConcurrencySlot, Pending, Running, Retrying, AwaitingRetry,
    Cancelling,
]  # fmt: skip


@pytest.mark.parametrize("constructor", UNFINISHED)
def test_result_of_an_unfinished_state_says_to_wait(constructor: StateConstructor) -> None:
    with pytest.raises(UnfinishedRunError, match=r"not final.*wait for the run to finish"):
        constructor().result()


@pytest.mark.parametrize("constructor", [Paused, Suspended])
def test_result_of_a_paused_state_raises_paused_run(constructor: StateConstructor) -> None:
    with pytest.raises(PausedRun, match="not final"):
        constructor().result()


def test_paused_run_is_an_unfinished_run() -> None:
    assert issubclass(PausedRun, UnfinishedRun)


def test_unfinished_run_is_prefects_name_for_unfinished_run_error() -> None:
    assert UnfinishedRun is UnfinishedRunError


def test_result_of_an_unfinished_state_raises_even_when_asked_not_to() -> None:
    with pytest.raises(UnfinishedRunError):
        Running().result(raise_on_failure=False)


def test_unfinished_run_error_is_a_runtime_error() -> None:
    with pytest.raises(RuntimeError):
        Pending().result()


# Predicates


@pytest.mark.parametrize(("constructor", "name", "kind", "predicate"), NAMED, ids=NAMED_IDS)
def test_named_state_has_its_name_and_type(
    constructor: StateConstructor, name: str, kind: StateType, predicate: str
) -> None:
    state = constructor()
    assert (state.name, state.type) == (name, kind)


@pytest.mark.parametrize(("constructor", "name", "kind", "predicate"), NAMED, ids=NAMED_IDS)
def test_named_state_answers_exactly_one_kind_predicate(
    constructor: StateConstructor, name: str, kind: StateType, predicate: str
) -> None:
    state = constructor()
    assert [p for p in PREDICATES if getattr(state, p)()] == [predicate]


@pytest.mark.parametrize(("constructor", "name", "kind", "predicate"), NAMED, ids=NAMED_IDS)
def test_named_state_is_final_exactly_when_its_type_is(
    constructor: StateConstructor, name: str, kind: StateType, predicate: str
) -> None:
    assert constructor().is_final() is (kind in FINAL_TYPES)


def test_constructor_takes_another_name_and_keeps_its_type() -> None:
    state = Completed(name="Skipped", message="nothing to do")
    assert (state.type, state.name, str(state)) == (
        StateType.COMPLETED,
        "Skipped",
        "Skipped('nothing to do')",
    )


def test_constructor_refuses_a_name_that_is_not_text() -> None:
    with pytest.raises(TypeError, match=r"Completed\(name=...\) takes a string, got 3"):
        Completed(name=3)  # type: ignore[arg-type]


def test_state_type_values_are_their_names() -> None:
    assert [kind.value for kind in StateType] == [kind.name for kind in StateType]


def test_state_type_has_prefects_nine_kinds() -> None:
    assert {kind.name for kind in StateType} == {
        "SCHEDULED", "PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "CRASHED",
        "PAUSED", "CANCELLING",
    }  # fmt: skip


def test_state_type_is_importable_from_prefects_client_path() -> None:
    assert ClientStateType is StateType


def test_paused_and_cancelling_are_not_final() -> None:
    assert not Paused().is_final()
    assert not Cancelling().is_final()


def test_cached_is_a_completed_state() -> None:
    assert Cached().is_completed()


def test_timed_out_is_a_failed_state() -> None:
    assert TimedOut().is_failed()


def test_retrying_is_a_running_state() -> None:
    assert Retrying().is_running()


def test_awaiting_retry_is_a_scheduled_state() -> None:
    assert AwaitingRetry().is_scheduled()


@pytest.mark.parametrize("kind", list(StateType))
def test_state_type_is_final_for_the_ends_of_a_run(kind: StateType) -> None:
    assert kind.is_final is (kind in FINAL_TYPES)


# Strings


def test_str_without_message_is_name_and_empty_parentheses() -> None:
    assert str(Completed()) == "Completed()"


def test_str_with_message_shows_the_message_repr() -> None:
    assert str(Completed("All states completed.")) == "Completed('All states completed.')"


def test_str_of_an_empty_message_is_like_no_message() -> None:
    assert str(Failed("")) == "Failed()"


def test_str_leaves_out_data_and_exception() -> None:
    assert str(Failed("x", data=1, exception=ValueError("y"))) == "Failed('x')"


def test_repr_shows_the_state_and_its_type() -> None:
    assert repr(TimedOut("too slow")) == "<State TimedOut('too slow') type=FAILED>"


def test_repr_without_message() -> None:
    assert repr(Cached()) == "<State Cached() type=COMPLETED>"


# Properties


@given(constructor=constructors, message=st.text(min_size=1))
def test_any_message_round_trips_into_str(constructor: StateConstructor, message: str) -> None:
    state = constructor(message)
    assert str(state) == f"{constructor.name}({message!r})"
    assert state.message == message


@given(constructor=constructors, message=st.none() | st.text())
def test_repr_wraps_str_and_type(constructor: StateConstructor, message: str | None) -> None:
    state = constructor(message)
    assert repr(state) == f"<State {state} type={state.type.value}>"


@given(constructor=constructors, data=st.integers() | st.text() | st.none())
def test_constructor_gives_its_name_and_type_to_every_state(
    constructor: StateConstructor, data: Any
) -> None:
    state = constructor(data=data)
    assert (state.type, state.name) == (constructor.type, constructor.name)


@given(first=constructors, second=constructors)
def test_states_of_one_name_are_of_one_type(
    first: StateConstructor, second: StateConstructor
) -> None:
    if first().name == second().name:
        assert first().type is second().type


@given(kind=st.sampled_from(StateType), name=st.text(min_size=1), message=st.none() | st.text())
def test_predicates_follow_the_type_alone(kind: StateType, name: str, message: str | None) -> None:
    state: State[Any] = State(kind, name, message)
    answers = {p: getattr(state, p)() for p in PREDICATES}
    assert sum(answers.values()) == 1
    assert answers[f"is_{kind.value.lower()}"]
    assert state.is_final() is kind.is_final


@given(data=st.integers() | st.text() | st.lists(st.integers()))
def test_completed_result_round_trips_its_data(data: Any) -> None:
    assert Completed(data=data).result() == data


# States


@pytest.mark.parametrize(
    ("state", "predicate"),
    [
        (flowkit.states.Pending(), "is_pending"),
        (flowkit.states.Running(), "is_running"),
        (flowkit.states.Retrying(), "is_running"),
        (flowkit.states.AwaitingRetry(), "is_scheduled"),
        (flowkit.states.Completed(), "is_completed"),
        (flowkit.states.Cached(), "is_completed"),
        (flowkit.states.Failed(), "is_failed"),
        (flowkit.states.TimedOut(), "is_failed"),
        (flowkit.states.Crashed(), "is_crashed"),
        (flowkit.states.Cancelled(), "is_cancelled"),
    ],
)
def test_each_named_state_has_one_kind(state: State[Any], predicate: str) -> None:
    kinds = [
        "is_scheduled", "is_pending", "is_running", "is_completed", "is_failed",
        "is_crashed", "is_cancelled",
    ]  # fmt: skip
    assert [k for k in kinds if getattr(state, k)()] == [predicate]


def test_state_strings_match_the_reference() -> None:
    assert str(Completed()) == "Completed()"
    assert str(Completed("All states completed.")) == "Completed('All states completed.')"
    assert str(Failed("x")) == "Failed('x')"


def test_result_of_an_unfinished_state_is_an_error() -> None:
    from flowkit.exceptions import UnfinishedRunError

    with pytest.raises(UnfinishedRunError, match="not final"):
        flowkit.states.Running().result()
