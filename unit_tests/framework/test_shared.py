"""shared.py: values computed once per key for every stream of a sync, records kept on disk, and responses
shared by the streams flattened from them."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any, Callable, Dict, List

import pytest
import requests_mock
from airbyte_cdk.models import FailureType

from source_usage.framework import shared
from source_usage.framework.error_handling import VendorErrors
from source_usage.framework.errors import ConfigError, UsageError, VendorRequestFailed
from source_usage.framework.settings import Settings
from source_usage.framework.shared import OncePerKey, SharedResponses, Spool
from source_usage.framework.vendor import VendorConnection

HANG = 10.0
BASE = "https://api.acme.example/v1"


class Progress:
    """What the threads of a test did so far; `until(check)` waits for it (a hang fails the test)."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.contended = 0
        self.computed: List[Any] = []

    def note(self, what: str, value: Any = None) -> None:
        with self.changed:
            if what == "contended":
                self.contended += 1
            else:
                self.computed.append(value)
            self.changed.notify_all()

    def until(self, check: Callable[[], bool]) -> None:
        with self.changed:
            assert self.changed.wait_for(check, timeout=HANG)


@pytest.fixture
def progress(monkeypatch: pytest.MonkeyPatch) -> Progress:
    """Locks of shared.py that report when a thread has to wait for one (it is then blocked behind it)."""
    progress = Progress()

    class Watched:
        def __init__(self) -> None:
            self._lock = threading.Lock()

        def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
            if self._lock.acquire(False):
                return True
            progress.note("contended")
            return self._lock.acquire(blocking, timeout)

        def release(self) -> None:
            self._lock.release()

        def __enter__(self) -> "Watched":
            self.acquire()
            return self

        def __exit__(self, *exc: Any) -> None:
            self.release()

    monkeypatch.setattr(shared, "threading", SimpleNamespace(Lock=Watched))
    return progress


def in_thread(target: Callable[[], Any], results: Dict[str, Any], name: str) -> threading.Thread:
    def run() -> None:
        try:
            results[name] = target()
        except BaseException as error:  # reported by the test
            results[name] = error

    thread = threading.Thread(target=run, name=name)
    thread.start()
    return thread


# ----- once per key -----------------------------------------------------------------------------------


def test_given_a_key_when_asked_again_then_the_same_value_is_returned_without_computing_again() -> None:
    calls: List[str] = []
    once: OncePerKey[str, dict] = OncePerKey(lambda key: calls.append(key) or {"key": key})
    first = once.get("org-1")
    assert once.get("org-1") is first
    assert once.get("org-2") == {"key": "org-2"}
    assert calls == ["org-1", "org-2"]
    assert once._locks == {}  # a computed key keeps no lock (a sync may have 100,000 endpoints)


def test_given_two_threads_asking_one_key_at_once_when_computed_then_it_is_computed_once(progress: Progress) -> None:
    release = threading.Event()

    def compute(key: str) -> dict:
        progress.note("computed", key)
        assert release.wait(HANG)
        return {"key": key}

    once: OncePerKey[str, dict] = OncePerKey(compute)
    results: Dict[str, Any] = {}
    first = in_thread(lambda: once.get("org-1"), results, "first")
    progress.until(lambda: len(progress.computed) == 1)
    second = in_thread(lambda: once.get("org-1"), results, "second")
    # the second thread either waits behind the first (right) or computes the key itself (wrong)
    progress.until(lambda: progress.contended >= 1 or len(progress.computed) >= 2)
    release.set()
    first.join(HANG)
    second.join(HANG)
    assert progress.computed == ["org-1"]
    assert results["first"] == {"key": "org-1"}
    assert results["second"] is results["first"]


def test_given_two_keys_when_asked_from_two_threads_then_they_are_computed_at_the_same_time() -> None:
    inside = {"a": threading.Event(), "b": threading.Event()}

    def compute(key: str) -> str:
        inside[key].set()
        other = "b" if key == "a" else "a"
        if not inside[other].wait(HANG):
            raise AssertionError(f"{other} was not computed while {key} was")
        return key.upper()

    once: OncePerKey[str, str] = OncePerKey(compute)
    results: Dict[str, Any] = {}
    threads = [in_thread(lambda key=key: once.get(key), results, key) for key in ("a", "b")]
    for thread in threads:
        thread.join(HANG)
    assert results == {"a": "A", "b": "B"}


def test_given_a_usage_error_when_computed_then_it_is_remembered_and_raised_again_without_asking_again() -> None:
    calls: List[str] = []

    def compute(key: str) -> Any:
        calls.append(key)
        raise ConfigError("meraki.organization_ids", "names organization 9, which the API key cannot see")

    once: OncePerKey[str, Any] = OncePerKey(compute)
    for _ in range(3):
        with pytest.raises(UsageError) as failure:
            once.get("all")
        assert str(failure.value) == "Invalid config: meraki.organization_ids names organization 9, which the API key cannot see"
        assert failure.value.failure_type == FailureType.config_error
    assert calls == ["all"]
    assert once.known("all") is None


def test_given_a_transient_vendor_failure_when_remembered_then_its_failure_type_is_kept() -> None:
    def compute(key: str) -> Any:
        raise VendorRequestFailed("acme", "GET", f"{BASE}/orgs", "failed after 7 attempts (last: HTTP 503)")

    once: OncePerKey[str, Any] = OncePerKey(compute)
    with pytest.raises(UsageError):
        once.get("all")
    with pytest.raises(UsageError) as again:
        once.get("all")
    assert str(again.value) == f"acme: GET {BASE}/orgs failed after 7 attempts (last: HTTP 503)"
    assert again.value.failure_type == FailureType.transient_error


