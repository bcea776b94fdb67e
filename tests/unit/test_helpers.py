"""The test helpers themselves (tests/helpers.py)."""

from __future__ import annotations

import math

import pytest

from tests.helpers import loss_band, skip_or_fail


def test_skip_or_fail_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="needs root"):
        skip_or_fail("needs root")


def test_skip_or_fail_skips_when_ci_is_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception):
        skip_or_fail("needs tc")


@pytest.mark.parametrize("value", ["1", "true"])
def test_skip_or_fail_fails_under_ci(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match=r"needs nft.*CI is set"):
        skip_or_fail("needs nft")


def test_skip_or_fail_module_level_skip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception) as info:
        skip_or_fail("no pjsua2", allow_module_level=True)
    assert info.value.allow_module_level


pytest_plugins = ["pytester"]


def test_a_whole_run_reports_skip_or_fail_by_ci(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(
        "from tests.helpers import skip_or_fail\ndef test_needs_root():\n    skip_or_fail('needs root')\n"
    )
    monkeypatch.delenv("CI", raising=False)
    pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(skipped=1)
    monkeypatch.setenv("CI", "1")
    pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(failed=1)


def _steady(rate: int, seconds: int) -> list[float]:
    return [s + (i + 0.5) / rate for s in range(seconds) for i in range(rate)]


def test_loss_band_of_a_steady_run_is_poisson() -> None:
    band = loss_band(_steady(2, 60), window_s=11.0)
    assert band.rate_per_s == pytest.approx(2.0)
    assert band.dispersion == pytest.approx(2.0)  # no observed spread: Poisson's sqrt, not zero
    assert band.sigma == pytest.approx(math.sqrt(22.0))
    assert band.half_width == 15


def test_loss_band_widens_with_a_bursty_run() -> None:
    bursty = [float(s) + i * 0.01 for s in range(0, 60, 5) for i in range(10)]  # 10 every 5 s: 2/s on average
    steady = loss_band(_steady(2, 60), window_s=11.0)
    band = loss_band(bursty, window_s=11.0)
    assert band.rate_per_s == pytest.approx(2.0, rel=0.1)
    assert band.dispersion > 2 * band.rate_per_s and band.half_width > steady.half_width


def test_loss_band_has_a_floor() -> None:
    assert loss_band([], window_s=10.0).half_width == 3
    assert loss_band([5.0], window_s=10.0).half_width == 3
    assert loss_band(_steady(2, 60), window_s=0.0).half_width == 3
    assert loss_band(_steady(1, 60), window_s=0.5).half_width == 3


def test_loss_band_passes_the_fresh_machine_run_and_still_fails_clear_errors() -> None:
    band = loss_band(_steady(2, 60), window_s=11.0)  # 2 CPS, a lag of ~11 s: predicted 22
    assert band.holds(25, 22)  # what failed against a fixed +-2
    assert not band.holds(44, 22)  # twice the prediction: the lag accounting is wrong
    assert not band.holds(2, 22)  # almost nothing lost while the lag said 11 s were in flight
    assert not band.holds(22, 0)  # a loss with no lag at all
