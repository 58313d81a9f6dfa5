"""Every molecule scenario has its test file, so `make test` runs it (one file per scenario)."""

from __future__ import annotations

from tests.helpers.molecule_scenario import REPO, SCENARIOS


def test_every_scenario_has_its_test_file():
    assert SCENARIOS, "no molecule/*/molecule.yml found"
    missing = [name for name in SCENARIOS
               if f'run_scenario("{name}")' not in _read(REPO / "tests" / "molecule" / f"test_scenario_{name}.py")]
    assert not missing, f"add tests/molecule/test_scenario_<name>.py calling run_scenario for: {missing}"


def _read(path):
    return path.read_text() if path.exists() else ""
