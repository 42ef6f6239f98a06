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
    return {"class": ("kConvBwdData", (3, 3), "kGrouped", "kOneShot", (1, 1)), "conds": conds,
            "covered": [point]}


def conv_point(ratio, op="kConvBwdData", kernel=3, stride=1, ic=64, oc=64, spatial=784,
               kernel_min=None):
    """A fit point: one measured dense plan at 2 threads, highway time / onednn time `ratio`."""
    kernel_min = kernel if kernel_min is None else kernel_min
    name = f"{op}_{kernel}x{kernel_min}_{stride}_{ic}_{oc}_{spatial}"
    return {"op": op, "kernel": kernel, "kernel_min": kernel_min, "groups": "kDense",
            "call": "kPlan", "ic": ic, "oc": oc,
            "spatial": spatial, "batch": 1, "stride": stride, "threads": 2,
            "work": ic * oc * spatial * kernel * kernel, "set": "s", "shape": name, "label": name,
            "ratio": ratio}


def test_a_fitted_bound_and_the_work_floor_both_reach_the_table(tool):
    # The fit's work <= hi, then the floor work >= lo that with_work_floor adds: one range. The
    # table once kept only the floor, sending every larger problem to oneDNN.
    conds = tool.with_work_floor((("work", None, 2134600),), [{"work": 1552320}])
    rule = grouped_one_shot_rule(conds)
    text = tool.cpp_rule(rule)
    assert ".work = {776160, 2134600}" in text
    assert "work<=2134600 work>=776160" in text
    assert ".stride = {1, 1}" in text  # the class's stride
    # The fit's own test agrees with the range written.
    point = {"op": "kConvBwdData", "call": "kOneShot", "kernel": 3, "groups": "kGrouped",
             "stride": 1}
    assert tool.matches(rule, dict(point, work=2000000))
    assert not tool.matches(rule, dict(point, work=3000000))
    assert not tool.matches(rule, dict(point, work=700000))
    assert not tool.matches(rule, dict(point, work=2000000, stride=2))


def test_one_sided_conditions_keep_the_other_side_open(tool):
    text = tool.cpp_rule(grouped_one_shot_rule((("ic", None, 115), ("work", 2039184, None))))
    assert ".ic = {0, 115}" in text
    assert ".work = {2039184, kNoLimit}" in text


def test_strides_are_classes_of_their_own(tool):
    # 3x3 layers at stride 1 (Winograd, backward data as a forward convolution) and at stride 2
    # (the phase kernels) run different code. oneDNN winning on narrow strided layers must not
    # send a narrow stride-1 layer no run measured to oneDNN: one class for both, the fit
    # isolated the corner by channels alone, and GoogLeNet's 3x3 96 -> 208 at stride 1, 1.6x
    # faster on highway, went to oneDNN that way.
    def point(stride, ic, ratio):
        return conv_point(ratio, op="kConvFwd", stride=stride, ic=ic)

    pts = [point(2, 32, 1.4), point(2, 64, 1.4), point(2, 256, 0.8), point(2, 512, 0.8),
           point(1, 256, 0.6), point(1, 512, 0.6)]
    rules = tool.fit(pts)
    assert len(rules) == 1
    for p in pts:
        assert tool.matches(rules[0], p) == (p["ratio"] > 1)
    assert not tool.matches(rules[0], point(1, 32, 1.0))  # unmeasured: stays on highway
    text = tool.cpp_rule(rules[0])
    assert ".stride = {2, kNoLimit}" in text
    assert " s>=2 " in text


def test_a_2x2_kernel_is_not_a_3x3_kernel(tool):
    # Backward data and the transposed convolution run 2x2 stride 2 (kernel = stride) as a 1x1
    # convolution and a shuffle, 3x3 stride 2 through the phase kernels: a rule fitted on strided
    # 3x3 layers sent UNet's 2x2/2 up-convolutions, 1.2-2.1x faster on highway, to oneDNN.
    def point(kernel, ic, ratio):
        return conv_point(ratio, kernel=kernel, stride=2, ic=ic)

    rules = tool.fit([point(3, 32, 1.4), point(3, 64, 1.4), point(3, 128, 1.4)])
    assert len(rules) == 1
    assert not tool.matches(rules[0], point(2, 64, 1.0))  # unmeasured: stays on highway
    assert ".kernel = {3, 3}" in tool.cpp_rule(rules[0])


