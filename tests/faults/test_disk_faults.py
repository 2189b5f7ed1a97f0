"""Issue 16, case 7: disk and permission faults are one line naming the path and the cause.

Faults are real: a small tmpfs (a full disk) or a read-only bind mount in a user+mount namespace, and the user
``nobody`` for "permission denied" (root ignores file modes). Each test is skipped, naming what the platform lacks,
where that is not possible.

Before (main 2e17459): a full cache gave a 41-line traceback ending in ``RuntimeError: [enforce fail at
inline_container.cc:672] . unexpected pos 268992 vs 268888`` (torch.save; ``basic_ios::clear: iostream error`` on
other builds); a read-only cache ``OSError: [Errno 30] Read-only file system`` after 30 lines; a read-only output
folder a Hydra traceback (6 lines, exit 1); a full output folder 29 lines ending in ``OSError: [Errno 28] No space left
on device`` naming no file.
"""
from __future__ import annotations

import shutil
import subprocess
import sys


from fault_helpers import (FAST, ROOT, as_nobody, cli, copy_sweep, env, full_disk, need_namespace, numbers,
                           read_only, warnings_in, world_dir)


def _one_warning(r: subprocess.CompletedProcess) -> str:
    out = r.stdout + r.stderr
    assert "Traceback" not in out, out[-3000:]
    lines = warnings_in(out)
    assert len(lines) == 1, lines
    return lines[0]


def test_full_cache_degrades_to_an_uncached_run_with_one_warning(finished_sweep, tmp_path):
    need_namespace()
    clean = numbers(copy_sweep(finished_sweep, tmp_path / "clean")[3]["int8"])
    cache = tmp_path / "small"
    r = cli(*FAST, f"cache_dir={cache / 'uq'}", f"hydra.run.dir={tmp_path / 'run'}",
            prefix=full_disk(cache, "300k"))  # the trained CNN alone is 0.8 MB
    assert r.returncode == 0, r.stderr[-3000:]
    line = _one_warning(r)
    assert f"cache {cache / 'uq'} cannot be written (" in line and ": no space left on device)" in line, line
    assert "continuing without caching" in line
    assert numbers(tmp_path / "run") == clean  # the same numbers, computed instead of cached


def test_read_only_cache_still_serves_its_entries_and_warns_once(finished_sweep, tmp_path):
    need_namespace()
    cache, _, _, _ = copy_sweep(finished_sweep, tmp_path)
    before = sorted(p.name for p in cache.rglob("*"))
    r = cli(*FAST, "quant=int8_dynamic", f"hydra.run.dir={tmp_path / 'run'}", cache=cache, prefix=read_only(cache))
    assert r.returncode == 0, r.stderr[-3000:]
    line = _one_warning(r)
    assert f"cache {cache} cannot be written (" in line and "read-only file system)" in line, line
    assert "training small_cnn" not in r.stdout  # the trained model was read from the cache
    assert sorted(p.name for p in cache.rglob("*")) == before


def test_cache_of_another_user_degrades_with_one_warning(tmp_path):
    prefix = as_nobody()
    top = world_dir()
    try:
        cache = top / "cache"
        cache.mkdir(mode=0o755)  # root's, closed to nobody
        out = top / "out"
        out.mkdir()
        out.chmod(0o777)
        r = cli(*FAST, "model.epochs=1", f"cache_dir={cache}", f"hydra.run.dir={out / 'run'}", prefix=prefix,
                extra_env={"HOME": str(out), "MPLCONFIGDIR": str(out)})
        assert r.returncode == 0, r.stderr[-3000:]
        line = _one_warning(r)
        assert f"cache {cache} cannot be written (" in line and "permission denied)" in line, line
        assert (out / "run" / "results.json").is_file() and not any(cache.iterdir())
    finally:
        shutil.rmtree(top, ignore_errors=True)


