"""Extra outputs a scorer or selector asks for, cached on disk: MC-dropout passes (``"mc"``) and penultimate
features (``"features"``). Called by :func:`uqcompress.inference.collect_outputs`.

Cache keys hash (model fingerprint, split fingerprint, head name, and for MC: samples T, p, mode, seed), so a changed
setting never reuses a stale entry. The computation lives in :mod:`uqcompress.uncertainty.mc`.

Example:
    >>> import tempfile, torch
    >>> from uqcompress.cache import set_cache_dir; set_cache_dir(tempfile.mkdtemp())
    >>> from uqcompress.models.small_cnn import SmallCNN
    >>> from uqcompress.models.base import ModelBundle
    >>> from uqcompress.data import Split
    >>> from uqcompress.uncertainty.base import Outputs
    >>> from uqcompress.uncertainty import extras
    >>> b = ModelBundle(SmallCNN().eval(), "small_cnn", "doc", "image", 10, head="classifier.4")
    >>> s = Split(torch.rand(6, 1, 28, 28)); out = Outputs(b.logits(s.x))
    >>> extras.collect(b, "test", s, out, {"mc", "features"}, {"samples": 4, "mode": "head"}, progress=False)
    >>> out.mc_probs.shape, out.features.shape
    (torch.Size([4, 6, 10]), torch.Size([6, 128]))
    >>> set_cache_dir(None)
"""
from __future__ import annotations

import logging
from typing import Any

from uqcompress.cache import cached, fingerprint
from uqcompress.models.base import ModelBundle
from uqcompress.uncertainty.base import Outputs
from uqcompress.uncertainty.mc import MCOptions, mc_probs, penultimate_features

log = logging.getLogger(__name__)


def collect(bundle: ModelBundle, split_name: str, split: Any, out: Outputs, needs: frozenset[str] | set[str],
            options: dict | None, *, batch_size: int = 256, progress: bool = True, split_key: str | None = None) -> None:
    """Fill ``out.features`` (N, D) and/or ``out.mc_probs`` (T, N, K) for ``split`` as ``needs`` asks."""
    split_key = split_key or split.fingerprint()
    if "features" in needs:
        key = fingerprint("features", bundle.fingerprint, split_key, bundle.head)

        def features():
            log.info("features: %s on %s (%d samples, head '%s')", bundle.label, split_name, len(split), bundle.head)
            return penultimate_features(bundle, split.x, batch_size, progress)

        out.features = cached("features", key, features, log=log.debug)
    if "mc" in needs:
        opts = MCOptions.from_options(options)
        key = fingerprint("mc", bundle.fingerprint, split_key, bundle.head, opts.key())

        def passes():
            log.info("MC-dropout: %s on %s (%d samples, T=%d, mode=%s)", bundle.label, split_name, len(split),
                     opts.samples, opts.mode)
            return mc_probs(bundle, split.x, opts, batch_size, progress)

        out.mc_probs = cached("mc", key, passes, log=log.debug)
