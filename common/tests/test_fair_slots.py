"""The pool's slots serve waiting requests in arrival order (atelier_common.db.FairSlots)."""
import gevent

from atelier_common.db import FairSlots


def test_a_released_slot_goes_to_the_oldest_waiter_not_to_a_newcomer():
    slots = FairSlots(1)
    assert slots.acquire(1)
    order = []

    def wait(name):
        assert slots.acquire(1)
        order.append(name)
        slots.release()

    first, second = gevent.spawn(wait, "first"), gevent.spawn(wait, "second")
    gevent.sleep(0)  # both now wait, in this order
    slots.release()
    # A request arriving right after the release finds the slot handed on, not free.
    assert slots.acquire(0.5)
    order.append("newcomer")
    slots.release()
    gevent.joinall([first, second], timeout=2)
    assert order == ["first", "second", "newcomer"]


def test_a_waiter_gives_up_after_its_timeout_and_leaves_the_queue():
    slots = FairSlots(1)
    assert slots.acquire(1)
    assert slots.acquire(0.05) is False
    assert not slots.waiters
    slots.release()
    assert slots.free == 1


def test_free_slots_are_taken_without_waiting():
    slots = FairSlots(2)
    assert slots.acquire(0) and slots.acquire(0)
    assert slots.free == 0
    slots.release()
    slots.release()
    assert slots.free == 2
