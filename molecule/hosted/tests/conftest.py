"""Marks a test whose call failed (item.failed), so its fixtures can keep artifacts (test_hosted_ui.py's screenshot)."""

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        item.failed = True
