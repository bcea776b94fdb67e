"""Container HEALTHCHECK for the agents service: exit 0 only if every configured agent is
registered (200, active) and every worker's status is fresh; otherwise print one line and exit 1.

    python -m agents.health [--status PATH] [--max-age 20]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agents.status import DEFAULT_MAX_AGE_S, check, status_path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m agents.health")
    p.add_argument("--status", type=Path, default=None, help="supervisor status file (env WOBBLE_AGENT_STATUS)")
    p.add_argument("--max-age", type=float, default=DEFAULT_MAX_AGE_S, help="max age of a worker status, s")
    args = p.parse_args(argv)
    ok, reason = check(args.status or status_path(), args.max_age)
    print(reason)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
