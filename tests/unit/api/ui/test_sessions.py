"""Sessions: opaque ids, expiry when idle and at the absolute limit, closing."""

from stagegate.api.ui.sessions import SessionStore
from stagegate.ledger import Principal

SAM = Principal(user="sam", role="scientist", project="vision", token_id="t1")
TOKEN = "sg_" + "s" * 43


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_id_is_random_and_not_the_token() -> None:
    store = SessionStore()
    one, two = store.open(TOKEN, SAM), store.open(TOKEN, SAM)
    assert one.id != two.id and TOKEN not in one.id and len(one.id) >= 43
    assert one.csrf != one.id
    assert TOKEN not in repr(one) and one.id not in repr(one)
    assert store.get(one.id) is one and store.get("nope") is None


def test_idle_sessions_expire_and_use_keeps_them() -> None:
    clock = Clock()
    store = SessionStore(idle_seconds=60, max_seconds=600, clock=clock)
    kept, idle = store.open(TOKEN, SAM), store.open(TOKEN, SAM)
    clock.now += 50
    assert store.get(kept.id) is kept
    clock.now += 50
    assert store.get(kept.id) is kept
    assert store.get(idle.id) is None


def test_the_absolute_limit_holds_however_busy() -> None:
    clock = Clock()
    store = SessionStore(idle_seconds=60, max_seconds=100, clock=clock)
    busy = store.open(TOKEN, SAM)
    for _ in range(3):
        clock.now += 30
        assert store.get(busy.id) is busy
    clock.now += 30
    assert store.get(busy.id) is None


def test_close_and_expired_ones_are_dropped() -> None:
    clock = Clock()
    store = SessionStore(idle_seconds=60, max_seconds=600, clock=clock)
    closed = store.open(TOKEN, SAM)
    store.close(closed.id)
    assert store.get(closed.id) is None
    store.open(TOKEN, SAM)
    clock.now += 61
    store.open(TOKEN, SAM)  # signing in sweeps the expired
    assert len(store) == 1
