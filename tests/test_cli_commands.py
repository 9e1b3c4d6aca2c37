"""One command line: `evalharness <command>` dispatch, help, exit codes, the shared parser."""

import subprocess
import sys

import pytest

from evalharness.commands import COMMANDS, dispatch
from evalharness.commands.assignments import AssignmentError, as_overrides, parse_assignments
from evalharness.paths import PROJECT_ROOT


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300
    )


def test_assignments_read_spaces_commas_and_both():
    expected = {"resize": "cv2_linear", "colour": "bgr", "meanstd": "half"}
    assert parse_assignments(["resize=cv2_linear", "colour=bgr", "meanstd=half"]) == expected
    assert parse_assignments(["resize=cv2_linear,colour=bgr,meanstd=half"]) == expected
    assert parse_assignments(["resize=cv2_linear,colour=bgr", "meanstd=half"]) == expected
    assert parse_assignments("resize=cv2_linear") == {"resize": "cv2_linear"}
    assert parse_assignments(None) == {} and parse_assignments(["", ","]) == {}
    # a value may itself hold '=' (model.weights=/a=b.onnx); the key never does
    assert parse_assignments(["model.weights=/m/a=b.onnx"]) == {"model.weights": "/m/a=b.onnx"}
    assert as_overrides({"decoder": "pil", "resize": "cv2_area"}) == [
        "decoder=pil",
        "resize=cv2_area",
    ]


@pytest.mark.parametrize(
    "items,message",
    [
        (["colour"], "expected factor=value, got 'colour'"),
        (["=bgr"], "expected factor=value, got '=bgr'"),
        (["colour=bgr", "colour=rgb"], "'colour' given twice ('bgr' and 'rgb')"),
    ],
)
def test_assignment_mistakes_say_which_item(items, message):
    with pytest.raises(AssignmentError) as e:
        parse_assignments(items)
    assert str(e.value) == message


def test_every_tool_reads_factor_lists_with_the_one_parser(monkeypatch):
    from evalharness.commands import assignments, explain, parity, report

    class Parsed(Exception):
        pass

    seen = []

    def spy(items):  # the one parser, as each command looks it up when it runs
        seen.append(items)
        raise Parsed

    monkeypatch.setattr(assignments, "parse_assignments", spy)
    for main, argv in (
        (explain.main, ["/no/such/run", "--a", "colour=bgr"]),
        (report.main, ["/no/such/run", "--a", "colour=bgr"]),
        (parity.main, ["--a", "colour=bgr"]),
    ):
        with pytest.raises(Parsed):
            main(argv)
    assert seen == [["colour=bgr"]] * 3
    # parity's factor lists become overrides, one per assignment, commas or spaces alike
    assert as_overrides(parse_assignments(["decoder=pil,resize=cv2_linear", "colour=bgr"])) == [
        "decoder=pil",
        "resize=cv2_linear",
        "colour=bgr",
    ]


def test_help_lists_every_command_and_the_exit_codes():
    r = run("-m", "evalharness", "--help")
    assert r.returncode == 0, r.stderr
    for name in COMMANDS:
        assert f"\n  {name} " in r.stdout, name
    assert "exit codes:" in r.stdout
    for code in ("0  done", "1  a gate failed", "2  a mistake"):
        assert code in r.stdout
    assert "evalharness +sweep=preproc_ablation" in r.stdout  # the sweep is still the default
    assert "resize: " in r.stdout and "pil_bilinear" in r.stdout  # the groups and options


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_has_help_with_an_example(name, capsys):
    with pytest.raises(SystemExit) as e:
        dispatch([name, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: evalharness {name} ")
    assert "example" in out and f"evalharness {name} " in out.split("example", 1)[1]


def test_an_unknown_command_is_one_line_with_the_closest(capsys):
    with pytest.raises(SystemExit) as e:
        dispatch(["explian", "results/x"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: unknown command 'explian'")
    assert "did you mean 'explain'?" in err[0]


def test_overrides_go_to_hydra_untouched(monkeypatch):
    # anything that is not a command goes, as given, to the sweep (Hydra's app), not exiting
    from evalharness.commands import sweep

    given = []
    monkeypatch.setattr(sweep, "main", given.append)
    argvs = ([], ["+sweep=preproc_ablation"], ["backend=onnxruntime"], ["~x"], ["-m"])
    for argv in argvs:
        assert dispatch(list(argv)) is None
    assert given == list(argvs)


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["compare", "/nonexistent/a.csv", "/nonexistent/b.csv"], "not found"),
        (["findings", "/nonexistent/run"], "not found: is this a finished run dir?"),
        (["parity", "--a", "decoder=pli"], "unknown decoder 'pli' (did you mean 'pil'?)"),
        (["explain", "/nonexistent/run", "--b", "colour"], "expected factor=value"),
    ],
)
def test_a_users_mistake_in_any_command_is_one_line_and_exit_2(argv, needle, capsys):
    with pytest.raises(SystemExit) as e:
        dispatch(argv)
    assert e.value.code == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("error: ") and needle in err[0], err


def test_the_command_runs_as_a_user_types_it():
    r = run("-m", "evalharness", "compare", "--help")
    assert r.returncode == 0 and r.stdout.startswith("usage: evalharness compare")


@pytest.mark.parametrize("command", ["explain", "compare"])
def test_the_module_entry_points_keep_working(command, monkeypatch, capsys):
    """`python -m evalharness explain --help` (the package's __main__, as a user runs it)."""
    import runpy

    monkeypatch.setattr(sys, "argv", ["evalharness", command, "--help"])
    monkeypatch.delitem(sys.modules, "evalharness.__main__", raising=False)  # run it fresh
    with pytest.raises(SystemExit) as e:
        runpy.run_module("evalharness", run_name="__main__", alter_sys=True)
    assert e.value.code == 0 and "usage:" in capsys.readouterr().out


@pytest.mark.parametrize(
    "command,args,message",
    [
        ("parity", ["--a", "decoder=nope", "--n", "2"], "unknown decoder 'nope'"),
        ("verify", ["backend=nope"], "unknown backend 'nope'"),
        ("report", ["/no/such/run"], "/no/such/run"),
        ("explain", ["/no/such/run"], "/no/such/run"),
    ],
)
def test_python_dash_m_of_a_command_is_one_line_too(command, args, message):
    """`python -m evalharness parity ...` handles mistakes as the `evalharness` script does."""
    r = run("-m", "evalharness", command, *args)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
