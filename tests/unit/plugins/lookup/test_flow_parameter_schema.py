"""The flow_parameter_schema lookup: Prefect's schema, cached by what it depends on."""

from __future__ import annotations

import json
import textwrap

import pytest
from ansible.errors import AnsibleLookupError

from ansible_collections.dataops.prefect_fargate.plugins.lookup import flow_parameter_schema as lookup_plugin

FLOW = '''
from prefect import flow


@flow
def digest(limit: int = 10, currency: str = "AUD"):
    """Top gainers.

    Args:
        limit: how many rows
    """
'''


def run(tmp_path, *terms):
    return lookup_plugin.schemas(list(terms), str(tmp_path / "flows"), str(tmp_path / "cache"))


@pytest.fixture
def flows(tmp_path):
    folder = tmp_path / "flows" / "pkg"
    folder.mkdir(parents=True)
    (folder / "flow.py").write_text(textwrap.dedent(FLOW))
    return folder


def test_the_schema_is_prefects_and_a_second_run_does_not_import_prefect(tmp_path, flows, monkeypatch):
    first = run(tmp_path, "pkg/flow.py:digest")[0]
    assert first["properties"]["limit"]["default"] == 10 and first["properties"]["currency"]["type"] == "string"
    assert len(list((tmp_path / "cache").glob("*.json"))) == 1

    def no_prefect(*_):
        raise AssertionError("Prefect imported although the flow did not change")
    monkeypatch.setattr(lookup_plugin, "derive_schema", no_prefect)
    assert run(tmp_path, "pkg/flow.py:digest")[0] == first


def test_a_changed_signature_or_a_changed_neighbour_derives_again(tmp_path, flows):
    run(tmp_path, "pkg/flow.py:digest")
    (flows / "flow.py").write_text(textwrap.dedent(FLOW).replace("limit: int = 10", "limit: int = 25"))
    assert run(tmp_path, "pkg/flow.py:digest")[0]["properties"]["limit"]["default"] == 25
    (flows / "types.py").write_text("X = 1\n")  # the signature may use a neighbour's types
    run(tmp_path, "pkg/flow.py:digest")
    assert len(list((tmp_path / "cache").glob("*.json"))) == 3


def test_an_unwritable_cache_only_turns_the_cache_off(tmp_path, flows):
    (tmp_path / "cache").write_text("a file where the folder should be")
    assert run(tmp_path, "pkg/flow.py:digest")[0]["properties"]["limit"]["default"] == 10


def test_a_corrupt_cache_entry_is_derived_again(tmp_path, flows):
    run(tmp_path, "pkg/flow.py:digest")
    entry = next((tmp_path / "cache").glob("*.json"))
    entry.write_text("{not json")
    assert run(tmp_path, "pkg/flow.py:digest")[0]["properties"]["limit"]["default"] == 10
    assert json.loads(entry.read_text())["properties"]["limit"]["default"] == 10


def test_a_missing_function_is_refused_with_the_entrypoint(tmp_path, flows):
    with pytest.raises(AnsibleLookupError, match="pkg/flow.py:nope"):
        run(tmp_path, "pkg/flow.py:nope")
