"""Known third-party chatter is gone where uqcompress triggers it, and only that chatter."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CHATTER = ("Failed to load", "Detected no triton", "is an Enum subclass", "TypedStorage is deprecated",
           "quantized tensor creation functions", "past_key_values")


def run_python(code: str) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-W", "always", "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def test_text_models_import_transformers_and_torchao_quietly():
    pytest.importorskip("transformers")
    r = run_python("import logging, sys; logging.basicConfig()\n"
                   "from uqcompress.models.text import import_transformers\n"
                   "import_transformers()\n"
                   "import logging; logging.getLogger('torchao').warning('Failed to load x.so: later, not ours')\n"
                   "print('torchao' in sys.modules)")
    assert r.returncode == 0, r.stderr[-2000:]
    lines = [l for l in r.stderr.splitlines() if any(c in l for c in CHATTER)]
    assert lines == ["WARNING:torchao:Failed to load x.so: later, not ours"]  # the filter ends with the import


def test_loading_a_file_of_quantized_tensors_is_quiet(tmp_path):
    save = ("import torch, warnings\n"
            "with warnings.catch_warnings():\n"
            "    warnings.simplefilter('ignore')\n"
            "    q = torch.quantize_per_tensor(torch.arange(4.0), 0.5, 0, torch.qint8)\n"
            f"torch.save({{'q': q}}, {str(tmp_path / 'q.pt')!r})\n")
    assert run_python(save).returncode == 0
    bare = run_python(f"import torch; torch.load({str(tmp_path / 'q.pt')!r}, weights_only=True)")
    assert "TypedStorage is deprecated" in bare.stderr  # what torch itself says (once per process)
    ours = run_python("from pathlib import Path\n"
                      "from uqcompress.predictor import _load_plain\n"
                      f"print(_load_plain(Path({str(tmp_path / 'q.pt')!r}))['q'].int_repr().tolist())")
    assert ours.returncode == 0, ours.stderr[-2000:]
    assert ours.stdout.strip() == "[0, 2, 4, 6]"
    assert not [l for l in ours.stderr.splitlines() if any(c in l for c in CHATTER)], ours.stderr
