"""--torch FILE.py:NAME: the user's own torch code against the 30-digit reference."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import assert_close

HERE = Path(__file__).parent / "usercode"
SWISH = str(HERE / "swish.py")
SEED = str(HERE / "seed.py")
SEED_SYSTEM = "x1**2+2*x2+x3; x1+x2**3+x3**2; 2*x1+x2**2+x3**3"


def _sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def swish(x: float) -> float:
    return x * _sig(x)


def dswish(x: float) -> float:  # by hand: s + x s (1 - s)
    s = _sig(x)
    return s + x * s * (1 - s)


def line_of(path: str, text: str, after: str | None = None) -> int:
    """The 1-based line of the first `text` in the file (after the line holding `after`)."""
    lines = Path(path).read_text().splitlines()
    start = 0
    if after is not None:
        start = next(i for i, ln in enumerate(lines) if after in ln)
    return next(i for i, ln in enumerate(lines) if i >= start and text in ln) + 1


def run_swish(vjp, name: str, at: str = "0.5", *extra: str, code: int = 0):
    return vjp(
        "x*sigmoid(x)", "--torch", f"{SWISH}:{name}", "--at", at, "--json", *extra, code=code
    )


def test_correct_function_agrees(vjp) -> None:
    out = run_swish(vjp, "Swish.apply").json()
    c = out["code"]
    assert c["error"] is None and c["agree"] and c["status"] == "agree"
    assert c["file"].endswith("swish.py") and c["name"] == "Swish.apply"
    assert c["kind"] == "Function.apply"
    assert_close(c["forward"]["values"], [swish(0.5)], 1e-14, 1e-14)
    assert_close(c["forward"]["reference"], [swish(0.5)], 1e-14, 1e-14)
    for q in ("jacobian", "vjp"):
        assert c[q]["agree"] and c[q]["status"] == "agree"
    assert_close(c["jacobian"]["torch"], [[dswish(0.5)]], 1e-13, 1e-13)
    assert_close(c["vjp"]["sympy"], [dswish(0.5)], 1e-13, 1e-13)
    assert c["jvp"] is None  # no --u
    assert out["agree"] and out["status"] == "agree"


def test_class_name_uses_apply(vjp) -> None:
    out = run_swish(vjp, "Swish").json()
    assert out["code"]["kind"] == "Function.apply" and out["code"]["agree"]


def test_backward_wrong_by_a_factor(vjp) -> None:
    out = run_swish(vjp, "SwishTwice.apply", code=1).json()
    c = out["code"]
    assert c["forward"]["agree"]  # the forward is right
    assert c["vjp"]["status"] == "disagree" and c["vjp"]["builtin_status"] == "agree"
    assert out["vjp"]["agree"]  # torch's built-in autograd of the formula agrees
    assert_close(c["vjp"]["torch"], [2 * dswish(0.5)], 1e-12, 1e-12)
    assert_close(c["vjp"]["max_abs_diff"], dswish(0.5), 1e-12, 1e-12)
    assert any("the fault is in your code" in n for n in c["notes"])
    assert out["agree"] is False and out["status"] == "disagree"


def test_backward_wrong_by_a_factor_rich(vjp) -> None:
    r = vjp("x*sigmoid(x)", "--torch", f"{SWISH}:SwishTwice.apply", "--at", "0.5", code=1)
    assert "your code" in r.stdout and "built-in torch" in r.stdout
    assert "✘ disagree" in r.stdout and f"{2 * dswish(0.5):.12g}" in r.stdout


def test_backward_wrong_only_for_negative_x(vjp) -> None:
    assert run_swish(vjp, "SwishNegative.apply", "0.5").json()["code"]["agree"]
    out = run_swish(vjp, "SwishNegative.apply", "-0.5", code=1).json()
    assert out["code"]["vjp"]["status"] == "disagree"
    assert_close(out["code"]["vjp"]["torch"], [_sig(-0.5)], 1e-13, 1e-13)  # the dropped term


def test_sample_finds_the_negative_branch_and_shrinks_it(vjp) -> None:
    """One point (x = 0.5) passes; --sample sweeps the box, finds the x < 0 branch where the
    backward drops x*s*(1-s), and shrinks the first failure to a simple negative x."""
    r = run_swish(vjp, "SwishNegative.apply", "0.5", "--sample", "300", "--seed", "4",
                  "--json", code=1)  # fmt: skip
    out = json.loads(r.stdout)
    assert out["code"]["status"] == "agree"  # at --at itself
    sample = out["sample"]
    assert "your code" in sample["candidates"] and sample["n"] == 300
    # the backward is wrong exactly where x < 0 (the dropped term x*s*(1-s) is far above the
    # tolerance there), so the disagreements are the points drawn below 0: the seeded draw,
    # counted here independently
    import numpy as np

    drawn = np.random.default_rng(4).uniform(-2.0, 2.0, size=(300, 1))[:, 0]
    assert sample["disagree"] == int((drawn < 0).sum()) and sample["agree"] == int(
        (drawn > 0).sum()
    )
    first = sample["first_failure"]
    x = first["x"]
    assert x < 0 and x == round(x, 1) and first["candidate"] == "your code"
    # the reference there by hand, and what the wrong backward gives (s only)
    assert first["reference"][0] == pytest.approx(dswish(x), rel=1e-12)
    assert first["values"][0] == pytest.approx(_sig(x), rel=1e-12)


def test_wrong_number_of_gradients_names_the_line(vjp) -> None:
    r = run_swish(vjp, "SwishExtra.apply", code=1)
    err = r.json()["code"]["error"]
    assert "incorrect number of gradients" in err["message"]
    assert err["file"].endswith("swish.py")
    assert err["line"] == line_of(SWISH, "return grad * (s + x * s * (1 - s)), grad")
    assert err["where"] == "SwishExtra.backward" and err["phase"] == "jacobian"
    assert r.json()["code"]["status"] == "error"
    assert "internal error" not in r.stderr
    text = vjp("x*sigmoid(x)", "--torch", f"{SWISH}:SwishExtra.apply", "--at", "0.5", code=1)
    flat = " ".join(text.stdout.replace("│", " ").split())
    assert f"line {err['line']}, in SwishExtra.backward" in flat


def test_backward_that_raises_names_the_raise(vjp) -> None:
    err = run_swish(vjp, "Raises.apply", code=1).json()["code"]["error"]
    assert err["message"] == "ValueError: I forgot to write this"
    assert err["line"] == line_of(SWISH, 'raise ValueError("I forgot')


def test_forward_that_is_not_the_formula(vjp) -> None:
    c = run_swish(vjp, "TanhSwish.apply", code=1).json()["code"]
    assert c["forward"]["status"] == "disagree"
    assert_close(c["forward"]["values"], [0.5 * math.tanh(0.5)], 1e-14, 1e-14)
    assert c["jacobian"]["status"] == "disagree"
    assert any("does not compute the formula" in n for n in c["notes"])


@pytest.mark.parametrize("name", ["Detached.apply", "detached"])
def test_backward_never_called(vjp, name: str) -> None:
    err = run_swish(vjp, name, code=1).json()["code"]["error"]
    assert "backward never called" in err["message"] and err["file"].endswith("swish.py")


def test_forward_mode_not_defined_is_not_a_failure(vjp) -> None:
    out = run_swish(vjp, "Swish.apply", "0.5", "--u", "1").json()
    jvp = out["code"]["jvp"]
    assert jvp["status"] == "not-defined" and jvp["torch"] is None and jvp["agree"] is None
    assert "forward mode not defined by your Function" in jvp["note"]
    assert out["agree"] and out["code"]["status"] == "agree"


def test_forward_mode_checked_where_defined(vjp) -> None:
    out = run_swish(vjp, "SwishJvp.apply", "0.5", "--u", "2").json()
    assert out["code"]["jvp"]["status"] == "agree"
    assert_close(out["code"]["jvp"]["torch"], [2 * dswish(0.5)], 1e-13, 1e-13)


@pytest.mark.parametrize("name", ["f", "stacked", "Seed", "model"])
def test_seed_system_every_way(vjp, name: str) -> None:
    out = vjp(
        SEED_SYSTEM,
        "--torch",
        f"{SEED}:{name}",
        "--at",
        "1,2,3",
        "--v",
        "3,2,1",
        "--u",
        "1,0,0",
        "--json",
    ).json()
    c = out["code"]
    assert c["agree"], c
    assert c["forward"]["values"] == [8.0, 18.0, 33.0]  # 1+4+3, 1+8+9, 2+4+27
    assert c["vjp"]["torch"] == [10.0, 34.0, 42.0]  # the tutorial's v = (3, 2, 1)
    assert c["jacobian"]["torch"] == [[2.0, 2.0, 1.0], [1.0, 12.0, 6.0], [2.0, 4.0, 27.0]]
    assert c["jvp"]["torch"] == [2.0, 1.0, 2.0]  # first column
    assert c["kind"] == ("nn.Module" if name in ("Seed", "model") else "function")


def test_wrong_formula_in_plain_function(vjp) -> None:
    c = vjp(
        SEED_SYSTEM, "--torch", f"{SEED}:wrong", "--at", "1,2,3", "--v", "3,2,1", "--json", code=1
    ).json()["code"]
    assert c["forward"]["values"][1] == 1 + 4 + 9
    assert c["jacobian"]["worst"] == [1, 1]  # d f2 / d x2: 4 where it is 12


def test_wrong_number_of_outputs(vjp) -> None:
    err = vjp(SEED_SYSTEM, "--torch", f"{SEED}:two", "--at", "1,2,3", "--json", code=1).json()[
        "code"
    ]["error"]
    assert "returned 2 output elements" in err["message"] and "have 3" in err["message"]
    assert err["line"] == line_of(SEED, "def two")


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        (f"{HERE / 'broken.py'}:f", "broken on purpose"),
        (f"{SEED}:nothing", "has no 'nothing'"),
        (f"{SEED}:Seed.nothing", "has no 'Seed.nothing'"),
        (f"{SEED}:not_callable", "not callable"),
        (f"{HERE / 'missing.py'}:f", "no such file"),
        (SEED, "has no ':NAME'"),
        (f"{SEED}:1bad", "not a name"),
    ],
)
def test_bad_file_or_name_is_exit_2_one_line(vjp, spec: str, says: str) -> None:
    r = vjp("x1+x2+x3", "--torch", spec, "--at", "1,2,3", code=2)
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: --torch") and says in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_import_error_names_the_line(vjp) -> None:
    r = vjp("x", "--torch", f"{HERE / 'broken.py'}:f", "--at", "1", code=2)
    assert f"line {line_of(str(HERE / 'broken.py'), 'raise RuntimeError')}" in r.stderr


def test_syntax_error_is_exit_2_before_running(vjp, tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import sys\ndef f(x:\n    return x\n")
    r = vjp("x", "--torch", f"{bad}:f", "--at", "1", code=2)
    assert "line 2" in r.stderr and "SyntaxError" in r.stderr


def test_torch_needs_a_point(vjp) -> None:
    r = vjp("x", "--torch", f"{SWISH}:Swish.apply", code=2)
    assert "--torch needs a point" in r.stderr


def test_prints_in_user_code_keep_json_valid(vjp) -> None:
    r = run_swish(vjp, "noisy")
    assert r.json()["code"]["agree"]  # stdout is one JSON object
    assert "hello from the user's code" in r.stderr


def test_prints_at_fd_level_keep_json_valid_subprocess() -> None:
    vjp_bin = str(Path(sys.executable).with_name("vjp"))
    env = {k: v for k, v in os.environ.items() if k != "JVP_CLI_NO_FORK"}
    p = subprocess.run(
        [vjp_bin, "x*sigmoid(x)", "--torch", f"{SWISH}:noisy", "--at", "0.5", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["code"]["agree"]
    assert "raw write to fd 1" in p.stderr and "hello from the user's code" in p.stderr


def test_code_only_fd_is_the_reference(vjp) -> None:
    out = vjp("--torch", f"{SEED}:f", "--at", "1,2,3", "--v", "3,2,1", "--json").json()
    assert out["reference"] == "fd" and out["variables"] == ["x1", "x2", "x3"]
    assert out["variables_from"] == "signature"
    hand = [[2.0, 2.0, 1.0], [1.0, 12.0, 6.0], [2.0, 4.0, 27.0]]
    fd = out["fd"]["jacobian"]
    for row, erow, hrow in zip(fd["values"], fd["error"], hand, strict=True):
        for x, e, h in zip(row, erow, hrow, strict=True):
            assert abs(x - h) <= 10 * e + 1e-12 * (1 + abs(h))
    assert "error estimate" in out["fd"]["tolerance"]
    assert out["code"]["vjp"]["torch"] == [10.0, 34.0, 42.0] and out["agree"]


def test_code_only_numbered_variables_and_wrong_backward(vjp) -> None:
    out = vjp("--torch", f"{SEED}:anonymous", "--at", "1,2,3", "--json").json()
    assert out["variables"] == ["x1", "x2", "x3"] and out["variables_from"] == "numbered"
    bad = vjp("--torch", f"{SWISH}:SwishTwice.apply", "--at", "0.5", "--json", code=1).json()
    assert bad["variables"] == ["x"] and bad["code"]["vjp"]["status"] == "disagree"
    assert_close(bad["fd"]["jacobian"]["values"], [[dswish(0.5)]], 1e-9, 1e-9)


def test_code_only_rich_says_fd_is_the_reference(vjp) -> None:
    r = vjp("--torch", f"{SWISH}:Swish.apply", "--at", "0.5")
    assert "FD (reference)" in r.stdout and "error estimate" in r.stdout


def test_evaluate_at_hook_returns_plain_floats() -> None:
    from jvp_cli import usercode

    loaded = usercode.load(usercode.parse_spec(f"{SWISH}:SwishNegative.apply"))
    good = usercode.evaluate_at(loaded, [()], [0.5], [1.0], [1.0], 1)
    assert good.error is None and good.jvp_status == "not-defined"
    assert type(good.vjp[0]) is float and abs(good.vjp[0] - dswish(0.5)) < 1e-13
    bad = usercode.evaluate_at(loaded, [()], [-0.5], [1.0], None, 1)
    assert abs(bad.jacobian[0][0] - _sig(-0.5)) < 1e-13
    extra = usercode.load(usercode.parse_spec(f"{SWISH}:SwishExtra.apply"))
    failed = usercode.evaluate_at(extra, [()], [0.5], None, None, 1)
    assert failed.error is not None and failed.phase == "jacobian" and failed.jacobian is None


def test_user_code_is_bounded_by_timeout(vjp) -> None:
    r = vjp("x", "--torch", f"{SWISH}:hang", "--at", "1", "--timeout", "3", code=2)
    assert "stopped after 3 s (--timeout)" in r.stderr and r.stdout == ""


def test_code_only_error_is_a_result_and_fd_still_shown(vjp) -> None:
    out = vjp("--torch", f"{SWISH}:SwishExtra.apply", "--at", "0.5", "--json", code=1).json()
    assert "incorrect number of gradients" in out["code"]["error"]["message"]
    assert out["code"]["jacobian"]["status"] == "error" and out["v"] == [1.0]
    assert_close(out["fd"]["jacobian"]["values"], [[dswish(0.5)]], 1e-9, 1e-9)
    assert out["status"] == "disagree" and out["agree"] is False


def test_torch_with_points_is_refused(vjp) -> None:
    r = vjp("x", "--torch", f"{SWISH}:Swish", "--points", "-", code=2, input="x\n1\n")
    assert "--torch checks one point" in r.stderr


def test_user_code_that_calls_os_exit_is_its_failure(vjp) -> None:
    r = vjp("x", "--torch", f"{SWISH}:exits", "--at", "1", "--json", code=1)
    err = r.json()["code"]["error"]
    assert err["message"] == "your code called os._exit(0)"
    assert err["line"] == line_of(SWISH, "os._exit(0)")
    assert "internal error" not in r.stderr


def test_gradient_of_the_wrong_shape_names_the_return(vjp) -> None:
    r = vjp(
        "x*sigmoid(x)",
        "--torch",
        f"{SWISH}:SwishShape.apply",
        "--at",
        "x=[1,2,3]",
        "--json",
        code=1,
    )
    err = r.json()["code"]["error"]
    assert "invalid gradient" in err["message"] and "[3]" in err["message"]
    assert err["line"] == line_of(SWISH, "return (grad * (s + x * s * (1 - s)))[:2]")
    assert err["where"] == "SwishShape.backward"
    assert r.json()["jacobian"]["agree"]  # the built-in side of the tensor formula is right


def test_sample_with_torch_needs_no_point(vjp) -> None:  # type: ignore[no-untyped-def]
    """--sample draws its own points, so --torch with --sample takes no --at (the same sweep
    as with one: the seeded draw, counted here)."""
    import numpy as np

    r = vjp("x*sigmoid(x)", "--torch", f"{SWISH}:SwishNegative.apply", "--sample", "200",
            "--seed", "3", "--json", code=1)  # fmt: skip
    sample = json.loads(r.stdout)["sample"]
    drawn = np.random.default_rng(3).uniform(-2.0, 2.0, size=(200, 1))[:, 0]
    assert sample["candidates"] == ["torch", "your code"]
    assert sample["disagree"] == int((drawn < 0).sum())
    assert sample["first_failure"]["x"] < 0
    # --fd still needs a point (it differences the formula there)
    bad = vjp("x*sigmoid(x)", "--torch", f"{SWISH}:Swish.apply", "--sample", "5", "--fd", code=2)
    assert "needs a point" in bad.stderr and bad.stderr.count("Error:") == 1
