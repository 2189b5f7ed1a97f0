"""``quant=drop_layers quant.n=2``: remove the last ``n`` transformer blocks (Dutta et al. 2024, arXiv 2407.09141).

Works on LLaMA-style decoders (``model.layers``, e.g. SmolLM2) and BERT-style encoders (``encoder.layer``), found
anywhere inside the bundle's module; the final norm and the head stay. The owning model's
``config.num_hidden_layers`` (and ``layer_types`` where present) is updated so Hugging Face code that reads it
(key/value caches) agrees. Any other model fails with one line.

Example:
    >>> from uqcompress._compat import install_shim; _ = install_shim()  # transformers imports torchvision
    >>> from transformers import LlamaConfig, LlamaForCausalLM
    >>> from uqcompress.models.base import ModelBundle
    >>> from uqcompress.compress import compress
    >>> lm = LlamaForCausalLM(LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3,
    ...     num_attention_heads=2, num_key_value_heads=2, vocab_size=50))
    >>> b = ModelBundle(lm, "tiny", "x", "multiple_choice", 4)
    >>> small = compress(b, {"name": "drop_layers", "n": 2}, None)
    >>> len(small.module.model.layers), small.module.config.num_hidden_layers, len(lm.model.layers)
    (1, 1, 3)
"""
from __future__ import annotations

import copy

from torch import nn

from uqcompress.compress import SCHEMES, CompressContext, scheme_fingerprint
from uqcompress.models.base import ModelBundle

#: (owner attribute, list attribute) pairs that hold a stack of blocks
_STACKS = (("model", "layers"), ("encoder", "layer"))


def find_layer_stack(module: nn.Module) -> tuple[str, nn.Module, str]:
    """(qualified name of the block list, the module owning it, attribute name) of the single block stack.

    Raises a one-line ValueError when there is none (or more than one, e.g. an encoder-decoder).
    """
    found = []
    for name, m in module.named_modules():
        for owner_attr, list_attr in _STACKS:
            parts = name.split(".") if name else []
            if parts[-1:] == [owner_attr] and isinstance(getattr(m, list_attr, None), nn.ModuleList):
                found.append((f"{name}.{list_attr}", m, list_attr))
    if not found:
        raise ValueError(f"quant=drop_layers needs a LLaMA-style 'model.layers' or BERT-style 'encoder.layer' block "
                         f"list; {type(module).__name__} has neither")
    if len(found) > 1:
        raise ValueError(f"quant=drop_layers found several block lists ({', '.join(f[0] for f in found)}); "
                         f"it handles models with exactly one")
    return found[0]


def _configs(root: nn.Module, owner: nn.Module) -> list:
    """Distinct HF configs of the owner and the models around it (``lm.config`` is usually ``lm.model.config``)."""
    out = []
    for m in [owner, *root.modules()]:
        c = getattr(m, "config", None)
        if c is not None and hasattr(c, "num_hidden_layers") and all(c is not x for x in out):
            out.append(c)
    return out


@SCHEMES.register("drop_layers", options=("n",))
def drop_layers(bundle: ModelBundle, cfg: dict, calib_x, ctx: CompressContext) -> ModelBundle:
    n = cfg.get("n", 2)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"quant.n={n!r} must be a positive integer (how many last layers to drop)")
    model = copy.deepcopy(bundle.module)
    where, owner, attr = find_layer_stack(model)
    layers = getattr(owner, attr)
    total = len(layers)
    if n >= total:
        raise ValueError(f"quant.n={n} must be less than the {total} layers of '{bundle.name}' ({where})")
    setattr(owner, attr, nn.ModuleList(list(layers)[: total - n]))
    for c in _configs(model, owner):
        if c.num_hidden_layers == total:
            c.num_hidden_layers = total - n
            if isinstance(getattr(c, "layer_types", None), list) and len(c.layer_types) == total:
                c.layer_types = c.layer_types[: total - n]
    return bundle.with_module(model.eval(), scheme_fingerprint(bundle, cfg), scheme="drop_layers", bits=32,
                              simulated=False, layers_dropped=n, layers_kept=total - n, layer_stack=where)
