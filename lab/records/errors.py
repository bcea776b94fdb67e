"""The records errors. Each is a lab error (one line: what was wrong, what to do) and also the
matching stdlib error, so callers can catch either."""

from __future__ import annotations

from core.errors import WobbleError


class RecordsError(WobbleError):
    """Base: the records tooling could not do what was asked (the CLI exits 2)."""


class DbUnreachable(RecordsError, ConnectionError):
    """A records database does not answer (its region is down, or the lab is not up)."""


class DbMissing(RecordsError, LookupError):
    """The server answers but the records database (or its schema) is not there."""


class DbQueryFailed(RecordsError, RuntimeError):
    """A query failed or timed out."""


class EmptyEventLog(RecordsError, LookupError):
    """No call was placed in the window asked about: nothing to reconcile against."""


class OperationFailed(RecordsError, RuntimeError):
    """promote / resync / mode / wan did not complete."""
