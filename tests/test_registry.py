import pytest

from uqcompress.registry import Registry, UnknownNameError


def test_unknown_name_lists_choices_in_one_line():
    r = Registry("model")
    r.register("b", object())
    r.register("a", object())
    with pytest.raises(UnknownNameError) as e:
        r.get("resnet5")
    msg = str(e.value)
    assert msg == "unknown model 'resnet5'; choose one of: a, b"
    assert "\n" not in msg


def test_register_decorator_and_duplicate_refused():
    r = Registry("quant")

    @r.register("x")
    def f():
        return 1

    assert r.get("x") is f and "x" in r and r.names() == ["x"]
    with pytest.raises(ValueError, match="registered twice"):
        r.register("x", lambda: 2)


@pytest.mark.parametrize("module, registry, name", [
    ("uqcompress.models", "MODELS", "small_cnn"),
    ("uqcompress.data", "DATASETS", "mnist"),
    ("uqcompress.compress", "SCHEMES", "int8"),
    ("uqcompress.uncertainty", "SCORERS", "msp"),
    ("uqcompress.selection", "SELECTORS", "coverage"),
    ("uqcompress.outputs", "SOURCES", "lm_eval"),
    ("uqcompress.outputs", "SOURCES", "arrays"),
])
def test_registries_are_keyed_by_config_names(module, registry, name):
    """Every registry key has a YAML of the same name in its config group, and vice versa for defaults."""
    import importlib
    from pathlib import Path

    reg = getattr(importlib.import_module(module), registry)
    assert name in reg
    group = {"model": "model", "data": "data", "quant": "quant", "uncertainty": "uncertainty",
             "selector": "selector", "outputs": "outputs"}[reg.kind]
    conf = Path(__file__).resolve().parents[1] / "uqcompress" / "conf" / group
    yaml_names = {p.stem for p in conf.glob("*.yaml")}
    assert name in yaml_names
    # every YAML in the group names a registered implementation
    import yaml

    for p in conf.glob("*.yaml"):
        n = yaml.safe_load(p.read_text())["name"]
        assert n in reg or n == p.stem, f"{p} names unregistered '{n}'"
