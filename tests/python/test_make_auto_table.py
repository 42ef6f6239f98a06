"""tools/make_auto_table.py: the C++ rules it writes say what its fit chose."""

import importlib.util
import os

import pytest

TOOL = os.path.join(os.path.dirname(__file__), "..", "..", "tools", "make_auto_table.py")


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("make_auto_table", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def grouped_one_shot_rule(conds):
    point = {"ratio": 1.5, "work": 1000000}
    return {"class": ("kConvBwdData", (2, 3), "kGrouped", "kOneShot"), "conds": conds,
            "covered": [point]}


def test_a_fitted_bound_and_the_work_floor_both_reach_the_table(tool):
    # The fit's work <= hi, then the floor work >= lo that with_work_floor adds: one range. The
    # table once kept only the floor, sending every larger problem to oneDNN.
    conds = tool.with_work_floor((("work", None, 2134600),), [{"work": 1552320}])
    rule = grouped_one_shot_rule(conds)
    text = tool.cpp_rule(rule)
    assert ".work = {776160, 2134600}" in text
    assert "work<=2134600 work>=776160" in text
    # The fit's own test agrees with the range written.
    point = {"op": "kConvBwdData", "call": "kOneShot", "kernel": 3, "groups": "kGrouped"}
    assert tool.matches(rule, dict(point, work=2000000))
    assert not tool.matches(rule, dict(point, work=3000000))
    assert not tool.matches(rule, dict(point, work=700000))


def test_one_sided_conditions_keep_the_other_side_open(tool):
    text = tool.cpp_rule(grouped_one_shot_rule((("ic", None, 115), ("work", 2039184, None))))
    assert ".ic = {0, 115}" in text
    assert ".work = {2039184, kNoLimit}" in text
