"""Planning and running `branch` (spec §5.6) without mitmproxy."""

from __future__ import annotations

import pytest

from mitm_datakit.errors import ConfigError
from mitm_datakit.runtime import SKIPPED

from .support import plan_of, run_config


def _branch_config(**branch: object) -> dict[str, object]:
    return {
        "nodes": [
            {"name": "COND", "type": "jq", "jq": "true"},
            {"name": "B", "type": "branch", "input": "COND", **branch},
            {"name": "X", "type": "jq", "jq": "1"},
            {"name": "Y", "type": "jq", "jq": "2"},
        ]
    }


@pytest.mark.parametrize(
    ("branch", "message"),
    [
        ({"then": ["NOPE"]}, 'Unknown node "NOPE" in branch list "then"'),
        ({"then": ["B"]}, "a branch cannot list itself"),
        ({"then": ["X"], "else": ["X"]}, 'node "X" is listed in both "then" and "else"'),
        ({"then": ["request"]}, 'Unknown node "request" in branch list "then"'),
        ({"then": []}, "length must be at least 1"),
        ({"then": ["X"], "output": "Y"}, 'a branch node does not accept "output"'),
    ],
    ids=["unknown", "itself", "both-lists", "implicit", "empty", "output"],
)
def test_invalid_branch_lists(branch, message):
    with pytest.raises(ConfigError) as raised:
        plan_of(_branch_config(**branch))
    assert any(message in str(issue) and issue.node_name == "B" for issue in raised.value.issues), raised.value


def test_branch_without_input_is_rejected():
    config = _branch_config(then=["X"])
    del config["nodes"][1]["input"]  # type: ignore[index]
    with pytest.raises(ConfigError, match=r"node #2 \(B\), field 'input': required field missing"):
        plan_of(config)


def test_listing_a_provider_of_the_branch_is_a_cycle():
    config = _branch_config(then=["COND"])
    with pytest.raises(ConfigError, match="circular dependency"):
        plan_of(config)


def test_listed_nodes_wait_for_the_branch():
    plan = plan_of(_branch_config(then=["X"], **{"else": ["Y"]}))
    branch = plan.node("B")
    assert branch.id in plan.node("X").providers and branch.id in plan.node("Y").providers
    assert branch.controls == {"then": (plan.ids["X"],), "else": (plan.ids["Y"],)}


@pytest.mark.parametrize(("condition", "runs", "skipped"), [("true", "X", "Y"), ("false", "Y", "X")])
async def test_selected_list_runs_and_the_other_is_skipped(condition, runs, skipped):
    config = _branch_config(then=["X"], **{"else": ["Y"]})
    config["nodes"][0]["jq"] = condition  # type: ignore[index]
    run = await run_config(config)
    plan = run.plan
    assert run.values[plan.ids[runs]] in (1, 2)
    assert run.status[plan.ids[skipped]] == SKIPPED
    assert run.plan_status == "PLAN_COMPLETE"


async def test_dependents_of_skipped_nodes_are_skipped_but_unlisted_nodes_run():
    config = _branch_config(then=["X"])
    config["nodes"][0]["jq"] = "false"  # type: ignore[index]
    config["nodes"].append({"name": "AFTER_X", "type": "jq", "input": "X", "jq": "."})  # type: ignore[union-attr]
    run = await run_config(config)
    ids = run.plan.ids
    assert run.status[ids["X"]] == run.status[ids["AFTER_X"]] == SKIPPED
    assert run.values[ids["Y"]] == 2  # in neither list: runs as if there were no branch


async def test_null_condition_fails():
    config = _branch_config(then=["X"])
    config["nodes"][0]["jq"] = "null"  # type: ignore[index]
    run = await run_config(config)
    assert run.failure is not None and run.failure.node.name == "B"
    assert run.failure.message == "branch condition must be a boolean, got null"
