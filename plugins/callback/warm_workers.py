# Copyright: (c) 2026, dataops.prefect_fargate contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: warm_workers
type: aggregate
short_description: Make the worker that Ansible forks for each task start warm
description:
  - Ansible forks a worker process from the controller for every task, and the worker exits after it. What
    the worker loads or compiles is lost with it, and what it inherits from the controller it pays for in
    copied pages. This callback prepares the controller before each task is queued, and changes no task,
    result or output.
  - B(Jinja plugins.) ansible-core loads its built-in filter and test plugins (every file under
    C(ansible/plugins/filter) and C(ansible/plugins/test)) the first time a template needs one, in the
    worker, so every task loaded them again. They are loaded once in the controller, and every worker
    inherits them.
  - B(Compiled templates.) ansible-core compiles every template and conditional anew in each worker. The
    compiled code is kept in O(template_cache_dir) (see C(plugins/plugin_utils/template_code_cache.py) for
    the key and what is never cached); only with ansible-core 2.21, which it was checked against.
  - B(Garbage collection.) C(gc.freeze()) before each task, as prefork servers do, so a worker's
    collections walk only what the worker allocated, not the controller's whole heap. Every
    O(collect_every) tasks the controller unfreezes, collects and freezes again, so its own garbage cycles
    are still freed.
  - On the 2-core development machine a no-op C(site.yml) took 12.2 s with all three against 15.0 s with
    the garbage collection alone.
author:
  - Prefect Fargate maintainers (@dataops)
options:
  collect_every:
    description: Tasks between two full collections of the controller's own garbage.
    type: int
    default: 64
    env:
      - name: DATAOPS_GC_COLLECT_EVERY
    ini:
      - section: callback_warm_workers
        key: collect_every
  template_cache:
    description: Keep compiled templates in O(template_cache_dir).
    type: bool
    default: true
    env:
      - name: DATAOPS_TEMPLATE_CACHE
    ini:
      - section: callback_warm_workers
        key: template_cache
  template_cache_dir:
    description:
      - Folder of the compiled templates, created C(0700). It is not used when another user owns it or
        others can write to it (the code in it is run).
      - Emptied when it holds more than 20000 entries.
    type: path
    default: ~/.ansible/dataops/template-code
    env:
      - name: DATAOPS_TEMPLATE_CACHE_DIR
    ini:
      - section: callback_warm_workers
        key: template_cache_dir
requirements:
  - enabled through C(callbacks_enabled) (this repository's C(ansible.cfg) enables it)
"""

import gc

from ansible.plugins.callback import CallbackBase
from ansible.plugins.loader import filter_loader, test_loader

from ansible_collections.dataops.prefect_fargate.plugins.plugin_utils import template_code_cache


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "dataops.prefect_fargate.warm_workers"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._tasks = 0
        self.template_cache = False  # installed (only read by tests and -vvv)

    def set_options(self, *args, **kwargs):
        super().set_options(*args, **kwargs)
        if self.get_option("template_cache"):
            self.template_cache = template_code_cache.install(self.get_option("template_cache_dir"))
            self._display.vvv(f"warm_workers: template code cache {'on' if self.template_cache else 'off'}")

    def _before_task(self) -> None:
        # all() loads the built-in (non-collection) Jinja plugins once; ansible-core empties that cache when a
        # play or role adds a plugin folder, so ask again before every task (a dict check when loaded).
        for loader in (filter_loader, test_loader):
            next(iter(loader.all()), None)
        self._tasks += 1
        if self._tasks % max(1, int(self.get_option("collect_every"))) == 0:
            gc.unfreeze()
            gc.collect()
        gc.freeze()

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._before_task()

    def v2_playbook_on_handler_task_start(self, task):
        self._before_task()

    def v2_playbook_on_stats(self, stats):
        gc.unfreeze()  # the run is over: leave the interpreter as it was
