"""`wobble call` rejects bad input with a clear error before touching docker."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from core.errors import BadInput
from core.topology import Topology
from lab.call import ensure_hold_is_valid, ensure_region_is_valid
from lab.cli import app


@pytest.mark.parametrize("hold", ["0", "-1", "abc", "nan", "inf", ""])
def test_bad_hold(hold: str) -> None:
    with pytest.raises(BadInput, match="--hold"):
        ensure_hold_is_valid(hold)


def test_good_hold() -> None:
    assert ensure_hold_is_valid("2.5") == 2.5


def test_unknown_region_names_the_choices() -> None:
    with pytest.raises(BadInput, match="region-a, region-b"):
        ensure_region_is_valid("region-c", Topology.default())


def test_bad_input_is_one_line_and_exit_2() -> None:
    result = CliRunner().invoke(app, ["call", "--region", "mars", "--hold", "5"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert lines == ["error: unknown region 'mars'; choose one of: region-a, region-b"]


def test_load_fleet_is_sized_from_the_profile() -> None:
    from lab.load import default_max_concurrent

    assert default_max_concurrent(5, 10) == 87  # 50 in flight on average, plus four sigma and slack
    assert default_max_concurrent(0.1, 1) == 10  # never fewer than the slack above a trickle
    assert default_max_concurrent(200, 600) == 400
