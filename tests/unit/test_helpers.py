"""The test helpers themselves (tests/helpers.py)."""

from __future__ import annotations

import pytest

from tests.helpers import skip_or_fail


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
