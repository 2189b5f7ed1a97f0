"""``quant=none``: the identity scheme (compressed = baseline), for a reference row in a sweep."""
from __future__ import annotations

from uqcompress.compress import SCHEMES, CompressContext
from uqcompress.models.base import ModelBundle


@SCHEMES.register("none", options=())
def no_compression(bundle: ModelBundle, cfg: dict, calib_x, ctx: CompressContext) -> ModelBundle:
    return bundle.with_module(bundle.module, bundle.fingerprint, scheme="none", bits=32, simulated=False)
