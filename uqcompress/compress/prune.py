"""``quant=prune_global_l1`` / ``quant=prune_2of4``: magnitude pruning that sets weights exactly to zero.

* ``prune_global_l1``: global unstructured L1 pruning (``torch.nn.utils.prune.global_unstructured``) of the
  ``quant.amount`` share (0..1) of the smallest-magnitude weights over all targeted layers, then ``prune.remove``
  so the zeros are baked into plain weights.
* ``prune_2of4``: semi-structured N:M pruning: in every group of ``quant.m`` consecutive weights along the input
  dimension (per output unit; conv kernels flattened) keep the ``quant.n`` largest magnitudes. Layers whose input
  size is not a multiple of ``quant.m`` are skipped (said in ``info['note']``).

Targets: Linear and Conv layers (``quant.target=all``), or for transformers the attention / FFN Linear layers
(``quant.target=attention|ffn``, Namburi et al. 2023); the classifier head is never pruned unless
``quant.include_head=true``. ``info['sparsity']`` is measured over the targeted weights after pruning. Zeros are
stored dense: no size or CPU speed gain without sparse kernels (``info['note']``).

Example:
    >>> import torch
    >>> from uqcompress.models.base import ModelBundle
    >>> from uqcompress.compress import compress
    >>> net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    >>> p = compress(ModelBundle(net, "mlp", "x", "image", 3, head="2"), {"name": "prune_global_l1", "amount": 0.5},
    ...              None)
    >>> p.info["sparsity"], bool((p.module[2].weight == net[2].weight).all())
    (0.5, True)
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils import prune

from uqcompress.compress import SCHEMES, CompressContext, scheme_fingerprint
from uqcompress.compress._targets import resolve, select_layers
from uqcompress.measure import weight_sparsity
from uqcompress.models.base import ModelBundle

PRUNABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
NOTE = "pruned zeros stored dense (no sparse kernels): pruning alone gives no size or CPU latency gain"


def _float_layers(bundle: ModelBundle, model: nn.Module, cfg: dict, scheme: str) -> list[str]:
    names = select_layers(bundle, model, cfg, PRUNABLE, scheme)
    bad = [n for n in names if type(model.get_submodule(n).weight) not in (torch.Tensor, nn.Parameter)
           or not model.get_submodule(n).weight.is_floating_point()]
    if bad:
        raise ValueError(f"quant={scheme}: layer '{bad[0]}' of model '{bundle.name}' is already quantized; "
                         "prune before quantizing (quant=chain with the prune step first)")
    return names


GLOBAL_L1 = {"amount": 0.5, "target": "all", "include_head": False}
N_OF_M = {"n": 2, "m": 4, "target": "all", "include_head": False}


@SCHEMES.register("prune_global_l1", prunes=True, options=tuple(GLOBAL_L1))
def prune_global_l1(bundle: ModelBundle, cfg: dict, calib_x, ctx: CompressContext) -> ModelBundle:
    cfg = resolve("prune_global_l1", cfg, GLOBAL_L1)
    amount = cfg["amount"]
    if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not 0 <= amount <= 1:
        raise ValueError(f"quant.amount={amount!r} must be a number in [0, 1]")
    model = copy.deepcopy(bundle.module).eval()
    names = _float_layers(bundle, model, cfg, "prune_global_l1")
    params = [(model.get_submodule(n), "weight") for n in names]
    # torch's global pruning flattens weights with .view(-1): channels-last conv weights (the pretrained image
    # models keep them for faster CPU convs) are made contiguous for it, then put back in channels-last
    channels_last = [layer for layer, _ in params
                     if layer.weight.dim() == 4 and not layer.weight.is_contiguous()
                     and layer.weight.is_contiguous(memory_format=torch.channels_last)]
    with torch.no_grad():
        for layer in channels_last:
            layer.weight.data = layer.weight.data.contiguous()
        prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=float(amount))
        for layer, pname in params:
            prune.remove(layer, pname)
        for layer in channels_last:
            layer.weight.data = layer.weight.data.contiguous(memory_format=torch.channels_last)
    sparsity = weight_sparsity(model, names)
    return bundle.with_module(
        model, scheme_fingerprint(bundle, cfg), scheme="prune_global_l1", bits=32, simulated=False,
        sparsity=sparsity, sparsity_target=cfg["target"], pruned_layers=names, backend="torch-dense", note=NOTE,
    )


def nm_mask(weight: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Boolean keep-mask with the ``n`` largest |w| in every ``m`` consecutive inputs of each output row.

    >>> nm_mask(torch.tensor([[1., -4., 3., 2.]]), 2, 4).tolist()
    [[False, True, True, False]]
    """
    rows = weight.reshape(weight.shape[0], -1)
    groups = rows.abs().reshape(rows.shape[0], -1, m)
    keep = torch.zeros_like(groups, dtype=torch.bool)
    keep.scatter_(-1, groups.topk(n, dim=-1).indices, True)
    return keep.reshape(weight.shape)


@SCHEMES.register("prune_2of4", prunes=True, options=tuple(N_OF_M))
def prune_n_of_m(bundle: ModelBundle, cfg: dict, calib_x, ctx: CompressContext) -> ModelBundle:
    cfg = resolve("prune_2of4", cfg, N_OF_M)
    n, m = cfg["n"], cfg["m"]
    if not (isinstance(n, int) and isinstance(m, int) and 0 < n < m):
        raise ValueError(f"quant.n={n!r}, quant.m={m!r}: need integers with 0 < n < m (e.g. n=2 m=4)")
    model = copy.deepcopy(bundle.module).eval()
    names = _float_layers(bundle, model, cfg, "prune_2of4")
    fits = [nm for nm in names if model.get_submodule(nm).weight[0].numel() % m == 0]
    if not fits:
        raise ValueError(f"quant=prune_2of4: no targeted layer of model '{bundle.name}' has an input size divisible "
                         f"by quant.m={m}; use quant=prune_global_l1")
    with torch.no_grad():
        for nm in fits:
            w = model.get_submodule(nm).weight
            w.mul_(nm_mask(w, n, m).to(w.dtype))
    note = NOTE + (f"; {len(names) - len(fits)} layers not divisible by m={m} left dense" if len(fits) < len(names)
                   else "")
    return bundle.with_module(
        model, scheme_fingerprint(bundle, cfg), scheme="prune_2of4", bits=32, simulated=False,
        sparsity=weight_sparsity(model, names), sparsity_target=cfg["target"], pruned_layers=fits,
        backend="torch-dense", note=note,
    )
