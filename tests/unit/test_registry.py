import pytest

from fmlab.registry import Registry, UnknownNameError


def test_register_get_and_names():
    reg: Registry[int] = Registry("widget")

    @reg.register("b")
    def b():
        return 2

    reg.add("a", 1)
    assert reg.get("a") == 1 and reg.get("b") is b
    assert reg.names() == ["a", "b"] and "a" in reg and len(reg) == 2


def test_unknown_name_suggests_close_matches():
    reg: Registry[int] = Registry("study")
    reg.add("grokking", 1)
    reg.add("scaling", 2)
    with pytest.raises(UnknownNameError) as e:
        reg.get("grokkin")
    message = str(e.value)
    assert "Did you mean 'grokking'" in message and "scaling" in message
    assert isinstance(e.value, KeyError)


def test_duplicate_registration_is_refused():
    reg: Registry[int] = Registry("thing")
    reg.add("x", 1)
    reg.add("x", 1)  # the same object again is harmless (module re-import)
    with pytest.raises(ValueError, match="already registered"):
        reg.add("x", 2)


def test_remove():
    reg: Registry[int] = Registry("thing")
    reg.add("x", 1)
    assert reg.remove("x") == 1 and "x" not in reg
    with pytest.raises(UnknownNameError):
        reg.remove("x")
