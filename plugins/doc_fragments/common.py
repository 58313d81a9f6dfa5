# -*- coding: utf-8 -*-
# Copyright: dataops.prefect_fargate contributors
# Apache License 2.0 (see LICENSE)
"""Shared documentation of every module of the collection: the author and the check/diff mode attributes.

Pick one variable per module; a module's own ``attributes`` entries override the keys they name
(ansible-core merges a fragment's attributes under the module's), so a module that describes its
check or diff mode in its own words keeps them.

- ``dataops.prefect_fargate.common``: writes, full check mode, full diff mode.
- ``dataops.prefect_fargate.common.no_diff``: full check mode, no diff.
- ``dataops.prefect_fargate.common.read_only``: read-only modules (nothing to diff).
"""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
author:
  - Prefect Fargate maintainers (@dataops)
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying the target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
"""

    NO_DIFF = r"""
author:
  - Prefect Fargate maintainers (@dataops)
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying the target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
"""

    READ_ONLY = r"""
author:
  - Prefect Fargate maintainers (@dataops)
attributes:
  check_mode:
    support: full
    description: Read-only; runs the same in check mode.
  diff_mode:
    support: none
    description: Nothing changes, so there is no diff.
"""
