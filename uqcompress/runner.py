"""The one place a model meets data and a device.

Everything that runs a model over inputs goes through a :class:`Runner`: the pipeline's logits, penultimate features
and MC-dropout passes on every split (cached on disk), a scheme's calibration passes, a model builder's fit-split
features, a deployed :class:`~uqcompress.SelectivePredictor`'s ``predict`` and the latency of baseline vs compressed.
It owns:

* **device placement**, once per run (:meth:`Runner.place`): the module goes to the run's device when its scheme
  runs there (else it stays on the CPU, said once); inputs follow the module they are fed to, so a model never meets
  a batch on another device;
* **batching**: ``batch_size`` rows at a time; texts are run in batches of similar length (less padding) and their
  outputs put back in input order;
* ``torch.inference_mode`` for inference, ``torch.no_grad`` for calibration (observers update buffers),
  ``torch.autocast`` when a scheme asks for it (``ModelBundle.info['autocast']``);
* the **NaN/inf check**, naming the model and the split;
* **latency**: both models timed in the same interleaved rounds on the same inputs, synchronised on CUDA.

Outputs are float32 on the CPU whatever the device. Cache keys hash the model fingerprint, the split, the device type
and (for MC-dropout) every MC setting.

Example:
    >>> import torch
    >>> from uqcompress.models.base import ModelBundle
    >>> from uqcompress.runner import Runner
    >>> m = ModelBundle(torch.nn.Linear(4, 3), "lin", "x", "image", 3)
    >>> Runner("cpu", batch_size=4, progress=False).logits(m, torch.zeros(10, 4), split="test").shape
    torch.Size([10, 3])
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from uqcompress import startup
from uqcompress.cache import cached, fingerprint, log_event
from uqcompress.models.base import ModelBundle, call_module, module_device
from uqcompress.progress import progress_bar

log = logging.getLogger(__name__)

ALL_DEVICES = ("cpu", "cuda")
#: the thread's CPU clock times latency on one thread only where it resolves tiny models (Linux, macOS: ns)
FINE_THREAD_CLOCK = time.get_clock_info("thread_time").resolution <= 1e-6
NEEDS = ("mc", "features", "reference")  # what a scorer / selector may ask for beyond logits


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N`` -> a ``torch.device``.

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if isinstance(device, torch.device):
        device = str(device)
    device = "auto" if device is None else str(device).strip()
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        dev = None
    if dev is None or dev.type not in ALL_DEVICES:
        raise ValueError(f"device='{device}' is not one of: auto, cpu, cuda, cuda:N")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device='{device}' but no CUDA device is available; use device=auto or device=cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device='{device}' but this machine has {torch.cuda.device_count()} CUDA device(s) "
                             f"(cuda:0..cuda:{torch.cuda.device_count() - 1})")
    return dev


def device_name(module: nn.Module) -> str:
    """Where ``module`` really sits, read from its tensors: ``cpu``, ``cuda:0``, ...

    >>> device_name(torch.nn.Linear(2, 2))
    'cpu'
    """
    dev = module_device(module)
    return f"cuda:{dev.index if dev.index is not None else torch.cuda.current_device()}" if dev.type == "cuda" \
        else dev.type


def to_device(inputs: Any, device: torch.device) -> Any:
    """Move a batch (a tensor, or a dict / list / tuple of them) to ``device``; quantized tensors stay put."""
    if isinstance(inputs, torch.Tensor):
        return inputs if inputs.is_quantized or inputs.device == device else inputs.to(device, non_blocking=True)
    if isinstance(inputs, dict):
        return {k: to_device(v, device) for k, v in inputs.items()}
    if isinstance(inputs, (list, tuple)) and inputs and isinstance(inputs[0], torch.Tensor):
        return type(inputs)(to_device(v, device) for v in inputs)
    return inputs


def dequant(t: torch.Tensor) -> torch.Tensor:
    """A quantized activation as a float tensor (others unchanged)."""
    return t.dequantize() if t.is_quantized else t


def _cpu_float(t: torch.Tensor) -> torch.Tensor:
    """``dequant(t).float().cpu()``, calling ``.float()`` / ``.cpu()`` only when they change something (each is a
    dispatch even when it returns ``t`` itself: a deployed predictor's call pays for every one)."""
    t = dequant(t)
    if t.dtype != torch.float32:
        t = t.float()
    return t if t.device.type == "cpu" else t.cpu()


def length_order(bundle: ModelBundle, x: Any) -> np.ndarray | None:
    """For texts, the indices sorted by length (token count when the model's ``prepare`` can tell, else
    characters): batches of similar length pad, and cost, far less. None for tensors and other inputs."""
    if not (isinstance(x, (list, tuple)) and x and isinstance(x[0], str)):
        return None
    lengths = getattr(bundle.prepare, "lengths", None)
    sizes = lengths(x) if callable(lengths) else [len(t) for t in x]
    return np.argsort(np.asarray(sizes), kind="stable")


def check_finite(t: torch.Tensor, bundle: ModelBundle, split: str, what: str = "logits") -> torch.Tensor:
    """``t``, or a one-line error naming the model, the split and the first bad sample."""
    if math.isfinite(float(t.sum())):  # one reduction: NaN and inf propagate into the sum (the common, fast path)
        return t
    finite = torch.isfinite(t)
    if not bool(finite.all()):
        rows = (~finite).reshape(t.shape[0], -1).any(1) if what != "MC passes" else (~finite).any(0).any(-1)
        raise ValueError(f"model '{bundle.label}' produced NaN/inf {what} on split '{split}' "
                         f"(first at sample {int(rows.nonzero()[0])})")
    return t


def _eval(module: nn.Module) -> nn.Module:
    """``module`` in eval mode (walking the module tree only when its root is in training mode: a hot path)."""
    return module.eval() if module.training else module


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """torch's CPU thread count set to ``n`` (None: unchanged) inside the block, the previous count restored after.

    >>> old = torch.get_num_threads()
    >>> with torch_threads(1):
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == old
    True
    """
    old = torch.get_num_threads()
    if n is not None and int(n) != old:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        if torch.get_num_threads() != old:
            torch.set_num_threads(old)


def _rows(inputs: Any) -> int:
    if isinstance(inputs, dict):
        return len(next(iter(inputs.values())))
    return len(inputs)


class Runner:
    """Runs models over data on one device (see the module docstring).

    Args:
        device: ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` (or a ``torch.device``): where :meth:`place` puts models.
        batch_size: rows per forward pass.
        progress: progress bars for passes longer than one batch.
    """

    def __init__(self, device: str | torch.device | None = "cpu", batch_size: int = 256, progress: bool = True,
                 dequantize_per_pass: bool = True) -> None:
        self.device = resolve_device(device)
        self.batch_size = int(batch_size)
        self.progress = bool(progress)
        self.dequantize_per_pass = bool(dequantize_per_pass)
        if self.batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be >= 1")

    def __repr__(self) -> str:
        return f"Runner(device='{self.device}', batch_size={self.batch_size})"

    # ---- placement ----------------------------------------------------------------------------------------------
    def place(self, bundle: ModelBundle, devices: Sequence[str] = ALL_DEVICES) -> ModelBundle:
        """Move ``bundle.module`` (in place) to the runner's device when its type is in ``devices``; returns it.

        A module that cannot run there stays on the CPU (the caller logs why: see
        :func:`uqcompress.compress.target_device`).
        """
        target = self.device if self.device.type in devices else torch.device("cpu")
        if module_device(bundle.module) != target:
            bundle.module.to(target)
        return bundle

    # ---- the batch loop -----------------------------------------------------------------------------------------
    def _mode(self, bundle: ModelBundle, grad_free: Callable[[], Any] = torch.inference_mode) -> Any:
        """The grad-free context of a pass, with ``torch.autocast`` when the bundle's scheme asks for it (a plain
        ``inference_mode`` otherwise: a deployed predictor enters it on every call)."""
        dtype = bundle.info.get("autocast")
        if not dtype:
            return grad_free()
        stack = contextlib.ExitStack()
        stack.enter_context(grad_free())
        stack.enter_context(torch.autocast(module_device(bundle.module).type, dtype=getattr(torch, dtype)))
        return stack

    def _pass_weights(self, bundle: ModelBundle) -> Any:
        """Weights a scheme stores in a form its matmuls expand on every call (``info['dequantize_per_pass']``: the
        CPU int4 path) are expanded once for a pass over many batches (bit-identical; see
        :func:`uqcompress.compress.weight_only.dequantized_for_pass`). Not for one batch (a deployed predictor's
        call) nor the latency figure: those run the scheme's own path."""
        if not (self.dequantize_per_pass and bundle.info.get("dequantize_per_pass")):
            return contextlib.nullcontext()
        from uqcompress.compress.weight_only import dequantized_for_pass

        return dequantized_for_pass(bundle.module)

    def _map(self, bundle: ModelBundle, x: Any, step: Callable[[Any, int], tuple[torch.Tensor, ...]], *,
             split: str, what: str, dims: tuple[int, ...] = (0,), batch_size: int | None = None,
             grad_free: Callable[[], Any] = torch.inference_mode) -> tuple[torch.Tensor, ...]:
        """``step(inputs_on_device, rows)`` over ``x`` in batches; each returned tensor is concatenated along its
        ``dims`` entry (the sample axis), moved to the CPU as float32 and put back in input order."""
        tensor = isinstance(x, torch.Tensor)
        n = x.shape[0] if tensor and x.dim() else len(x)  # Tensor.__len__ is a Python call: a hot path
        if n == 0:
            raise ValueError(f"no inputs to run model '{bundle.label}' on: split '{split}' is empty")
        if startup.pending():
            startup.first_inference(f"{bundle.label} {what} {split}")
        bs = int(batch_size or self.batch_size)
        device = module_device(bundle.module)
        if n <= bs and tensor:  # one batch of a tensor (a deployed predictor's call): no loop, no extra dispatches
            with self._mode(bundle, grad_free):
                outs = step(to_device(bundle.prepare(x), device), n)
                return tuple(_cpu_float(o) for o in outs)
        order = length_order(bundle, x)
        xs = [x[i] for i in order] if order is not None else x
        parts: list[list[torch.Tensor]] = [[] for _ in dims]
        bar = progress_bar(total=n, desc=f"{bundle.label}:{what} {split}") if self.progress and n > bs \
            else contextlib.nullcontext()
        with self._mode(bundle, grad_free), self._pass_weights(bundle), bar as pbar:
            for i in range(0, n, bs):
                xb = xs[i : i + bs]
                outs = step(to_device(bundle.prepare(xb), device), len(xb))
                for p, o in zip(parts, outs):
                    p.append(dequant(o).float().cpu())
                if pbar is not None:
                    pbar.update(len(xb))
        out = tuple(torch.cat(p, dim=d) if len(p) > 1 else p[0] for p, d in zip(parts, dims))
        if order is not None:
            inverse = torch.from_numpy(np.argsort(order, kind="stable"))
            out = tuple(o.index_select(d, inverse) for o, d in zip(out, dims))
        return out

    # ---- passes -------------------------------------------------------------------------------------------------
    def logits(self, bundle: ModelBundle, x: Any, *, split: str = "inputs", batch_size: int | None = None
               ) -> torch.Tensor:
        """Logits (N, K) float32 on the CPU, module in eval mode, without grad."""
        module = _eval(bundle.module)
        if (isinstance(x, torch.Tensor) and x.dim() and 0 < x.shape[0] <= (batch_size or self.batch_size)
                and not bundle.info.get("autocast") and not startup.pending()):
            # one batch of a tensor (a deployed predictor's call): _map's one-batch path without its layers
            with torch.inference_mode():
                z = call_module(module, to_device(bundle.prepare(x), module_device(module)))
            return check_finite(_cpu_float(z), bundle, split)
        (z,) = self._map(bundle, x, lambda inp, n: (call_module(module, inp),), split=split, what="logits",
                         batch_size=batch_size)
        return check_finite(z, bundle, split)

    def features(self, bundle: ModelBundle, x: Any, *, split: str = "inputs", batch_size: int | None = None
                 ) -> torch.Tensor:
        """Input of ``bundle.head`` (the penultimate features) on every sample, (N, D) float32 on the CPU."""
        return self.logits_and_features(bundle, x, split=split, batch_size=batch_size)[1]

    def logits_and_features(self, bundle: ModelBundle, x: Any, *, split: str = "inputs",
                            batch_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (N, K) and head inputs (N, D) from one pass."""
        from uqcompress.uncertainty.mc import capture_head, check_feature

        module = _eval(bundle.module)
        store: dict = {}

        def step(inp: Any, n: int) -> tuple[torch.Tensor, torch.Tensor]:
            with capture_head(bundle, store):
                z = call_module(module, inp)
            return z, check_feature(bundle, store["in"])

        z, f = self._map(bundle, x, step, split=split, what="features", dims=(0, 0), batch_size=batch_size)
        return check_finite(z, bundle, split), check_finite(f, bundle, split, "features")

    def mc_probs(self, bundle: ModelBundle, x: Any, opts: Any, *, split: str = "inputs") -> torch.Tensor:
        """Softmax of T stochastic MC-dropout passes, (T, N, K) float32 on the CPU.

        ``opts`` is an :class:`~uqcompress.uncertainty.mc.MCOptions`. ``full`` mode stacks up to ``batch_size``
        rows of copies per forward pass; ``head`` mode runs the backbone once per batch and samples dropout on the
        head's input only. Dropout masks are seeded by ``opts.seed`` (the global RNG is restored after).
        """
        from uqcompress.uncertainty import mc

        module = _eval(bundle.module)
        t = opts.samples
        if opts.mode == "full":
            rows = max(1, self.batch_size // t)  # data rows per step
            copies = max(1, min(t, self.batch_size // rows))  # stacked copies per forward

            def step(inp: Any, n: int) -> tuple[torch.Tensor]:
                out = []
                for t0 in range(0, t, copies):
                    c = min(copies, t - t0)
                    z = call_module(module, mc.stack_copies(inp, c)).float()
                    out.append(z.softmax(-1).view(c, n, -1))
                return (torch.cat(out) if len(out) > 1 else out[0],)

            with mc.seeded(opts.seed, module_device(module)), mc.stochastic(bundle, opts.p):
                (p,) = self._map(bundle, x, step, split=split, what=f"mc-full x{t}", dims=(1,), batch_size=rows)
        else:
            rate = mc.head_rate(bundle, opts)
            head = mc.head_module(bundle)
            mc.log_once(bundle, "MC-dropout (head mode) on %s: dropout p=%g on the input of head '%s'", bundle.label,
                        rate, bundle.head)
            store: dict = {}
            checked: list[bool] = []

            def step(inp: Any, n: int) -> tuple[torch.Tensor]:
                with mc.capture_head(bundle, store):
                    logits = call_module(module, inp)
                f = mc.check_feature(bundle, store["in"])
                if not checked:
                    mc.check_head_is_last(bundle, store["out"], logits)
                    checked.append(True)
                copies = max(1, min(t, 65536 // n))
                out = []
                for t0 in range(0, t, copies):
                    c = min(copies, t - t0)
                    z = dequant(head(mc.dropout(mc.stack_copies(f, c), rate))).float()
                    out.append(z.softmax(-1).view(c, n, -1))
                return (torch.cat(out) if len(out) > 1 else out[0],)

            with mc.seeded(opts.seed, module_device(module)):
                (p,) = self._map(bundle, x, step, split=split, what=f"mc-head x{t}", dims=(1,))
        return check_finite(p, bundle, split, "MC passes")

    def calibrate(self, bundle: ModelBundle, module: nn.Module, x: Any, *, batch_size: int | None = None,
                  what: str = "calibrate") -> int:
        """Forward ``x`` through ``module`` (``bundle``'s inputs, no grad) so its observers record statistics;
        returns the number of samples. ``inference_mode`` is not used: observers update their buffers in place.
        Each pass is logged in the cache's ``events.jsonl`` (kind ``calibration``)."""
        if x is None or len(x) == 0:
            raise ValueError(f"model '{bundle.name}': calibration needs samples but the calibration split is empty")
        target = bundle.with_module(module, bundle.fingerprint)
        self._map(target, x, lambda inp, n: (call_module(module, inp),), split="calibration", what=what,
                  batch_size=batch_size, grad_free=torch.no_grad)
        log_event("compute", "calibration", bundle.fingerprint, model=bundle.label, what=what, samples=len(x))
        return len(x)

    # ---- cached outputs of one split ----------------------------------------------------------------------------
    def outputs(self, bundle: ModelBundle, split_name: str, split: Any, needs: frozenset[str] | set[str] = frozenset(),
                options: dict | None = None) -> Any:
        """Everything a scorer / selector asked for on one split, cached on disk: logits always, MC-dropout passes
        (``"mc"``, configured by ``options``: the uncertainty config) and head inputs (``"features"``) on demand.

        Each entry is checked on read against the shape it must have ((N, K) logits, (N, D) features, (T, N, K)
        passes), float32 and finite (else recomputed, see :func:`uqcompress.cache.cached`); each real pass is logged
        in the cache's ``events.jsonl`` (kinds ``logits``, ``mc``, ``features``).
        """
        from uqcompress.uncertainty.base import Outputs
        from uqcompress.uncertainty.mc import MCOptions

        unknown = set(needs) - set(NEEDS)
        if unknown:
            raise ValueError(f"unknown output kind(s) {sorted(unknown)} requested; known: {', '.join(NEEDS)}")
        n = len(split)
        where = module_device(bundle.module).type
        split_key = split.fingerprint()
        base = (bundle.fingerprint, split_key, where, bundle.info.get("autocast"))

        k = bundle.num_classes

        def entry(kind: str, compute: Callable[[], torch.Tensor], shape: tuple, *key: Any) -> torch.Tensor:
            def run() -> torch.Tensor:
                log.info("%s: %s on %s (%d samples, %s)", kind, bundle.label, split_name, n, where)
                return compute()

            return cached(kind, fingerprint(kind, *base, *key), run, log=log.debug,
                          expect={"type": torch.Tensor, "shape": shape, "dtype": torch.float32},
                          model=bundle.label, split=split_name, device=where)

        out = Outputs(entry("logits", lambda: self.logits(bundle, split.x, split=split_name), (n, k)), split.y)
        if startup.pending():  # outputs served from the cache: the job is ready to infer
            startup.first_inference(f"{bundle.label} logits {split_name}")
        if "features" in needs:
            out.features = entry("features", lambda: self.features(bundle, split.x, split=split_name), (n, None),
                                 bundle.head)
        if "mc" in needs:
            opts = MCOptions.from_options(options)
            out.mc_probs = entry("mc", lambda: self.mc_probs(bundle, split.x, opts, split=split_name),
                                 (opts.samples, n, k), bundle.head, opts.key())
        return out

    # ---- latency ------------------------------------------------------------------------------------------------
    def latency(self, bundles: dict[str, ModelBundle], x: Any, *, batch_size: int = 32, repeats: int = 10,
                warmup: int = 2, threads: int | None = 1, min_block_s: float = 0.005) -> dict[str, dict[str, float]]:
        """Per-sample latency of every bundle, timed in the same interleaved rounds on the same inputs.

        Each round runs one timed block per model, the order rotated every round so no model always goes first; a
        block repeats the batch enough times to last ``min_block_s`` (timer resolution on tiny models), with
        ``torch.cuda.synchronize`` around it on CUDA. Load from other processes hits every model alike, so the
        ratio between them is meaningful; a log line warns when the rounds spread widely, or when the machine is
        busy and the clock is the wall clock.

        ``threads``: torch CPU threads while timing (default 1; None = the run's setting), the previous count restored
        after. One thread per timed model keeps the ratio stable on a shared machine: with every core, one busy core
        stalls each parallel op of the float model at its slowest thread (2 cores, one busy: 484 ms per batch on 2
        threads against 51 ms on 1), so the speedup measured the load, not the models (``scripts/bench_latency.py``).
        With one thread and every model on the CPU, the clock is the timing thread's CPU time (the thread runs every
        op itself): what a call costs on a core of its own, which is its wall time on an idle machine. Wall time on a
        busy one also counts the time slices other processes took, and a long call loses more of them than a short
        one, so the ratio of wall times grew with the load (speedups of 9.4 to 86 in one run at load 19). Otherwise
        (several threads, CUDA, or a thread clock coarser than 1 µs) the clock is the wall clock.

        Returns, per name: ``latency_ms_per_sample`` (median), ``latency_q1_ms`` / ``latency_q3_ms`` (quartiles of
        the per-sample time over rounds), ``latency_batch_size``, ``latency_rounds``, ``latency_threads``,
        ``latency_clock`` (``thread_cpu`` | ``wall``).
        """
        batch = x[:batch_size]
        n = len(batch)
        if n == 0:
            raise ValueError("latency needs at least one input")
        modules = {k: b.module.eval() for k, b in bundles.items()}
        devices = {k: module_device(m) for k, m in modules.items()}
        inputs = {k: to_device(b.prepare(batch), devices[k]) for k, b in bundles.items()}
        keys = list(bundles)

        def once(k: str, number: int) -> float:
            with self._mode(bundles[k]):  # per model: one model's autocast must not touch the other
                _sync(devices[k])
                t0 = clock()
                for _ in range(number):
                    call_module(modules[k], inputs[k])
                _sync(devices[k])
                return clock() - t0

        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
        numbers: dict[str, int] = {}
        times: dict[str, list[float]] = {k: [] for k in keys}
        with torch_threads(threads):
            used_threads = torch.get_num_threads()
            on_cpu = used_threads == 1 and all(d.type == "cpu" for d in devices.values()) and FINE_THREAD_CLOCK
            clock = time.thread_time if on_cpu else time.perf_counter
            for k in keys:  # warm-up, and how many calls make one block
                for _ in range(max(1, warmup)):
                    dt = once(k, 1)
                numbers[k] = max(1, int(min_block_s / max(dt, 1e-6)))
            for i in range(repeats):
                for k in keys[i % len(keys):] + keys[: i % len(keys)]:
                    times[k].append(once(k, numbers[k]) / numbers[k])
        out: dict[str, dict[str, float]] = {}
        for k in keys:
            ms = sorted(1000.0 * t / n for t in times[k])
            q = statistics.quantiles(ms, n=4) if len(ms) > 1 else [ms[0]] * 3
            out[k] = {"latency_ms_per_sample": statistics.median(ms), "latency_q1_ms": q[0], "latency_q3_ms": q[2],
                      "latency_batch_size": n, "latency_rounds": len(ms), "latency_threads": used_threads,
                      "latency_clock": "thread_cpu" if on_cpu else "wall"}
        cores = os.cpu_count() or 1
        spread = max((v["latency_q3_ms"] - v["latency_q1_ms"]) / v["latency_ms_per_sample"] for v in out.values())
        if (load > cores - 0.5 and not on_cpu) or spread > 0.25:  # the thread's CPU clock does not count the load
            log.warning("latency may be unreliable: load average %.1f on %d cores, rounds spread up to %.0f%% "
                        "(interquartile range / median)", load, cores, 100 * spread)
        return out


__all__ = ["Runner", "check_finite", "dequant", "device_name", "length_order", "resolve_device", "to_device",
           "torch_threads"]
