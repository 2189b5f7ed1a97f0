"""``quant=int8_weight_only`` / ``quant=int4_weight_only``: torchao weight-only quantization of Linear layers.

What runs where (torchao 0.18, measured on this project's machines):

* ``int8_weight_only``: ``Int8WeightOnlyConfig`` (per-row, or per-group with ``quant.group_size``). Weights are
  really stored as int8 + scales (state_dict ~1/4); on CPU each matmul upcasts the int8 weight to the activation
  dtype (no int8 weight-only GEMM), so it is exact int8-weight numerics, not a simulation.
* ``int4_weight_only`` on CUDA: ``Int4WeightOnlyConfig`` (tinygemm tile-packed int4, bf16 activations; the model is
  cast to bf16), a real int4 kernel.
* ``int4_weight_only`` on CPU: torchao's ``Int4WeightOnlyConfig`` has no CPU path in 0.18 (its formats need CUDA or
  the ``mslk`` package), so the same grouping and rounding (asymmetric, groups of ``quant.group_size`` along the
  input dim) is applied with ``IntxWeightOnlyConfig(weight_dtype=int4)``: int4 values held unpacked in int8 and
  dequantized per matmul. Numerics are int4, storage is int8-sized, speed is not int4's: ``simulated: true``.
  Evaluation passes over a split dequantize each weight once per pass instead (:func:`dequantized_for_pass`,
  bit-identical logits); the latency figure and a deployed predictor keep torchao's per-matmul path.

Layers whose input size is not a multiple of ``quant.group_size`` are left in float (counted in ``info['note']``).

Example:
    >>> import torch
    >>> from uqcompress.models.base import ModelBundle, module_device
    >>> from uqcompress.compress import compress
    >>> net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))
    >>> q = compress(ModelBundle(net, "mlp", "x", "image", 3), {"name": "int4_weight_only"}, None)
    >>> q.info["bits"], q.info["simulated"], q.logits(torch.zeros(2, 64)).shape
    (4, True, torch.Size([2, 3]))
"""
from __future__ import annotations

import copy
import time
from contextlib import contextmanager
from functools import partial
from typing import Iterator

import torch
from torch import nn

from uqcompress.compress import SCHEMES, CompressContext, scheme_fingerprint
from uqcompress.compress._targets import resolve, select_layers
from uqcompress.compress.cast import cast_module
from uqcompress.models.base import ModelBundle, module_device

DEFAULTS = {
    "int8_weight_only": {"group_size": None, "target": "all", "include_head": True},
    "int4_weight_only": {"group_size": 32, "mapping": "asymmetric", "target": "all", "include_head": True},
}
MAPPINGS = ("asymmetric", "symmetric")


@contextmanager
def quiet_torchao() -> Iterator[None]:
    """Import torchao without its known import-time messages (CUDA-only extension libraries a CPU build cannot load,
    no Triton, pytree enum registration): see :mod:`uqcompress._quiet`."""
    from uqcompress._quiet import known_chatter

    with known_chatter():
        import torchao  # noqa: F401
        yield


@contextmanager
def dequantized_for_pass(module: nn.Module) -> Iterator[int]:
    """For one evaluation pass, each Linear weight held as torchao's ``IntxUnpackedToInt8Tensor`` (the CPU int4
    path) is replaced by its ``dequantize()``; the quantized weights are put back after the pass, also on error.
    Yields the number of weights swapped.

    Why our own: torchao's linear for that tensor is ``F.linear(x, weight.dequantize(), bias)``, so it rebuilds the
    whole float weight on every call: a multiple-choice LM runs its decoder twice per chunk of questions, so a split
    of 1,000 probes dequantizes every weight ~125 times. Here it is done once per pass, with the same
    ``dequantize()`` and the same ``F.linear``: the logits are bit-identical (tests/compress/test_weight_only_pass.py;
    ``scripts/bench_int4_pass.py`` measures the time). Weights with activation quantization are left alone.

    >>> import torch
    >>> from uqcompress.compress import compress
    >>> from uqcompress.models.base import ModelBundle
    >>> q = compress(ModelBundle(torch.nn.Sequential(torch.nn.Linear(64, 3)), "mlp", "x", "image", 3),
    ...              {"name": "int4_weight_only"}, None)
    >>> x = torch.randn(4, 64)
    >>> with torch.inference_mode(), dequantized_for_pass(q.module) as n:
    ...     fast = q.module(x)
    >>> n, torch.equal(fast, q.logits(x)), type(q.module[0].weight).__name__
    (1, True, 'IntxUnpackedToInt8Tensor')
    """
    from torchao.quantization.quantize_.workflows.intx.intx_unpacked_to_int8_tensor import IntxUnpackedToInt8Tensor

    swapped: list[tuple[nn.Linear, nn.Parameter]] = []
    try:
        with torch.no_grad():
            for m in module.modules():
                w = getattr(m, "weight", None)
                if (isinstance(m, nn.Linear) and isinstance(w, IntxUnpackedToInt8Tensor)
                        and w.activation_quantization is None):
                    swapped.append((m, w))
                    m.weight = nn.Parameter(w.dequantize(), requires_grad=False)
        yield len(swapped)
    finally:
        for m, w in swapped:
            m.weight = w


def _groupable(model: nn.Module, names: list[str], group_size: int | None) -> tuple[list[str], list[str]]:
    if group_size is None:
        return names, []
    ok = [n for n in names if model.get_submodule(n).in_features % group_size == 0]
    return ok, [n for n in names if n not in ok]


