from __future__ import annotations

from pathlib import Path

from lab.cdr import find

ROWS = [
    '"","wabc","support","from-sbc","""wabc"" <wabc>","PJSIP/sbc-00000000","PJSIP/a-001-00000001","Queue",'
    '"support","2026-11-26 23:00:00","","2026-11-26 23:00:01",1,0,"NO ANSWER","DOCUMENTATION","1764198000.0","wabc"',
    '"","wabc","support","from-sbc","""wabc"" <wabc>","PJSIP/sbc-00000000","PJSIP/a-002-00000002","Queue",'
    '"support","2026-11-26 23:00:00","2026-11-26 23:00:01","2026-11-26 23:00:06",6,5,"ANSWERED","DOCUMENTATION",'
    '"1764198000.1","wabc"',
    '"","wxyz","support","from-sbc","","PJSIP/sbc-00000003","","Queue","support","2026-11-26 23:01:00","",'
    '"2026-11-26 23:01:01",1,0,"NO ANSWER","DOCUMENTATION","1764198060.3","wxyz"',
    '"torn row without enough columns"',
]


def test_finds_the_answered_leg(tmp_path: Path) -> None:
    f = tmp_path / "Master.csv"
    f.write_text("\n".join(ROWS) + "\n")
    row = find(f, "wabc")
    assert row is not None and row.answered and row.uniqueid == "1764198000.1" and row.billsec == 5
    other = find(f, "wxyz")
    assert other is not None and not other.answered and other.uniqueid == "1764198060.3"
    assert find(f, "nope") is None


def test_missing_file_is_none(tmp_path: Path) -> None:
    assert find(tmp_path / "absent.csv", "wabc") is None
