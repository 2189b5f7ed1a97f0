"""Config typos on the command line: one line with the close match, exit 2 (not Hydra's list and exit 1)."""
import pytest

from uqcompress.config_errors import choice_error, key_error


@pytest.mark.parametrize("args, want", [
    (["quant=int9"], "quant=int9: no such choice (did you mean quant=int8?)"),
    (["selector.targt=0.8"], "selector 'coverage' has no option 'targt' (did you mean selector.target?)"),
    (["selector=risk_guarantee", "selector.delt=0.1"], "selector 'risk_guarantee' has no option 'delt' "
                                                       "(did you mean selector.delta?)"),
    (["limt=100"], "the config has no option 'limt' (did you mean limit?)"),
    (["--multirun", "quant=int8,int9"], "quant=int9: no such choice"),  # refused before any job runs
])
def test_a_typo_is_one_line_with_the_close_match_and_exit_2(cli, tmp_path, args, want):
    r = cli(*args, f"hydra.run.dir={tmp_path / 'run'}", f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert r.returncode == 2, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("uqcompress: error: ") and want in lines[0], r.stderr
    assert not (tmp_path / "run").exists() and not list(tmp_path.glob("sweep/*/results.json"))


def test_lines_without_a_close_match_list_the_choices():
    line = choice_error("quant", "zzzz")
    assert "did you mean" not in line and "int8, int8_dynamic" in line
    assert "its options: batch_size, repeats, threads, warmup" in key_error("latency.zzzz", [])
