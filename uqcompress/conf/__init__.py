"""The Hydra configs (YAML) of ``python -m uqcompress``. This file makes ``uqcompress.conf`` a regular package so that
Hydra finds the primary config through ``pkg://uqcompress.conf`` when the app is started by the installed
``uqcompress`` console script (Hydra's package config source requires an ``__init__.py``)."""
