"""``python -m uqcompress --help``: what every config group, choice and option does, read from the YAMLs themselves.

Nothing here lists a group, a choice or an option by hand. The text is built when ``--help`` is asked, from
``conf/``:

- a group's description: the comment after its entry in the ``defaults`` list of ``conf/config.yaml``;
- a choice's description: the first sentence of the comment block at the top of its YAML (``conf/quant/int8.yaml``);
- an option's description: the comment at the end of its line (``seed: 0  # ...``), in ``config.yaml`` for the
  run settings and in the chosen YAML of each group for that group's options, with the value the overrides give.

Hydra prints it through ``conf/hydra/help/uqcompress.yaml``, whose template is ``${uqcompress_help:}``: the
resolver registered by :func:`register` (called by ``uqcompress.__main__`` before Hydra starts), which sees the
composed config, so ``python -m uqcompress quant=int4_weight_only --help`` shows int4's options.

The YAML comments are read line by line: PyYAML drops comments, and one line per key is all these files use
(ruamel.yaml would keep them, as a new dependency for these few lines).

Example:
    >>> from uqcompress.help import choice_description
    >>> choice_description(CONF / "ood" / "none.yaml")
    'No OOD set: OOD metrics are skipped.'
"""
from __future__ import annotations

import re
import shutil
import textwrap
from functools import lru_cache
from pathlib import Path
from typing import Any

CONF = Path(__file__).parent / "conf"
RESOLVER = "uqcompress_help"
_LINE = re.compile(r"^(?P<indent>\s*)(?P<dash>-\s+)?(?P<key>[A-Za-z_][\w/@.]*)\s*:(?P<value>.*?)"
                   r"(?:\s+#\s?(?P<comment>.*))?$")
_SENTENCE_END = re.compile(r"(?<!\be\.g\.)(?<!\bi\.e\.)(?<!\bal\.)(?<!\bvs\.)(?<!\betc\.)(?<=[.!?])\s+")


def _comment_block(path: Path) -> str:
    """The comment lines at the top of a YAML file, joined (up to an empty comment line or the first key)."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        s = line.strip()
        if not s.startswith("#"):
            break
        s = s.lstrip("#").strip()
        if not s:
            break
        lines.append(s)
    return " ".join(lines)


def choice_description(path: Path) -> str:
    """The first sentence of a YAML's leading comment ('' when it has none)."""
    block = _comment_block(path)
    return _SENTENCE_END.split(block, maxsplit=1)[0] if block else ""


@lru_cache(maxsize=None)
def line_comments(path: Path) -> dict[str, str]:
    """``{dotted.key: comment}`` for every key line of a YAML that ends in a comment (``defaults`` entries as
    ``defaults.<group>``); the ``hydra:`` section is left out."""
    out: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _LINE.match(line)
        if not m:
            continue
        indent = len(m["indent"]) + (len(m["dash"]) if m["dash"] else 0)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        key = ".".join([k for _, k in stack] + [m["key"]])
        if m["dash"] and stack and stack[-1][1] == "defaults":
            key = f"defaults.{m['key'].split('@')[0].removeprefix('override ').strip()}"
        if key.split(".")[0] == "hydra":
            continue
        if m["comment"]:
            out[key] = m["comment"].strip()
        if not m["value"].strip() and not m["dash"]:
            stack.append((indent, m["key"]))
    return out


def groups() -> dict[str, list[str]]:
    """``{group: [choice, ...]}`` of the folders in ``conf/`` (Hydra's own ``hydra/`` left out)."""
    return {d.name: sorted(p.stem for p in d.glob("*.yaml"))
            for d in sorted(CONF.iterdir()) if d.is_dir() and d.name != "hydra" and any(d.glob("*.yaml"))}


