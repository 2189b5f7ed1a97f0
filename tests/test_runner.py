"""The Runner: the one place a model meets data and a device (batching, order, NaN check, autocast, latency,
placement), and the device rules of schemes and runs."""
from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from uqcompress.compress import SCHEMES, CompressContext, compress, target_device
from uqcompress.data import Split
from uqcompress.models.base import ModelBundle
from uqcompress.models.small_cnn import SmallCNN
from uqcompress.runner import FINE_THREAD_CLOCK, Runner, device_name, resolve_device

X = torch.rand(20, 1, 14, 14, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def cnn():
    torch.manual_seed(0)
    return ModelBundle(SmallCNN(width=8, hidden=16).eval(), "small_cnn", "runner-cnn", "image", 10,
                       head="classifier.4")


class Recorder(nn.Module):
    """Logs every batch it sees; returns one logit row per input, from the input's first value."""

    def __init__(self, log: list, name: str = "m") -> None:
        super().__init__()
        self.lin = nn.Linear(1, 2)
        self.calls, self.name = log, name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append((self.name, len(x)))
        return torch.stack([x[:, 0], -x[:, 0]], 1)


def test_batches_of_batch_size_in_input_order(cnn):
    calls: list = []
    m = ModelBundle(Recorder(calls), "rec", "r", "tensor", 2)
    x = torch.arange(10, dtype=torch.float32)[:, None]
    z = Runner(batch_size=4, progress=False).logits(m, x, split="test")
    assert [n for _, n in calls] == [4, 4, 2]
    assert torch.equal(z[:, 0], x[:, 0]) and z.dtype == torch.float32
    # one pass through the runner equals the module itself
    with torch.no_grad():
        torch.testing.assert_close(Runner(batch_size=7, progress=False).logits(cnn, X), cnn.module(X))


def test_texts_run_in_length_buckets_and_come_back_in_input_order():
    seen: list[list[int]] = []

    def prepare(texts):
        seen.append([len(t) for t in texts])
        return torch.tensor([[float(len(t))] for t in texts])

    m = ModelBundle(Recorder([]), "rec", "r", "text", 2, prepare=prepare)
    texts = ["a" * n for n in (5, 1, 9, 3, 7, 2)]
    z = Runner(batch_size=2, progress=False).logits(m, texts, split="test")
    assert seen == [[1, 2], [3, 5], [7, 9]], "each batch holds texts of similar length"
    assert z[:, 0].tolist() == [5, 1, 9, 3, 7, 2], "outputs are put back in input order"


def test_non_finite_outputs_are_one_line_naming_model_and_split():
    class Bad(nn.Module):
        def forward(self, x):
            out = x.repeat(1, 2)
            out[3, 1] = float("nan")
            return out

    m = ModelBundle(Bad(), "bad", "b", "tensor", 2)
    with pytest.raises(ValueError) as e:
        Runner(progress=False).logits(m, torch.zeros(6, 1), split="calibration")
    msg = str(e.value)
    assert "NaN/inf logits on split 'calibration' (first at sample 3)" in msg and "'bad'" in msg
    assert "\n" not in msg
    with pytest.raises(ValueError, match="split 'ood' is empty"):
        Runner(progress=False).logits(m, torch.zeros(0, 1), split="ood")


def test_features_and_logits_from_one_pass(cnn):
    calls = []
    h = cnn.module.features.register_forward_hook(lambda *a: calls.append(1))
    try:
        z, f = Runner(batch_size=64, progress=False).logits_and_features(cnn, X)
    finally:
        h.remove()
    assert len(calls) == 1 and f.shape == (20, 16)
    with torch.no_grad():
        torch.testing.assert_close(z, cnn.module(X))
        torch.testing.assert_close(cnn.module.classifier[4](f), z)


def test_calibration_pass_updates_observers_without_inference_mode(cnn):
    seen = []
    obs = torch.ao.quantization.MinMaxObserver()
    net = nn.Sequential(obs, nn.Flatten(), nn.Linear(196, 10))
    net.register_forward_pre_hook(lambda *a: seen.append(torch.is_inference_mode_enabled()))
    n = Runner(progress=False).calibrate(cnn, net, X, batch_size=8)
    assert n == 20 and seen == [False, False, False]
    assert float(obs.min_val) == pytest.approx(float(X.min())) and float(obs.max_val) == pytest.approx(float(X.max()))


def test_amp_scheme_runs_under_autocast_and_survives_deploy(cnn, tmp_path):
    from uqcompress.predictor import SelectivePredictor
    from uqcompress.selection import build_selector
    from uqcompress.uncertainty import build_scorer

    q = compress(cnn, {"name": "amp"}, None, CompressContext(progress=False))
    assert q.info["autocast"] == "bfloat16" and q.module.classifier[4].weight.dtype == torch.float32
    got = Runner(progress=False).logits(q, X)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        want = q.module(X).float()
    assert torch.equal(got, want) and not torch.equal(got, Runner(progress=False).logits(cnn, X))
    sp = SelectivePredictor(q, build_scorer({"name": "msp"}), build_selector({"name": "threshold", "value": 0.5}),
                            spec={"model": {"name": "small_cnn", "width": 8, "hidden": 16}, "input_shape": [1, 14, 14]})
    loaded = SelectivePredictor.load(sp.save(tmp_path / "amp.pt"))
    assert loaded.bundle.info["autocast"] == "bfloat16"
    assert all(torch.equal(a, b) for a, b in zip(sp.predict(X), loaded.predict(X)))


def test_latency_interleaves_rounds_and_rotates_the_order():
    calls: list = []
    bundles = {k: ModelBundle(Recorder(calls, k), k, k, "tensor", 2) for k in ("a", "b", "c")}
    out = Runner(progress=False).latency(bundles, torch.zeros(40, 1), batch_size=8, repeats=6, warmup=1,
                                         min_block_s=0.0)
    assert set(out) == {"a", "b", "c"}
    for v in out.values():
        assert v["latency_rounds"] == 6 and v["latency_batch_size"] == 8
        assert 0 < v["latency_q1_ms"] <= v["latency_ms_per_sample"] <= v["latency_q3_ms"]
    timed = [name for name, n in calls[3:]]  # after one warm-up call each
    rounds = [timed[i : i + 3] for i in range(0, len(timed), 3)]
    assert all(sorted(r) == ["a", "b", "c"] for r in rounds), "every round times every model"
    assert [r[0] for r in rounds] == ["a", "b", "c", "a", "b", "c"], "the first model rotates"
    assert all(n == 8 for _, n in calls), "the same batch for every model"


class ThreadProbe(nn.Module):
    """Records torch's CPU thread count at every call."""

    def __init__(self, seen: list) -> None:
        super().__init__()
        self.lin = nn.Linear(1, 2)
        self.seen = seen

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(torch.get_num_threads())
        return self.lin(x)


@pytest.mark.skipif(not FINE_THREAD_CLOCK, reason="the thread clock of this OS is too coarse; wall clock used")
@pytest.mark.parametrize("threads", [1, None])
def test_latency_runs_on_the_threads_asked_and_restores_the_count(threads):
    """``threads=1`` (the default) times every model on one thread, ``None`` on the run's setting; either way the
    count the caller had comes back, read from torch inside the models' forward passes."""
    original = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen: list = []
        bundles = {k: ModelBundle(ThreadProbe(seen), k, k, "tensor", 2) for k in ("a", "b")}
        out = Runner(progress=False).latency(bundles, torch.zeros(8, 1), batch_size=4, repeats=3, warmup=1,
                                             min_block_s=0.0, threads=threads)
        want = 1 if threads else 2
        assert seen and set(seen) == {want}
        assert all(v["latency_threads"] == want for v in out.values())
        assert all(v["latency_clock"] == ("thread_cpu" if threads else "wall") for v in out.values())
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(original)


class Sleeper(nn.Module):
    """Waits 20 ms per call without using the CPU (as a call preempted by another process would)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import time

        time.sleep(0.02)
        return torch.stack([x[:, 0], -x[:, 0]], 1)


@pytest.mark.skipif(not FINE_THREAD_CLOCK, reason="the thread clock of this OS is too coarse; wall clock used")
def test_latency_on_one_cpu_thread_counts_the_threads_cpu_time_not_waiting():
    """Reference: ``time.sleep`` costs wall time and no CPU time. On one thread the clock is the thread's CPU time, so
    20 ms of waiting per call is not counted; with the wall clock (threads=None on 2 threads) it is."""
    original = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        b = {"s": ModelBundle(Sleeper(), "s", "s", "tensor", 2)}
        cpu = Runner(progress=False).latency(b, torch.zeros(4, 1), batch_size=4, repeats=3, warmup=1)["s"]
        wall = Runner(progress=False).latency(b, torch.zeros(4, 1), batch_size=4, repeats=3, warmup=1,
                                              threads=None)["s"]
    finally:
        torch.set_num_threads(original)
    assert cpu["latency_clock"] == "thread_cpu" and wall["latency_clock"] == "wall"
    assert wall["latency_ms_per_sample"] >= 20 / 4  # 20 ms per call of 4 samples
    assert cpu["latency_ms_per_sample"] < 1.0  # the sleep is not counted (a few µs of Python per call remain)


def test_one_batch_of_a_tensor_runs_as_the_batch_loop_does(cnn):
    """A tensor that fits one batch (a deployed predictor's call) skips the batch loop: the module's own logits (the
    loop's, up to the kernels' batch-size rounding), under inference mode, float32 on the CPU; an empty one is still
    the one-line error."""
    seen: list = []
    hook = cnn.module.register_forward_pre_hook(lambda *a: seen.append(torch.is_inference_mode_enabled()))
    try:
        one = Runner(batch_size=64, progress=False).logits(cnn, X[:5], split="predict")
        loop = Runner(batch_size=2, progress=False).logits(cnn, X[:5], split="predict")
    finally:
        hook.remove()
    assert seen == [True] * 4  # one call, then three batches
    with torch.inference_mode():
        assert torch.equal(one, cnn.module(X[:5]))
    torch.testing.assert_close(one, loop)
    assert one.dtype == torch.float32 and one.device.type == "cpu"
    with pytest.raises(ValueError, match="split 'predict' is empty"):
        Runner(progress=False).logits(cnn, X[:0], split="predict")


def test_latency_warns_when_rounds_spread(caplog, monkeypatch):
    import uqcompress.runner as runner_mod

    ticks = iter([0.0, 1.0] * 2 + [0.0, 1.0, 0.0, 10.0] * 10)  # warm-up, then alternating 1 s / 10 s blocks
    monkeypatch.setattr(runner_mod.time, "perf_counter", lambda: next(ticks))
    monkeypatch.setattr(runner_mod.time, "thread_time", lambda: next(ticks))  # the clock of one CPU thread
    b = ModelBundle(nn.Linear(1, 2), "lin", "l", "tensor", 2)
    with caplog.at_level(logging.WARNING, logger="uqcompress.runner"):
        Runner(progress=False).latency({"a": b}, torch.zeros(4, 1), repeats=10, warmup=1, min_block_s=0.0)
    assert "latency may be unreliable" in caplog.text


def test_resolve_device_errors_are_one_line(monkeypatch):
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match=r"device='tpu' is not one of: auto, cpu, cuda, cuda:N"):
        resolve_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"device='cuda:1' but no CUDA device is available"):
        resolve_device("cuda:1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match=r"device='cuda:3' but this machine has 1 CUDA device\(s\)"):
        resolve_device("cuda:3")


def test_schemes_declare_their_devices():
    cpu_only = {n for n in SCHEMES.names() if n not in ("chain", "prune_int8")
                and SCHEMES.get(n).devices_for({}) == ("cpu",)}
    assert cpu_only == {"int8", "int8_dynamic"}, "torch.ao x86 kernels run on the CPU only"
    both = ("none", "fp16", "bf16", "amp", "int8_weight_only", "int4_weight_only", "brevitas_w8a8", "prune_global_l1",
            "prune_2of4", "drop_layers")
    assert all(SCHEMES.get(n).devices_for({}) == ("cpu", "cuda") for n in both)
    steps = {"steps": [{"name": "prune_global_l1"}, {"name": "int8_dynamic"}]}
    assert SCHEMES.get("chain").devices_for(steps) == ("cpu",), "a chain runs where every step runs"
    assert SCHEMES.get("chain").devices_for({"steps": [{"name": "prune_2of4"}, {"name": "fp16"}]}) == ("cpu", "cuda")


def test_a_scheme_asked_for_a_device_it_cannot_use_runs_on_cpu_with_one_log_line(cnn, caplog):
    for name in ("int8", "int8_dynamic"):
        assert target_device(SCHEMES.get(name), {}, "cuda") == torch.device("cpu")
        assert target_device(SCHEMES.get(name), {}, "cpu") == torch.device("cpu")
    assert target_device(SCHEMES.get("fp16"), {}, "cuda:1") == torch.device("cuda:1")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="uqcompress.compress"):
        q = compress(cnn, {"name": "int8", "calibration_samples": 16}, X,
                     CompressContext(device="cuda", progress=False, runner=Runner("cpu", progress=False)))
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "quant=int8 runs on cpu only" in lines[0] and "runs on the CPU" in lines[0]
    assert device_name(q.module) == "cpu"


def test_results_say_where_each_model_ran_read_from_the_modules(tmp_cache, monkeypatch):
    from uqcompress import pipeline

    seen = {}
    real = pipeline.device_name
    monkeypatch.setattr(pipeline, "device_name", lambda m: seen.setdefault(id(m), real(m)))
    res = pipeline.run_config({"data": {"name": "mnist"}, "limit": 120, "fit_limit": 120,
                               "model": {"name": "small_cnn", "epochs": 1, "width": 8, "hidden": 16},
                               "quant": {"name": "prune_global_l1", "amount": 0.3}, "ood": {"name": "none"},
                               "progress": False, "device": "cpu", "threads": 1,
                               "latency": {"repeats": 3}})
    m = res.metrics
    assert m["baseline.device"] == "cpu" and m["compressed.device"] == "cpu" and m["config.device"] == "cpu"
    assert set(seen) == {id(res.baseline.bundle.module), id(res.compressed.bundle.module)}, "read off the modules"
    # every scalar or list fact of the scheme arrives, the pruned layers by name
    assert m["compressed.pruned_layers"] == ["features.0", "features.3", "features.7", "features.10", "classifier.1"]
    assert m["compressed.sparsity_target"] == "all" and m["compressed.backend"] == "torch-dense"
    assert m["compressed.speedup"] == pytest.approx(m["baseline.latency_ms_per_sample"]
                                                    / m["compressed.latency_ms_per_sample"])


def test_outputs_keys_hold_the_device_type(cnn, tmp_cache, monkeypatch):
    from uqcompress.cache import read_events

    runner = Runner(progress=False)
    split = Split(X, torch.arange(20) % 10)
    runner.outputs(cnn, "test", split)
    runner.outputs(cnn, "test", split)
    (event,) = read_events("logits", "compute")
    assert event["device"] == "cpu" and event["split"] == "test"
    with pytest.raises(ValueError, match="unknown output kind"):
        runner.outputs(cnn, "test", split, {"nope"})
