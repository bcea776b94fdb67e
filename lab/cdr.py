"""Asterisk CDRs as the lab reads them: cdr_csv's Master.csv, one file per region."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# cdr_csv's fixed columns; with loguniqueid and loguserfield two more follow amaflags.
COLUMNS = (
    "accountcode",
    "src",
    "dst",
    "dcontext",
    "clid",
    "channel",
    "dstchannel",
    "lastapp",
    "lastdata",
    "start",
    "answer",
    "end",
    "duration",
    "billsec",
    "disposition",
    "amaflags",
    "uniqueid",
    "userfield",
)


@dataclass(frozen=True)
class Cdr:
    uniqueid: str
    userfield: str
    disposition: str
    billsec: int
    dstchannel: str

    @property
    def answered(self) -> bool:
        return self.disposition == "ANSWERED"


def parse_rows(lines: Iterator[str]) -> Iterator[Cdr]:
    for row in csv.reader(lines):
        if len(row) < len(COLUMNS):
            continue  # a row being written, or a different format: not ours to guess
        rec = dict(zip(COLUMNS, row, strict=False))
        try:
            billsec = int(rec["billsec"] or 0)
        except ValueError:
            billsec = 0
        yield Cdr(rec["uniqueid"], rec["userfield"], rec["disposition"], billsec, rec["dstchannel"])


def find(path: Path, call_id: str) -> Cdr | None:
    """The CDR of a lab call (its id is in userfield); the answered leg wins over ringing ones."""
    try:
        with path.open(newline="") as fh:
            matches = [c for c in parse_rows(iter(fh)) if c.userfield == call_id]
    except FileNotFoundError:
        return None
    answered = [c for c in matches if c.answered]
    best = answered or matches
    return best[-1] if best else None
