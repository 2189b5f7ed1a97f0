"""Walk the README's commands: each one runs on this machine, or says what it needs.

    PYTHONPATH=. .venv/bin/python scripts/walk_readme.py --list            # every command and its mark
    PYTHONPATH=. .venv/bin/python scripts/walk_readme.py --run --out walk  # run them in README order

A command is a line (with its ``\\`` continuations or heredoc) of a ``bash`` block, a whole ``python`` block, or an
inline span that starts with ``.venv/bin/``, ``PYTHONPATH=``, ``python -m uqcompress`` or ``make``. A command that
cannot run on a fresh machine as written carries ``needs:`` in its comment (``# needs: your CSV files``) or in the
sentence around an inline span ("needs a CUDA machine" is written ``(needs: a CUDA machine)``); every other command is
run, in README order, from the repository root (``--run``: meant for a fresh clone with an empty
``UQCOMPRESS_CACHE``), and ``--out`` gets ``walk.json`` and ``walk.md`` (command, exit status, seconds, last line).
``multirun/DATE/TIME``, ``SWEEP_DIR`` and ``DIR`` are replaced by the newest sweep folder the walk made, ``python`` by
``.venv/bin/python`` (the README's inline spans assume the venv is active).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INLINE_START = (".venv/bin/", "PYTHONPATH=", "python -m uqcompress", "make ")
PLACEHOLDERS = ("multirun/DATE/TIME", "SWEEP_DIR", "DIR")


@dataclass
class Command:
    """One README command: its text, README line, kind (bash/python/inline) and what it needs (None: runs)."""

    text: str
    line: int
    kind: str
    needs: str | None = None


def _needs(text: str, inline: bool = False) -> str | None:
    """What a ``needs:`` mark says: the rest of its comment line (inline: up to the closing parenthesis)."""
    m = re.search(r"needs:\s*([^)\n]+)" if inline else r"needs:\s*(.+)", text)
    return m.group(1).strip().rstrip(".;,") if m else None


def _bash_commands(lines: list[str], start: int) -> list[Command]:
    out, i = [], 0
    while i < len(lines):
        line = lines[i]
        if not line.strip() or line.lstrip().startswith("#"):
            i += 1
            continue
        first, parts = i, [line]
        heredoc = re.search(r"<<-?'?(\w+)'?", line)
        while (parts[-1].rstrip().endswith("\\") or "\n".join(parts).count('"') % 2) and i + 1 < len(lines):
            i += 1
            parts.append(lines[i])
        if heredoc:
            end = heredoc.group(1)
            while i + 1 < len(lines) and lines[i].strip() != end:
                i += 1
                parts.append(lines[i])
        text = "\n".join(parts)
        out.append(Command(text, start + first + 1, "bash", _needs(text)))
        i += 1
    return out


def extract(readme: Path = ROOT / "README.md") -> list[Command]:
    """Every command of ``readme`` in order.

    >>> cmds = extract(); all(c.kind in ("bash", "python", "inline") for c in cmds) and len(cmds) > 30
    True
    """
    lines = readme.read_text().splitlines()
    out: list[Command] = []
    i = 0
    while i < len(lines):
        fence = re.match(r"^```(\w*)", lines[i])
        if fence:
            lang, j = fence.group(1), i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            body = lines[i + 1:j]
            if lang in ("bash", "sh"):
                out += _bash_commands(body, i + 1)
            elif lang == "python":
                text = "\n".join(body)
                out.append(Command(text, i + 2, "python", _needs(text)))
            i = j + 1
            continue
        for m in re.finditer(r"`([^`]+)`", lines[i]):
            span = m.group(1)
            if span.startswith(INLINE_START) and "..." not in span and "<" not in span:
                context = lines[i][m.end():m.end() + 80]
                needs = _needs(context, inline=True) if context.lstrip().startswith("(needs:") else None
                out.append(Command(span, i + 1, "inline", needs))
        i += 1
    return out


@dataclass
class Outcome:
    """What running one command gave."""

    command: str
    line: int
    rc: int | None
    seconds: float
    last_line: str
    needs: str | None = None


def _newest_sweep(root: Path) -> str | None:
    runs = sorted((p for p in (root / "multirun").glob("*/*") if p.is_dir()), key=lambda p: p.stat().st_mtime)
    return str(runs[-1].relative_to(root)) if runs else None


def run(commands: list[Command], timeout: float) -> list[Outcome]:
    """Run every command without a ``needs:`` mark from the repository root, in order."""
    outcomes = []
    for c in commands:
        if c.needs:
            outcomes.append(Outcome(c.text, c.line, None, 0.0, "", c.needs))
            continue
        text = c.text
        sweep = _newest_sweep(ROOT)
        for p in PLACEHOLDERS:
            if sweep:
                text = re.sub(rf"(?<![\w/]){re.escape(p)}(?![\w/])", sweep, text)
        if c.kind == "python":
            argv = [str(ROOT / ".venv/bin/python"), "-c", text]
        else:
            text = re.sub(r"(^|\s)python ", r"\1.venv/bin/python ", text)
            argv = ["bash", "-c", text]
        print(f"--- README line {c.line}: {text.splitlines()[0][:110]}", flush=True)
        t0 = time.perf_counter()
        try:
            p = subprocess.run(argv, cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT)})
            rc, log = p.returncode, (p.stdout + p.stderr)
        except subprocess.TimeoutExpired as e:
            rc, log = 124, f"{(e.stdout or b'')!s}"[-2000:] + f"\ntimed out after {timeout:.0f} s"
        seconds = time.perf_counter() - t0
        tail = [ln for ln in log.strip().splitlines() if ln.strip()]
        outcomes.append(Outcome(text, c.line, rc, round(seconds, 1), tail[-1][:200] if tail else ""))
        print(f"    exit {rc} in {seconds:.0f} s: {outcomes[-1].last_line}", flush=True)
    return outcomes


def markdown(outcomes: list[Outcome]) -> str:
    """The walk as a markdown table."""
    rows = ["| README line | command | result | seconds | last line |", "|---|---|---|---|---|"]
    for o in outcomes:
        cmd = o.command.splitlines()[0].replace("|", "\\|")[:100]
        result = f"needs: {o.needs}" if o.needs else ("ok" if o.rc == 0 else f"exit {o.rc}")
        rows.append(f"| {o.line} | `{cmd}` | {result} | {o.seconds:.0f} | {o.last_line.replace('|', '/')[:90]} |")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--list", action="store_true", help="print every command and its mark")
    ap.add_argument("--run", action="store_true", help="run every command without a needs: mark")
    ap.add_argument("--from-line", type=int, default=0, help="start at this README line (resume a walk)")
    ap.add_argument("--lines", default=None, help="only these README lines, comma-separated (rerun a few)")
    ap.add_argument("--skip", type=int, action="append", default=[],
                    help="README line of a command run elsewhere (e.g. make test: CI runs it); recorded as skipped")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per command")
    ap.add_argument("--out", type=Path, default=None, help="folder for walk.json and walk.md")
    a = ap.parse_args(argv)
    commands = [c for c in extract() if c.line >= a.from_line]
    if a.lines:
        wanted = {int(x) for x in a.lines.split(",")}
        commands = [c for c in commands if c.line in wanted]
    for c in commands:
        if c.line in a.skip:
            c.needs = c.needs or "run separately (--skip)"
    if a.list or not a.run:
        for c in commands:
            print(f"{c.line:4d} {c.kind:6s} {'needs: ' + c.needs if c.needs else 'runs'}: {c.text.splitlines()[0]}")
        return 0
    outcomes = run(commands, a.timeout)
    if a.out:
        a.out.mkdir(parents=True, exist_ok=True)
        (a.out / "walk.json").write_text(json.dumps([asdict(o) for o in outcomes], indent=1))
        (a.out / "walk.md").write_text(markdown(outcomes))
    failed = [o for o in outcomes if o.rc not in (None, 0)]
    print(f"{len(outcomes)} commands: {sum(o.rc == 0 for o in outcomes)} ran, "
          f"{sum(o.needs is not None for o in outcomes)} marked with what they need, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
