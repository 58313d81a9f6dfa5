"""warm_workers: the controller's objects are frozen before each task, and its own cycles still freed."""

from __future__ import annotations

import gc
import weakref

from ansible_collections.dataops.prefect_fargate.plugins.callback.warm_workers import CallbackModule


class Cycle:
    def __init__(self):
        self.me = self


def callback(collect_every: int) -> CallbackModule:
    plugin = CallbackModule()
    plugin._plugin_options = {"collect_every": collect_every}  # what set_options() leaves when Ansible loads it
    return plugin


def test_objects_are_frozen_before_each_task_and_unfrozen_at_the_end():
    plugin = callback(collect_every=1000)
    try:
        plugin.v2_playbook_on_task_start(None, False)
        assert gc.get_freeze_count() > 0  # what a forked worker's collections no longer walk
        kept = [object() for _ in range(10)]
        plugin.v2_playbook_on_handler_task_start(None)
        assert gc.get_freeze_count() >= 10 and kept
    finally:
        plugin.v2_playbook_on_stats(None)
    assert gc.get_freeze_count() == 0


def test_the_controllers_own_garbage_cycles_are_still_collected():
    plugin = callback(collect_every=3)
    try:
        garbage = Cycle()
        gone = weakref.ref(garbage)
        plugin.v2_playbook_on_task_start(None, False)  # task 1: the cycle is frozen with the rest
        del garbage
        gc.collect()
        assert gone() is not None  # frozen: not collected
        plugin.v2_playbook_on_task_start(None, False)
        plugin.v2_playbook_on_task_start(None, False)  # task 3: unfreeze, collect, freeze
        assert gone() is None
    finally:
        plugin.v2_playbook_on_stats(None)


def test_builtin_jinja_plugins_are_loaded_before_each_task():
    from ansible.plugins.loader import filter_loader, test_loader

    plugin = callback(collect_every=1000)
    try:
        for loader in (filter_loader, test_loader):
            loader._clear_caches()  # what ansible-core does when a role adds a plugin folder
        plugin.v2_playbook_on_task_start(None, False)
        # loaded here, in the controller, so the worker forked next inherits them
        assert "ansible.builtin.to_json" in filter_loader._cached_non_collection_wrappers
        assert "ansible.builtin.match" in test_loader._cached_non_collection_wrappers
    finally:
        plugin.v2_playbook_on_stats(None)