def _value(v: Any) -> str:
    from omegaconf import OmegaConf

    if OmegaConf.is_config(v):
        v = OmegaConf.to_container(v, resolve=False)
    if v is None:
        return "null"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_value(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    s = str(v)
    return repr(s) if ("\n" in s or s != s.strip() or not s) else s


def _rows(rows: list[tuple[str, str]], width: int, indent: int = 2) -> list[str]:
    """``name  description`` rows, the descriptions aligned and wrapped to ``width``."""
    if not rows:
        return []
    col = min(max(len(n) for n, _ in rows) + 2, 34)
    out = []
    for name, text in rows:
        lead = " " * indent + name
        pad = " " * (indent + col)
        if not text:
            out.append(lead)
            continue
        first = lead.ljust(indent + col) if len(lead) < indent + col else None
        wrapped = textwrap.wrap(text, max(30, width - indent - col))
        if first is None:
            out.append(lead)
            out += [pad + w for w in wrapped]
        else:
            out.append(first + wrapped[0])
            out += [pad + w for w in wrapped[1:]]
    return out


def _get(cfg: Any, dotted: str) -> Any:
    node = cfg
    for part in dotted.split("."):
        try:
            node = node[part]
        except Exception:
            return None
    return node


def help_text(cfg: Any = None, choices: dict[str, str] | None = None, width: int | None = None) -> str:
    """The help text; ``cfg`` is the composed config (values shown) and ``choices`` the chosen group options."""
    width = width or min(shutil.get_terminal_size((110, 24)).columns, 120)
    top = CONF / "config.yaml"
    comments = line_comments(top)
    choices = dict(choices or {})
    lines = [choice_description(top), "",
             "Usage: python -m uqcompress [GROUP=CHOICE ...] [KEY=VALUE ...]",
             "       python -m uqcompress --multirun quant=none,int8 selector.target=0.8,0.9   "
             "(a sweep: one job per combination)",
             "       python -m uqcompress.report multirun/DATE/TIME    "
             "(a sweep's tables, plots and report.html)",
             "       python -m uqcompress quant=int4_weight_only --help "
             "(this help with the options of that choice)", ""]
    lines.append("== Config groups: GROUP=CHOICE (* = chosen) ==")
    for group, names in groups().items():
        desc = comments.get(f"defaults.{group}", "")
        lines.append(f"{group}" + (f": {desc}" if desc else ""))
        rows = [(("* " if choices.get(group) == n else "  ") + n, choice_description(CONF / group / f"{n}.yaml"))
                for n in names]
        lines += _rows(rows, width, indent=2)
    lines += ["", "== Run settings: KEY=VALUE (current value) =="]
    settings = [(f"{k}={_value(_get(cfg, k))}" if cfg is not None else k, text)
                for k, text in comments.items() if not k.startswith("defaults.")]
    lines += _rows(settings, width)
    if cfg is not None and _get(cfg, "tune") is not None:  # python -m uqcompress.tune: its own two groups
        lines += ["", "== Tune run (python -m uqcompress.tune): tune.KEY=VALUE, budget.KEY=VALUE =="]
        lines += _rows([(f"{k}={_value(_get(cfg, k))}", text) for k, text in line_comments(CONF / "tune.yaml").items()
                        if k.split(".")[0] in ("tune", "budget") and "." in k], width)
    chosen = [(g, choices[g]) for g in groups() if choices.get(g) and (CONF / g / f"{choices[g]}.yaml").is_file()]
    if chosen:
        lines += ["", "== Options of the chosen configs: GROUP.OPTION=VALUE =="]
        for group, name in chosen:
            opts = line_comments(CONF / group / f"{name}.yaml")
            node = _get(cfg, group) if cfg is not None else None
            keys = [k for k in (list(node.keys()) if node is not None and hasattr(node, "keys") else opts)
                    if k != "name"]
            lines.append(f"{group}={name}" + ("" if keys else "  (no options)"))
            rows = [(f"{group}.{k}={_value(_get(node, k))}" if node is not None else f"{group}.{k}", opts.get(k, ""))
                    for k in keys]
            lines += _rows(rows, width)
    return "\n".join(lines)


def _resolve(*, _root_: Any) -> str:
    """The OmegaConf resolver behind ``${uqcompress_help:}``: help text for the composed config ``_root_``, with
    ``$`` escaped for Hydra's ``string.Template`` and its ``$FLAGS_HELP`` appended."""
    choices = {}
    try:
        choices = {str(k): str(v) for k, v in _root_.hydra.runtime.choices.items() if v is not None}
    except Exception:  # composed without Hydra's runtime node: show no choice as chosen
        pass
    text = help_text(_root_, choices).replace("$", "$$")
    return text + "\n\n== Hydra flags ==\n$FLAGS_HELP\n\nMore: README.md; Hydra's own options: --hydra-help"


def register() -> None:
    """Register ``${uqcompress_help:}`` (idempotent)."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver(RESOLVER):
        OmegaConf.register_new_resolver(RESOLVER, _resolve)
