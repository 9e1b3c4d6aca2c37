import pytest

from evalharness.registry import Registry, UnknownNameError


def test_unknown_name_lists_choices_and_closest_match():
    reg: Registry[int] = Registry("decoder library")
    reg.register("pil")(1)
    reg.register("opencv")(2)
    with pytest.raises(UnknownNameError) as e:
        reg.get("opencvv")
    msg = str(e.value)
    assert msg == "unknown decoder library 'opencvv' (did you mean 'opencv'?); valid: opencv, pil"


def test_double_registration_is_refused():
    reg: Registry[int] = Registry("x")
    reg.register("a")(1)
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("a")(2)
