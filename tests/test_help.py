"""``--help`` is generated from the YAMLs: every group, choice and run setting has a description there."""
from omegaconf import OmegaConf

from uqcompress.help import CONF, choice_description, groups, help_text, line_comments


def test_every_group_choice_and_setting_is_described_in_its_yaml():
    top = line_comments(CONF / "config.yaml")
    missing = [f"config.yaml defaults entry '{g}'" for g in groups() if not top.get(f"defaults.{g}")]
    missing += [f"conf/{g}/{n}.yaml" for g, names in groups().items() for n in names
                if not choice_description(CONF / g / f"{n}.yaml")]
    conf = OmegaConf.load(CONF / "config.yaml")
    keys = [k for k in conf if k not in ("defaults", "hydra")]
    raw = OmegaConf.to_container(conf)  # unresolved: ${now:...} resolves only inside Hydra
    keys += [f"{k}.{sub}" for k in keys if isinstance(raw[k], dict) for sub in raw[k]]
    missing += [f"config.yaml setting '{k}'" for k in keys if not top.get(k)]
    assert not missing, "add a comment (it is the --help text): " + "; ".join(missing)


def test_help_text_lists_everything_with_values_of_the_composed_config():
    cfg = OmegaConf.create({"seed": 7, "quant": {"name": "int4_weight_only", "group_size": 64}})
    text = help_text(cfg, {"quant": "int4_weight_only"}, width=100)
    for group, names in groups().items():
        assert f"\n{group}: " in text
        for n in names:
            assert n in text
    assert "* int4_weight_only" in text and "seed=7" in text
    assert "quant.group_size=64" in text and "inputs per scale/zero-point group" in text


def test_cli_help_shows_descriptions_and_the_chosen_options(cli):
    r = cli("quant=int4_weight_only", "selector.target=0.8", "--help")
    assert r.returncode == 0, r.stderr[-2000:]
    out = r.stdout
    flat = " ".join(out.split())  # descriptions wrap to the terminal width
    assert "* int4_weight_only" in out and "* small_cnn" in out
    assert choice_description(CONF / "quant" / "int8.yaml") in flat
    assert "selector.target=0.8" in out and "quant.group_size=32" in out
    assert "$UQCOMPRESS_CACHE" in out  # a literal $ in a comment survives Hydra's template
    assert "--multirun,-m" in out  # Hydra's own flags are still listed
