"""template_code_cache: compiled templates are reused across processes, and nothing renders differently.

Each case runs in its own Python, as Ansible's forked workers do, so the class it patches stays out of the
test process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[4]

# Renders templates and expressions whose compiled code depends on more than the text: backslash escaping
# (Ansible's lexer option), a "#jinja2:" header (another environment), a filter, a conditional, a loop.
PROBE = textwrap.dedent(r"""
    import json, sys
    sys.path.insert(0, {collections!r})
    import jinja2.environment
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar, trust_as_template
    from ansible_collections.dataops.prefect_fargate.plugins.plugin_utils import template_code_cache

    folder, mode = sys.argv[1], sys.argv[2]
    installed = template_code_cache.install(folder) if mode != "off" else False
    generated = []
    generate = jinja2.environment.Environment._generate
    def counting_generate(self, *args, **kwargs):
        generated.append(1)
        if mode == "no-compile":
            raise AssertionError("compiled although cached")
        return generate(self, *args, **kwargs)
    jinja2.environment.Environment._generate = counting_generate

    templar = Templar(loader=DataLoader(), variables={{"x": 3, "name": "a_name", "items": [1, 2, 3]}})
    results = []
    for text, escape in [
        ("{{{{ 'a\\1' }}}}", True), ("{{{{ 'a\\1' }}}}", False),
        ("{{{{ name | regex_replace('^(.*)_name$', '\\1') }}}}", True),
        ("{{{{ name | regex_replace('^(.*)_name$', '\\1') }}}}", False),
        ("#jinja2:variable_start_string:'[[',variable_end_string:']]'\n[[ x * 2 ]] {{{{ x }}}}", True),
        ("{{% for i in items %}}{{{{ i + x }}}},{{% endfor %}}", True),
    ]:
        results.append(repr(templar.template(trust_as_template(text), escape_backslashes=escape)))
    results.append(repr(templar.evaluate_expression(trust_as_template("x + 1"))))
    results.append(repr(templar.evaluate_conditional(trust_as_template("x > 2 and name is match('a_')"))))
    print(json.dumps({{"installed": installed, "generated": len(generated), "results": results}}))
""").format(collections=str(REPO / ".collections"))


def probe(tmp_path: Path, folder: Path, mode: str = "on") -> dict:
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    proc = subprocess.run([sys.executable, str(script), str(folder), mode], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_second_process_renders_the_same_without_compiling(tmp_path):
    folder = tmp_path / "cache"
    plain = probe(tmp_path, folder, "off")
    first = probe(tmp_path, folder)
    assert first["installed"] is True
    assert first["results"] == plain["results"]
    assert first["generated"] > 0 and len(os.listdir(folder)) >= 8
    second = probe(tmp_path, folder, "no-compile")  # Jinja's code generator raises if it is called
    assert second["results"] == plain["results"]
    assert second["generated"] == 0


def test_the_key_holds_what_the_code_depends_on(tmp_path):
    results = probe(tmp_path, tmp_path / "cache")["results"]
    # the same text with and without backslash escaping compiles to different code
    assert results[0] != results[1] and results[2] != results[3]
    assert results[4] == "'6 {{ x }}'"  # the header's environment, not the default one
    assert results[5:] == ["'4,5,6,'", "4", "True"]


def test_a_folder_others_can_write_to_is_not_used(tmp_path):
    folder = tmp_path / "cache"
    folder.mkdir(mode=0o777)
    folder.chmod(0o777)  # the umask narrowed mkdir's mode
    result = probe(tmp_path, folder)
    assert result["installed"] is False
    assert os.listdir(folder) == []


@pytest.mark.parametrize("version, expected", [("2.21.5", True), ("2.21.0", True), ("2.22.0", False), ("2.20.3", False)])
def test_only_the_ansible_versions_it_was_checked_against(version, expected):
    sys.path.insert(0, str(REPO / ".collections"))
    from ansible_collections.dataops.prefect_fargate.plugins.plugin_utils import template_code_cache

    assert template_code_cache.supported(version) is expected


def test_a_cache_entry_that_is_not_code_is_compiled_again(tmp_path):
    import marshal

    folder = tmp_path / "cache"
    plain = probe(tmp_path, folder, "off")
    probe(tmp_path, folder)
    for entry in folder.iterdir():
        entry.write_bytes(marshal.dumps(42))  # unmarshals fine, but is no code
    again = probe(tmp_path, folder)
    assert again["results"] == plain["results"] and again["generated"] > 0