#: recipes (:mod:`uqcompress.compress.recipes`) each scheme accepts: ``quant.recipe=[hqq]`` for CPU int4
RECIPES_OF = {"int8_weight_only": (), "int4_weight_only": ("hqq",)}


def _check_recipe(name: str, cfg: dict, device: str | None = None) -> list[str]:
    from uqcompress.compress.recipes import check_recipes

    return check_recipes(name, cfg.get("recipe"), None, RECIPES_OF[name], device)


def _weight_only(name: str, bundle: ModelBundle, cfg: dict, calib_x, ctx: CompressContext) -> ModelBundle:
    device = module_device(bundle.module).type
    recipe = _check_recipe(name, cfg, device)  # hqq: the CPU int4 path only (RECIPES["hqq"].devices)
    cfg = resolve(name, {k: v for k, v in cfg.items() if k != "recipe"}, DEFAULTS[name])
    if recipe:  # in the cache key only when set: plain int4 keeps its key
        cfg["recipe"] = recipe
    gs = cfg["group_size"]
    if gs is not None and (not isinstance(gs, int) or gs < 1):
        raise ValueError(f"quant.group_size={gs!r} must be a positive int (or null for per-row)")
    if name == "int4_weight_only" and gs is None:
        raise ValueError("quant.group_size=null is not allowed for int4_weight_only; use e.g. 32, 64 or 128")
    if cfg.get("mapping", "asymmetric") not in MAPPINGS:
        raise ValueError(f"quant.mapping='{cfg['mapping']}' is not one of: {', '.join(MAPPINGS)}")
    model = copy.deepcopy(bundle.module).eval()
    names = select_layers(bundle, model, cfg, (nn.Linear,), name)
    names, skipped = _groupable(model, names, gs)
    if not names:
        raise ValueError(f"quant={name}: no Linear layer of model '{bundle.name}' has an input size divisible by "
                         f"quant.group_size={gs}; use a smaller quant.group_size")
    with quiet_torchao():
        from torchao.quantization import (Int4WeightOnlyConfig, Int8WeightOnlyConfig, IntxWeightOnlyConfig,
                                          MappingType, quantize_)
        from torchao.quantization.granularity import PerGroup

        selected = set(names)
        info: dict = {"simulated": False, "group_size": gs}
        if name == "int8_weight_only":
            config = Int8WeightOnlyConfig(group_size=gs, set_inductor_config=False) if gs else \
                Int8WeightOnlyConfig(set_inductor_config=False)
            info.update(bits=8, backend=f"torchao-int8wo-{device}",
                        note="int8 weights upcast to the activation dtype per matmul (no int8 weight-only GEMM)"
                        if device == "cpu" else "torchao int8 weight-only")
        elif device == "cuda":
            model = cast_module(model, torch.bfloat16)
            config = Int4WeightOnlyConfig(group_size=gs, int4_packing_format="tile_packed_to_4d",
                                          set_inductor_config=False)
            info.update(bits=4, backend="torchao-int4wo-cuda-tinygemm",
                        note="torchao tinygemm int4 kernel; activations bf16")
        else:
            from torchao.quantization.quantize_.workflows.intx.intx_choose_qparams_algorithm import (
                IntxChooseQParamsAlgorithm)

            mapping = MappingType.ASYMMETRIC if cfg["mapping"] == "asymmetric" else MappingType.SYMMETRIC
            # quant.recipe=[hqq]: torchao's half-quadratic scale search (HQQ, scale only: symmetric int4 whatever
            # quant.mapping says), instead of the min/max affine scales
            algorithm = IntxChooseQParamsAlgorithm.HQQ_SCALE_ONLY if "hqq" in recipe else \
                IntxChooseQParamsAlgorithm.AFFINE
            config = IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=PerGroup(gs), mapping_type=mapping,
                                          intx_choose_qparams_algorithm=algorithm)
            info.update(bits=4, simulated=True, backend="torchao-intx-int4-cpu", dequantize_per_pass=True,
                        note=f"no int4 CPU kernel in torchao {_torchao_version()}: int4 values ({cfg['mapping']}, "
                             f"groups of {gs}) stored unpacked in int8 and dequantized per matmul")
        t0 = time.perf_counter()
        quantize_(model, config, filter_fn=lambda mod, fqn: fqn in selected)
        if recipe:
            info.update(recipe="+".join(recipe), recipe_seconds=round(time.perf_counter() - t0, 3), recipe_passes=0.0,
                        recipe_rows="none (weights only)")
    if skipped:
        info["note"] += f"; {len(skipped)} Linear layers not divisible by group_size {gs} stay float"
    convs = sum(isinstance(m, nn.modules.conv._ConvNd) for m in model.modules())
    if convs:
        info["note"] += f"; {len(names)} Linear layers quantized, {convs} conv layers stay float"
    # the key holds the device: CPU int4 is a simulation, CUDA int4 a real kernel (different logits)
    return bundle.with_module(model, scheme_fingerprint(bundle, cfg), scheme=name, quantized_layers=names, **info)


def _torchao_version() -> str:
    import torchao

    return torchao.__version__


# deployable: torchao registers its weight tensor subclasses as safe globals, so torch.load(weights_only=True) reads
# them (once torchao is imported: SelectivePredictor.load imports it when a file needs it)
SCHEMES.register("int8_weight_only", partial(_weight_only, "int8_weight_only"), options=tuple(DEFAULTS["int8_weight_only"]))
SCHEMES.register("int4_weight_only", partial(_weight_only, "int4_weight_only"),
                 options=(*DEFAULTS["int4_weight_only"], "recipe"), recipes=RECIPES_OF["int4_weight_only"],
                 validate=partial(_check_recipe, "int4_weight_only"))
