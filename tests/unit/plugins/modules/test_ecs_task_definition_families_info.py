"""ecs_task_definition_families_info: families by prefix (paginated), then their ACTIVE revisions."""

from __future__ import annotations

from unittest import mock

from ansible_collections.dataops.prefect_fargate.plugins.modules import ecs_task_definition_families_info as mod

PREFIX = "prefect_elt-dev-ecs_"


def test_lists_every_page_and_only_active_revisions_of_matching_families():
    ecs = mock.MagicMock()
    ecs.list_task_definition_families.side_effect = [
        {"families": [PREFIX + "a"], "nextToken": "t"},
        {"families": [PREFIX + "b", "prefect_elt-dev-ecs-other_c"]},  # a looser match from the API is dropped
    ]
    arn = "arn:aws:ecs:ap-southeast-2:210987654321:task-definition/{}:{}"
    ecs.list_task_definitions.side_effect = lambda familyPrefix, status, aws_retry, **kw: {
        "taskDefinitionArns": [arn.format(familyPrefix, 1), arn.format(familyPrefix, 2)]}
    families, arns = mod.find(ecs, PREFIX)
    assert families == [PREFIX + "a", PREFIX + "b"]
    assert arns == [arn.format(PREFIX + f, r) for f in "ab" for r in (1, 2)]
    assert ecs.list_task_definition_families.call_args_list[1].kwargs == {
        "familyPrefix": PREFIX, "status": "ACTIVE", "nextToken": "t", "aws_retry": True}
    assert all(c.kwargs["status"] == "ACTIVE" and c.kwargs["aws_retry"] for c in ecs.list_task_definitions.call_args_list)


def test_nothing_found():
    ecs = mock.MagicMock()
    ecs.list_task_definition_families.return_value = {"families": []}
    assert mod.find(ecs, PREFIX) == ([], [])
    ecs.list_task_definitions.assert_not_called()