def corner_points():
    """Backward data 3x3 points where oneDNN wins only with many input channels on a small map:
    no single threshold separates that corner (work ties across it)."""
    return [conv_point(1.5 if ic == 256 and spatial == 196 else 0.7, ic=ic, oc=oc,
                       spatial=spatial)
            for ic in (64, 256) for spatial in (196, 3136) for oc in (128, 512)]


def test_a_rule_narrows_its_class_by_two_thresholds(tool, monkeypatch):
    pts = corner_points()
    monkeypatch.setattr(tool, "MAX_DEPTH", 1)
    assert tool.fit(pts) == []  # one threshold cannot isolate the corner
    monkeypatch.setattr(tool, "MAX_DEPTH", 2)
    rules = tool.fit(pts)
    assert len(rules) == 1
    features = {c[0] for c in rules[0]["conds"]}
    assert {"ic", "spatial"} <= features
    for p in pts:  # the rule covers the corner and nothing else
        assert tool.matches(rules[0], p) == (p["ratio"] > 1)
    text = tool.cpp_rule(rules[0])
    assert ".ic = {129, kNoLimit}" in text  # the geometric midpoint of 64 and 256, + 1
    assert ".spatial = {0, 784}" in text  # of 196 and 3136


def test_a_run_rewrites_its_vendors_table_and_keeps_the_others(tool, tmp_path, monkeypatch):
    """write_table replaces the table of the machine's vendor and leaves another vendor's as it
    was; kTables lists both, in vendor order."""
    context = {"convkit_threads": 2, "load_avg": [0.5], "num_cpus": 2, "date": "2026-12-08T00:00"}
    rule = grouped_one_shot_rule((("ic", None, 115),))
    path = tmp_path / "auto_rules.cpp"
    monkeypatch.setattr(tool, "cpu_vendor", lambda: "GenuineIntel")
    tool.write_table([rule], [context], [str(tmp_path / "t2.json")], [], str(path))
    monkeypatch.setattr(tool, "cpu_vendor", lambda: "AuthenticAMD")
    tool.write_table([], [context], [str(tmp_path / "t2.json")], [], str(path))
    text = path.read_text()
    intel, amd = text.index("table GenuineIntel: begin"), text.index("table AuthenticAMD: begin")
    assert amd < intel  # vendor order
    assert "kRulesGenuineIntel[]" in text and ".ic = {0, 115}" in text[intel:]
    assert "never matches: no rule qualified" in text[amd:intel]
    assert '{"AuthenticAMD", kRulesAuthenticAMD, kSourceAuthenticAMD}' in text
    assert '{"GenuineIntel", kRulesGenuineIntel, kSourceGenuineIntel}' in text
    # A second run of the same vendor replaces its table: one section each.
    tool.write_table([rule], [context], [str(tmp_path / "t2.json")], [], str(path))
    text = path.read_text()
    assert text.count("table AuthenticAMD: begin") == 1 and text.count("kRulesGenuineIntel[]") == 1
    assert "never matches" not in text


def test_a_rule_can_single_out_kernels_of_unequal_sides(tool):
    """1x7 / 7x1 layers where onednn wins share the k>=6 class with square 7x7 layers where
    highway wins: the fit narrows the class by kernel_min, and the table carries the range."""
    pts = [conv_point(1.2, op="kConvFwd", kernel=7, kernel_min=1, ic=c, oc=c, spatial=289)
           for c in (128, 160, 192)]
    pts += [conv_point(0.7, op="kConvFwd", kernel=7, ic=c, oc=c, spatial=289) for c in (64, 96)]
    rules = tool.fit(pts)
    assert len(rules) == 1
    text = tool.cpp_rule(rules[0])
    assert ".kernel_min = {0, 2}" in text and "kernel_min<=2" in text  # cut at sqrt(1 * 7)
    assert all(tool.matches(rules[0], p) == (p["kernel_min"] == 1) for p in pts)


def test_a_steady_small_margin_qualifies_and_a_single_loss_does_not(tool):
    """Under the 1.15x margin a rule still qualifies when onednn is >= 1.08x faster over six shapes
    or more and slower on none; five shapes, or one shape slower on onednn, are not enough."""
    def points(ratios):
        return [conv_point(r, op="kConvFwd", kernel=7, kernel_min=1, ic=64 + 16 * i, oc=64,
                           spatial=289) for i, r in enumerate(ratios)]

    assert len(tool.fit(points([1.10] * 6))) == 1
    assert tool.fit(points([1.10] * 5)) == []
    assert tool.fit(points([1.12] * 5 + [0.99])) == []
