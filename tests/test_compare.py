"""Verdicts and tolerances."""

from __future__ import annotations

import math

from jvp_cli.compare import compare, tolerances


def test_agree_and_max_diff() -> None:
    c = compare("vjp", (10.0, 34.0, 42.0), (10.0, 34.0 + 1e-9, 42.0), 1e-7, 1e-7)
    assert c.status == "agree"
    assert c.max_abs_diff == abs((34.0 + 1e-9) - 34.0)
    assert c.worst == (1,)


def test_disagree_beyond_tolerance() -> None:
    c = compare("vjp", (1.0, 2.0), (1.0, 2.001), 1e-7, 1e-7)
    assert c.status == "disagree"
    assert not c.agree


def test_relative_tolerance_scales_with_reference() -> None:
    assert compare("j", (1e9,), (1e9 + 50,), 1e-7, 0.0).agree  # 50 <= 1e-7 * 1e9
    assert not compare("j", (1e9,), (1e9 + 200,), 1e-7, 0.0).agree


def test_nan_is_never_agree() -> None:
    c = compare("j", ((math.nan, 1.0),), ((math.nan, 1.0),), 1e-7, 1e-7)
    assert c.status == "undefined"
    assert c.undefined == ((0, 0),)
    inf = compare("j", (math.inf,), (math.inf,), 1e-7, 1e-7)
    assert inf.status == "undefined"


def test_disagreement_outranks_undefined() -> None:
    c = compare("j", (math.nan, 1.0), (0.0, 2.0), 1e-7, 1e-7)
    assert c.status == "disagree"


def test_default_tolerances() -> None:
    assert tolerances("float64", None, None) == (1e-7, 1e-7)
    assert tolerances("float32", None, 0.5) == (1.3e-6, 0.5)
