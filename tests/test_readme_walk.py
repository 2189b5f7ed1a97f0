"""The README walker (scripts/walk_readme.py) finds every command, whole, with what it needs."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("walk_readme", ROOT / "scripts" / "walk_readme.py")
walk = sys.modules["walk_readme"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(walk)


def test_multi_line_commands_stay_whole(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(
        "Intro `python -m uqcompress quant=int8` and `python -m uqcompress <run.overrides>` (a template).\n"
        "```bash\n"
        ".venv/bin/python - <<'EOF'\nprint(1)\nEOF\n"
        ".venv/bin/python -c \"\nimport torch\nprint(2)\"\n"
        ".venv/bin/python -m uqcompress a=1 \\\n    b=2   # needs: your files\n"
        "```\n"
        "```python\n# needs: your arrays\nres = f(x)\n```\n"
        "```\nan output block, not a command\n```\n")
    cmds = walk.extract(readme)
    assert [c.kind for c in cmds] == ["inline", "bash", "bash", "bash", "python"]
    assert cmds[1].text.endswith("EOF") and "print(1)" in cmds[1].text
    assert cmds[2].text.count("\n") == 2 and cmds[2].needs is None
    assert cmds[3].needs == "your files" and "b=2" in cmds[3].text
    assert cmds[4].needs == "your arrays"


def test_the_readme_commands_either_run_or_say_what_they_need():
    cmds = walk.extract()
    assert len(cmds) >= 38
    for c in cmds:
        # uqcompress is not on a package index: extras install from the clone
        assert "pip install 'uqcompress[" not in c.text and "pip install uqcompress[" not in c.text, c.line
        for user_file in ("reviews.csv", "my-model", "base.npz", "base_logits", "runs/base"):
            if user_file in c.text:
                assert c.needs, f"README line {c.line} uses {user_file} but has no 'needs:' mark"
