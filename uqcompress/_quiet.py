"""Known, harmless third-party messages, silenced only where uqcompress triggers them and only by their text.

Each entry names the logger or warning category and a pattern of the exact message; anything else still shows.
Used as ``with known_chatter(): ...`` around the call that triggers it (importing torchao through transformers or
for a weight-only scheme, loading a predictor file with quantized tensors).

- torchao, on import: ``Failed to load .../_C_*.so`` (CUDA-only extensions a CPU build cannot load) and
  ``Detected no triton`` (CPU machines have no Triton);
- torch.utils._pytree, on torchao's import: ``<enum ...> is an Enum subclass and is now natively supported by
  torch.compile ...`` (torchao registers its enums the old way);
- torch.load of a file with quantized tensors (a SelectivePredictor of an int8 model): ``TypedStorage is
  deprecated`` and ``torch.quantize_per_tensor ... are deprecated`` (torch's own unpickler uses them).

Example:
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as seen:
    ...     warnings.simplefilter("always")
    ...     with known_chatter():
    ...         warnings.warn("TypedStorage is deprecated. It will be removed in the future", UserWarning)
    ...         warnings.warn("something else", UserWarning)
    >>> [str(w.message) for w in seen]
    ['something else']
"""
from __future__ import annotations

import logging
import re
import warnings
from contextlib import contextmanager
from typing import Iterator

#: logger name -> message patterns (re.search) dropped while the context is active
LOG_CHATTER: dict[str, tuple[str, ...]] = {
    "torchao": (r"^Failed to load .*\.so\b",),
    "torchao.kernel.intmm": (r"Detected no triton",),
    "torch.utils._pytree": (r"is an Enum subclass and is now natively supported by torch\.compile",),
}
#: (category, message pattern matched at the start of the message, as warnings.filterwarnings does)
WARNING_CHATTER: tuple[tuple[type[Warning], str], ...] = (
    (UserWarning, r"TypedStorage is deprecated"),
    (UserWarning, r"torch\.quantize_per_tensor, torch\.quantize_per_channel and other quantized tensor creation"),
)


class _DropMessages(logging.Filter):
    def __init__(self, patterns: tuple[str, ...]) -> None:
        super().__init__()
        self.patterns = [re.compile(p) for p in patterns]

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not any(p.search(msg) for p in self.patterns)


@contextmanager
def known_chatter() -> Iterator[None]:
    """Drop the messages listed in :data:`LOG_CHATTER` and :data:`WARNING_CHATTER` while the block runs."""
    installed = [(logging.getLogger(name), _DropMessages(patterns)) for name, patterns in LOG_CHATTER.items()]
    for logger, f in installed:
        logger.addFilter(f)
    try:
        with warnings.catch_warnings():
            for category, pattern in WARNING_CHATTER:
                warnings.filterwarnings("ignore", message=pattern, category=category)
            yield
    finally:
        for logger, f in installed:
            logger.removeFilter(f)