def _one_error(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 2, (r.returncode, r.stderr[-3000:])
    assert "Traceback" not in r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


def test_read_only_output_folder_is_refused_before_any_work(tmp_path):
    need_namespace()
    ro = tmp_path / "ro"
    r = cli(*FAST, f"hydra.run.dir={ro / 'out'}", cache=tmp_path / "cache", prefix=read_only(ro))
    assert _one_error(r) == f"uqcompress: error: cannot write the output folder {ro / 'out'} ({ro}: read-only file system)"
    assert not (tmp_path / "cache").exists()  # refused before any model work
    assert not any(ro.iterdir())


def test_read_only_sweep_folder_is_refused_before_any_work(tmp_path):
    need_namespace()
    ro = tmp_path / "ro"
    r = cli("--multirun", "quant=none,int8", *FAST, f"hydra.sweep.dir={ro / 'sweep'}", cache=tmp_path / "cache",
            prefix=read_only(ro))
    assert _one_error(r) == (f"uqcompress: error: cannot write the output folder {ro / 'sweep'} "
                             f"({ro}: read-only file system)")
    assert not (tmp_path / "cache").exists()


def test_output_folder_of_another_user_is_refused(tmp_path):
    prefix = as_nobody()
    top = world_dir()
    try:
        (top / "home").mkdir()
        (top / "home").chmod(0o777)
        r = cli(*FAST, f"hydra.run.dir={top / 'out'}", f"cache_dir={top / 'home' / 'cache'}", prefix=prefix,
                extra_env={"HOME": str(top / "home")})
        assert _one_error(r) == f"uqcompress: error: cannot write the output folder {top / 'out'} ({top}: permission denied)"
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_full_output_folder_is_one_line_and_leaves_no_half_file(finished_sweep, tmp_path):
    need_namespace()
    cache, _, _, _ = copy_sweep(finished_sweep, tmp_path)
    disk = tmp_path / "disk"
    r = cli(*FAST, f"hydra.run.dir={disk / 'out'}", cache=cache,
            prefix=full_disk(disk, "64k", then=f'echo LEFT: $(ls -A "{disk / "out"}")'))  # predictions: 52 kB
    *lines, left = r.stderr.strip().splitlines()
    r.stderr = "\n".join(lines)
    assert _one_error(r) == f"uqcompress: error: {disk / 'out' / 'predictions.csv'}: no space left on device"
    assert left == "LEFT: .hydra __main__.log"  # no results, no half-written or temp file


def test_nearly_full_output_folder_is_refused_before_any_work(tmp_path):
    need_namespace()
    disk = tmp_path / "disk"
    r = cli(*FAST, f"hydra.run.dir={disk / 'out'}", cache=tmp_path / "cache", prefix=full_disk(disk, "16k"))
    assert _one_error(r) == (f"uqcompress: error: cannot write the output folder {disk / 'out'} "
                             f"({disk}: no space left on device (16 KiB free))")
    assert not (tmp_path / "cache").exists()


def test_a_log_file_that_cannot_be_written_is_one_warning(tmp_path, capsys):
    """The disk fills up under a running job: its log file fails on every record (before: 144 lines of "--- Logging
    error ---" tracebacks for one run); now one warning, and the console log goes on."""
    import errno
    import logging

    from uqcompress.app import _log_file_faults_once

    class FullDisk:
        def write(self, s):
            raise OSError(errno.ENOSPC, "No space left on device")

        def flush(self):
            pass

    handler = logging.FileHandler(tmp_path / "job.log", delay=True)
    handler.stream = FullDisk()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        _log_file_faults_once()
        for i in range(3):
            logging.getLogger("uqcompress").warning("record %d", i)
    finally:
        root.removeHandler(handler)
    err = capsys.readouterr().err
    assert err == (f"uqcompress: warning: cannot write the log file ({tmp_path / 'job.log'}: no space left on "
                   "device); logging to the console only\n")


def test_torch_save_on_a_full_disk_names_the_file_and_the_cause(tmp_path):
    """The low-level fault: torch.save's own error ("unexpected pos 704 vs 598") hides ENOSPC; ours names it."""
    need_namespace()
    disk = tmp_path / "disk"
    code = ("import sys, torch\n"
            "from uqcompress.cache import atomic_torch_save, atomic_write_text, describe_os_error\n"
            "for write in (lambda p: atomic_torch_save({'w': torch.zeros(100_000)}, p),\n"
            "              lambda p: atomic_write_text(p, 'x' * 200_000)):\n"
            "    try:\n"
            "        write(sys.argv[1])\n"
            "    except OSError as e:\n"
            "        print(describe_os_error(e))\n")
    r = subprocess.run([*full_disk(disk, "64k", then=f'echo LEFT: $(ls -A "{disk}")'), sys.executable, "-c", code,
                        str(disk / "entry.pt")], cwd=ROOT, env=env(), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [f"{disk / 'entry.pt'}: no space left on device"] * 2
    assert r.stderr.strip() == "LEFT:"  # no temp file left behind
