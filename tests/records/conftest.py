"""The records lab tests run on their own small lab (compose project wobble-rt, 10.78.x: two
records servers and the toxiproxy between them), so they can run while the main lab runs.
Each scenario starts from fresh volumes; the project is taken down at the end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.errors import WobbleError
from lab.records import scenarios
from lab.records.config import RecordsConfig
from tests.helpers import skip_or_fail


@pytest.fixture(scope="session")
def rt() -> Iterator[RecordsConfig]:
    from core import dockerctl

    try:
        cli = dockerctl.client()
    except WobbleError as exc:
        skip_or_fail(str(exc))
    for image in ("wobble/db:dev", "wobble/python:dev"):
        if not cli.images.list(name=image):
            skip_or_fail(f"image {image} missing; run `make images`")
    cfg = scenarios.rt_config()
    try:
        yield cfg
    finally:
        scenarios.down(cfg)
