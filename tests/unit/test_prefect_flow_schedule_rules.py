"""Schedule and name rules of the prefect_flow catalogue (issue #15 part 1): cron fields within their ranges,
timezones the zone database knows, Prefect's banned characters in deployment and pool names."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("prefect_flow_rules", REPO / "roles/prefect_flow/filter_plugins/prefect_flow.py")
flt = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(flt)


@pytest.mark.parametrize("cron", ["0 6 * * *", "*/15 * * * *", "0 7 * * 1", "0 0 1 JAN *", "30 2 * * MON-FRI",
                                  "0 0,12 1-15 */2 0", "0 6 * * 7", "@daily", "5 4 ? * SUN"])
def test_valid_cron_expressions_pass(cron):
    assert flt.cron_error(cron) == ""


@pytest.mark.parametrize(("cron", "why"), [
    ("0 6 * *", "5-field"), ("0 6 * * * *", "5-field"), ("61 6 * * *", "minute"), ("0 24 * * *", "hour"),
    ("0 6 0 * *", "day of month"), ("0 6 * 13 *", "month"), ("0 6 * * 8", "day of week"),
    ("*/0 * * * *", "step"), ("0 6 * * FUNDAY", "day of week"), ("0 6-30 * * *", "hour"),
])
def test_bad_cron_expressions_are_refused_with_the_field(cron, why):
    assert why in flt.cron_error(cron)


@pytest.mark.parametrize(("name", "ok"), [("UTC", True), ("Australia/Sydney", True), ("America/Argentina/Buenos_Aires", True),
                                          ("Etc/GMT+10", True), ("Australia/Sydny", False), ("AEST", False),
                                          ("Mars Time", False), ("", False)])
def test_timezones_are_checked_against_the_zone_database(name, ok):
    assert flt.timezone_ok(name) is ok


@pytest.mark.parametrize(("name", "bad"), [("daily", ""), ("daily v2", ""), ("daily/v2", "/"), ("50%", "%"),
                                           ("a&b", "&"), ("<x>", "<"), ("", "non-empty"), ("  ", "non-empty")])
def test_prefect_names_refuse_the_banned_characters(name, bad):
    error = flt.prefect_name_error(name)
    assert (bad in error) if bad else error == ""


def test_the_catalogue_reports_a_cron_out_of_range_and_a_misspelt_timezone():
    entry = {"name": "elt", "source_dir": str(REPO / "flow_app/gainers_elt"), "entrypoint": "gainers_elt/flow.py:top_gainers_elt",
             "deployment_name": "daily&nightly",
             "schedules": [{"cron": "61 6 * * *"}, {"cron": "0 6 * * *", "timezone": "Europe/Londn"}]}
    errors = flt.catalogue_errors([entry])
    assert any("schedules[0].cron has '61' in the minute field" in e for e in errors), errors
    assert any("schedules[1].timezone" in e and "Europe/Londn" in e for e in errors), errors
    assert any("deployment_name must not contain" in e and "&" in e for e in errors), errors
