# Copyright: (c) 2026, dataops.prefect_fargate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Keep the Python code Jinja compiles for a template, across Ansible's forked task workers.

ansible-core 2.21 compiles every template and conditional it renders, every time: it keeps no compiled
templates, and each task runs in a worker forked from the controller that exits after the task. A no-op
``site.yml`` compiles about 3000 templates that way (parse, generate Python, ``compile()``), a fifth of its
time on 2 cores.

``install()`` wraps the two entry points of ansible-core's Jinja environment that compile a template from
its text, ``compile`` (templates) and ``compile_expression`` (conditionals, ``assert``), with a cache of the
compiled code in a folder (``marshal``, as ``.pyc`` files and Jinja's own bytecode cache keep it). The key
is the sha256 of everything the compiled code depends on: the template text, the environment's syntax
settings and extensions, Ansible's compile-time options (backslash escaping, embedded templates), and the
Jinja, ansible-core and Python versions. A hit hands the code to ``Template.from_code`` exactly as Jinja's
``from_string`` does with freshly compiled code; a miss compiles as before and stores the result.

What stays as it was: Ansible decides whether a string may be templated (data trust) before it asks for
a compile, so the cache never changes what is templated; compile errors are never cached; and with
ansible-core's template debugging on, nothing is cached. On another ansible-core minor version, or when
the environment lacks the entry points, ``install()`` changes nothing and returns False.
"""

from __future__ import annotations

import contextvars
import hashlib
import importlib.util
import os
import sys

from ansible_collections.dataops.prefect_fargate.plugins.plugin_utils.forkserver import (
    bound_code_cache,
    load_code,
    store_code,
)

# ansible-core minor versions whose AnsibleEnvironment was read for this: the inputs of its compile.
SUPPORTED_ANSIBLE = ("2.21.",)
LIMIT = 20000  # entries (a no-op site.yml compiles ~800 distinct templates); emptied above it
# Environment attributes the lexer, parser or code generator read.
SYNTAX_FIELDS = (
    "block_start_string", "block_end_string", "variable_start_string", "variable_end_string",
    "comment_start_string", "comment_end_string", "line_statement_prefix", "line_comment_prefix",
    "trim_blocks", "lstrip_blocks", "newline_sequence", "keep_trailing_newline", "optimized", "is_async",
    "autoescape",
)

_capture: contextvars.ContextVar[list | None] = contextvars.ContextVar("template_code_capture", default=None)
_installed: dict[str, str] = {}


def supported(ansible_version: str) -> bool:
    return ansible_version.startswith(SUPPORTED_ANSIBLE)


def install(folder: str) -> bool:
    """Cache compiled templates in ``folder`` for this process and the workers it forks from now on."""
    try:
        import jinja2
        from ansible.release import __version__ as ansible_version
        from ansible._internal._templating import _jinja_bits
        from jinja2.environment import TemplateExpression
        from jinja2.utils import internalcode
    except ImportError:
        return False
    environment_class = getattr(_jinja_bits, "AnsibleEnvironment", None)
    compile_context = getattr(_jinja_bits, "_TemplateCompileContext", None)
    template_config = getattr(_jinja_bits, "_TemplateConfig", None)
    if not supported(ansible_version) or None in (environment_class, compile_context, template_config):
        return False
    if not _private_folder(folder):
        return False
    if _installed:  # already wrapped in this process: only the folder changes
        _installed["folder"] = folder
        return True
    bound_code_cache(folder, LIMIT)
    _installed["folder"] = folder

    versions = "\0".join((jinja2.__version__, ansible_version, sys.version, importlib.util.MAGIC_NUMBER.hex()))
    original_compile = environment_class.compile
    original_compile_expression = environment_class.compile_expression
    memo: dict[str, object] = {}

    def key(env, kind: str, source: str, extra: tuple) -> str:
        context = compile_context.current(optional=True)
        parts = (
            kind, source, repr(extra), repr(tuple(getattr(env, name, None) for name in SYNTAX_FIELDS)),
            repr(sorted(env.extensions)), repr(env.finalize is not None), repr(type(env).__qualname__),
            repr(env.code_generator_class.__module__ + "." + env.code_generator_class.__qualname__),
            repr(bool(context and context.escape_backslashes)), repr(template_config.allow_embedded_templates),
            versions,
        )
        return hashlib.sha256("\0\1".join(parts).encode("utf-8", "surrogatepass")).hexdigest()

    def lookup(digest: str):
        code = memo.get(digest)
        if code is None:
            code = load_code(os.path.join(_installed["folder"], digest))
            if code is not None:
                memo[digest] = code
        return code

    def remember(digest: str, code) -> None:
        memo[digest] = code
        store_code(_installed["folder"], digest, code)

    @internalcode
    def compile(self, source, name=None, filename=None, raw=False, defer_init=False):  # noqa: A001 - Jinja's name
        cacheable = isinstance(source, str) and not raw and not self._debuggable_template_source
        if cacheable:
            digest = key(self, "template", source, (name, filename, defer_init))
            code = lookup(digest)
            if code is not None:
                return code
        code = original_compile(self, source, name, filename, raw, defer_init)
        if cacheable:
            remember(digest, code)
        elif (captured := _capture.get()) is not None and not raw:
            captured.append(code)
        return code

    def compile_expression(self, source, undefined_to_none=True):
        # Jinja parses the expression into a tree and compiles the tree; the code is keyed by the text.
        if self._debuggable_template_source or not isinstance(source, str):
            return original_compile_expression(self, source, undefined_to_none)
        digest = key(self, "expression", source, ())
        code = lookup(digest)
        if code is not None:
            template = self.template_class.from_code(self, code, self.make_globals(None), None)
            return TemplateExpression(template, undefined_to_none)
        captured: list = []
        token = _capture.set(captured)
        try:
            expression = original_compile_expression(self, source, undefined_to_none)
        finally:
            _capture.reset(token)
        if len(captured) == 1:
            remember(digest, captured[0])
        return expression

    environment_class.compile = compile
    environment_class.compile_expression = compile_expression
    return True


def _private_folder(folder: str) -> bool:
    """Create ``folder`` (0700) or accept it only when it is this user's and nobody else can write to it:
    code read from it is run."""
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        info = os.stat(folder)
    except OSError:
        return False
    return info.st_uid == os.getuid() and not info.st_mode & 0o022
