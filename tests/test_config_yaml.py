"""Config values are read as a scientist writes them."""

from pdeml.config import apply_override, parse_yaml


def test_exponent_floats_without_a_dot_are_numbers():
    # YAML 1.1 (PyYAML's default) reads 1e-3 as the string '1e-3'.
    assert apply_override({}, "module.lr=1e-3") == {"module": {"lr": 0.001}}
    assert parse_yaml("[1e-3, -2E+5, 1.5e2, 7]") == [0.001, -200000.0, 150.0, 7]
    assert parse_yaml("x1e3") == "x1e3" and parse_yaml("1e") == "1e"