def test_given_an_unexpected_error_when_computed_then_it_is_not_remembered() -> None:
    outcomes: List[Any] = [KeyError("bug"), ["value"]]

    def compute(key: str) -> Any:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    once: OncePerKey[str, Any] = OncePerKey(compute)
    with pytest.raises(KeyError):
        once.get("k")
    assert once.get("k") == ["value"]
    assert outcomes == []


def test_given_a_value_put_by_another_reader_when_asked_then_it_is_used_and_not_replaced() -> None:
    once: OncePerKey[str, Any] = OncePerKey(lambda key: pytest.fail("computed although it was put"))
    once.put("org-1", ["n1"])
    once.put("org-1", ["other"])
    assert once.get("org-1") == ["n1"]
    assert once.known("org-1") == ["n1"]
    assert once.known("org-2") is None


# ----- spool -------------------------------------------------------------------------------------------


def test_given_records_spooled_when_drained_then_they_come_back_in_order_and_the_file_closes() -> None:
    spool = Spool()
    spool.extend([{"a": 1}, {"a": 2}])
    spool.extend([])
    spool.extend(iter([{"a": 3, "nested": {"b": [1, 2]}}]))
    assert spool.count == 3
    assert list(spool.drain()) == [{"a": 1}, {"a": 2}, {"a": 3, "nested": {"b": [1, 2]}}]
    assert spool._file.closed


def test_given_a_spool_when_closed_unread_then_its_file_is_closed() -> None:
    spool = Spool()
    spool.extend([1])
    spool.close()
    assert spool._file.closed


# ----- shared responses ------------------------------------------------------------------------------


def snapshot_reader(connection: VendorConnection) -> Callable[[str], Any]:
    return lambda endpoint_id: connection.send("GET", f"endpoint/{endpoint_id}/stats").json()


def acme() -> VendorConnection:
    return VendorConnection("acme", BASE, VendorErrors("acme"), settings=Settings(max_retries=0))


def test_given_two_consumers_when_both_take_a_key_then_it_is_computed_once_and_the_second_sends_no_request() -> None:
    with requests_mock.Mocker() as mock:
        stats = mock.get(f"{BASE}/endpoint/7/stats", json={"last_month": {"data": 1}, "last_hour": [1, 2]})
        responses: SharedResponses[str, Any] = SharedResponses(snapshot_reader(acme()), consumers=2)
        first = responses.take("7")
        assert stats.call_count == 1
        second = responses.take("7")
        assert stats.call_count == 1
    assert first == second == {"last_month": {"data": 1}, "last_hour": [1, 2]}


def test_given_every_consumer_took_its_copy_when_taken_again_then_it_is_computed_afresh() -> None:
    with requests_mock.Mocker() as mock:
        stats = mock.get(f"{BASE}/endpoint/7/stats", [{"json": {"n": 1}}, {"json": {"n": 2}}])
        responses: SharedResponses[str, Any] = SharedResponses(snapshot_reader(acme()), consumers=2)
        assert [responses.take("7"), responses.take("7"), responses.take("7")] == [{"n": 1}, {"n": 1}, {"n": 2}]
        assert stats.call_count == 2


def test_given_three_consumers_when_they_take_a_key_then_two_read_the_kept_copy() -> None:
    calls: List[str] = []
    responses: SharedResponses[str, Any] = SharedResponses(lambda key: calls.append(key) or {"k": key}, consumers=3)
    assert [responses.take("x") for _ in range(3)] == [{"k": "x"}] * 3
    assert calls == ["x"]
    responses.take("x")
    assert calls == ["x", "x"]


@pytest.mark.parametrize("consumers", [1, 0])
def test_given_a_single_consumer_when_it_takes_keys_then_nothing_is_kept(consumers: int) -> None:
    calls: List[str] = []
    responses: SharedResponses[str, Any] = SharedResponses(lambda key: calls.append(key) or key, consumers=consumers)
    responses.take("x")
    responses.take("x")
    assert calls == ["x", "x"]
    assert responses._file is None


def test_given_keys_when_taken_then_each_keeps_its_own_copy() -> None:
    responses: SharedResponses[str, Any] = SharedResponses(lambda key: {"key": key}, consumers=2)
    assert [responses.take("a"), responses.take("b"), responses.take("b"), responses.take("a")] == [{"key": "a"}, {"key": "b"}, {"key": "b"}, {"key": "a"}]


def test_given_a_failing_computation_when_taken_then_it_is_not_kept_and_the_next_reader_tries_again() -> None:
    outcomes: List[Any] = [UsageError("acme: snapshot failed"), {"n": 1}]

    def compute(key: str) -> Any:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    responses: SharedResponses[str, Any] = SharedResponses(compute, consumers=2)
    with pytest.raises(UsageError, match="snapshot failed"):
        responses.take("7")
    assert responses.take("7") == {"n": 1}
    assert responses.take("7") == {"n": 1}
    assert outcomes == []


def test_given_two_consumers_taking_one_key_at_once_when_computed_then_the_second_waits_for_the_first(progress: Progress) -> None:
    release = threading.Event()

    def compute(key: str) -> dict:
        progress.note("computed", key)
        assert release.wait(HANG)
        return {"key": key}

    responses: SharedResponses[str, Any] = SharedResponses(compute, consumers=2)
    results: Dict[str, Any] = {}
    first = in_thread(lambda: responses.take("7"), results, "first")
    progress.until(lambda: len(progress.computed) == 1)
    second = in_thread(lambda: responses.take("7"), results, "second")
    progress.until(lambda: progress.contended >= 1 or len(progress.computed) >= 2)
    release.set()
    first.join(HANG)
    second.join(HANG)
    assert progress.computed == ["7"]
    assert results == {"first": {"key": "7"}, "second": {"key": "7"}}
