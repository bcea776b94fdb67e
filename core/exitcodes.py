"""The exit codes of every `wobble` command (and of the drill runner), one convention:

| code | name | meaning |
|---|---|---|
| 0 | `PASS` | passed, or done |
| 1 | `FAILED` | a failed verdict, or a failed operation |
| 2 | `BAD_INPUT` | bad input: flags, arguments, a scenario or config file |
| 3 | `LAB_NOT_UP` | the lab (or a service it needs) is not up, or steady state does not hold before the fault |
| 4 | `ABORTED` | aborted (Ctrl-C, SIGTERM) |
| 5 | `INCOMPLETE` | no valid verdict: the run or the data it needs is invalid or incomplete |
"""

from __future__ import annotations

from enum import IntEnum

from core.errors import BadInput, DockerUnavailable, LabNotUp


class Exit(IntEnum):
    PASS = 0
    FAILED = 1
    BAD_INPUT = 2
    LAB_NOT_UP = 3
    ABORTED = 4
    INCOMPLETE = 5


def for_error(exc: BaseException, otherwise: Exit = Exit.FAILED) -> Exit:
    """The exit code of a command that stopped on `exc`: bad input, the lab not up, aborted, or
    `otherwise` (a failed operation; INCOMPLETE for a command that could not reach its verdict)."""
    if isinstance(exc, BadInput):
        return Exit.BAD_INPUT
    if isinstance(exc, LabNotUp | DockerUnavailable):
        return Exit.LAB_NOT_UP
    if isinstance(exc, KeyboardInterrupt):
        return Exit.ABORTED
    return otherwise
