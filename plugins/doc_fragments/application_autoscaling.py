# -*- coding: utf-8 -*-
# Copyright: dataops.prefect_fargate contributors
# Apache License 2.0 (see LICENSE)
"""Shared documentation of the options that name one Application Auto Scaling scalable target."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  service_namespace:
    description: Namespace of the scalable resource.
    type: str
    default: ecs
  resource_id:
    description: Identifier of the scalable resource, C(service/<cluster>/<service>) for an ECS service.
    type: str
    required: true
  scalable_dimension:
    description: The scalable dimension.
    type: str
    default: ecs:service:DesiredCount
"""
