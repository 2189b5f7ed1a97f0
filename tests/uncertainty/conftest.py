import pytest

from uqcompress.cache import set_cache_dir


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    """A fresh, empty cache for one test."""
    monkeypatch.setenv("UQCOMPRESS_CACHE", str(tmp_path / "cache"))
    set_cache_dir(None)
    yield tmp_path / "cache"
    set_cache_dir(None)
