"""pjsua call slots are reused: an ended call's Call object must never act on its slot's next call.

pjsua2's ~Call() clears the user data of (and hangs up) whatever call holds its id at that moment;
these tests drive UserAgent's bookkeeping with stand-ins for pjsua2's Call, no pjsua library.
"""

from __future__ import annotations

from typing import Any

from agents.ua import CallOutcome, UserAgent, _Rec


class FakeCall:
    def __init__(self, slot: int, sip_call_id: str, table: dict[int, str]) -> None:
        self.slot, self.sip_call_id, self.table = slot, sip_call_id, table
        self.rec: Any = None
        self.hung_up = 0

    def getId(self) -> int:
        return self.slot

    def getInfo(self) -> Any:
        class Info:
            callIdString = self.table.get(self.slot, "")

        if self.slot not in self.table:
            raise RuntimeError("no call in this slot")
        return Info()

    def hangup(self, prm: Any) -> None:
        self.hung_up += 1


def _ua() -> UserAgent:
    ua = object.__new__(UserAgent)
    ua._calls = {}
    ua._graveyard = []
    ua._emit = lambda ev: None  # type: ignore[method-assign]
    ua._sample = lambda rec: None  # type: ignore[method-assign]
    return ua


def _rec(handle: int, call: FakeCall) -> _Rec:
    out = CallOutcome(handle=handle, direction="in", account="a-001", remote_uri="sip:x", started_at=0.0)
    out.sip_call_id = call.sip_call_id
    rec = _Rec(handle=handle, call=call, account=None, outcome=out, t0=0.0)  # type: ignore[arg-type]
    call.rec = rec
    return rec


def test_an_ended_call_is_not_freed_while_its_slot_holds_a_newer_call() -> None:
    table = {2: "old"}
    ua = _ua()
    old = _rec(1, FakeCall(2, "old", table))
    ua._graveyard.append(old)
    table[2] = "new"  # pjsua gave slot 2 to a new call before the old record was buried
    new = _rec(2, FakeCall(2, "new", table))
    ua._calls[2] = new
    ua._bury()
    assert ua._graveyard == [old] and old.call.rec is old  # kept: freeing it would cut off "new"
    del ua._calls[2]
    del table[2]
    ua._bury()
    assert ua._graveyard == [] and old.call.rec is None


def test_hanging_up_a_record_whose_slot_moved_on_closes_the_record_not_the_call() -> None:
    table = {1: "someone-else"}
    ua = _ua()
    finished: list[_Rec] = []
    ua._finish = finished.append  # type: ignore[method-assign]
    stale = _rec(7, FakeCall(1, "mine", table))
    ua._calls[7] = stale
    assert ua._hangup(7, "media_timeout") is True
    assert stale.call.hung_up == 0 and finished == [stale]  # the other call in slot 1 lives on
    own = _rec(8, FakeCall(1, "someone-else", table))
    ua._calls[8] = own
    assert ua._hangup(8, "caller_bye") is True and own.call.hung_up == 1
