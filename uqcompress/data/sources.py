"""Where each data set and pretrained weight file comes from: its routes, in order, the first one present wins.

A :class:`Source` lists :class:`Route` s (a package file, a Debian package, a cached copy, a folder or archive the
user points to, a download); each route knows how to find its file (``locate``), what it is, its size and licence,
whether it works without a network beyond the package registries, and the exact command or setting that makes it
present. :meth:`Source.resolve` returns the first route that is present; when none is, one
:class:`SourceUnavailable` line names every route with its command, and why a route that was tried failed.

``python -m uqcompress.data.sources`` prints every source, its routes and which are present on this machine (the
README's data table comes from the same registry).

Example:
    >>> from uqcompress.data.sources import Route, Source
    >>> src = Source("toy", "a toy data set", (
    ...     Route("user", "data.root=DIR", "set data.root=DIR", locate=lambda cfg: cfg.get("root")),
    ...     Route("debian", "Debian package toy-data", "sudo apt-get install toy-data", locate=lambda cfg: None)))
    >>> src.resolve({"root": "/data/toy"})[1]
    '/data/toy'
    >>> src.resolve({})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    uqcompress.data.sources.SourceUnavailable: no source of toy (a toy data set) is present; routes: (1) data.root=DIR: set data.root=DIR; (2) Debian package toy-data: sudo apt-get install toy-data
"""
from __future__ import annotations

import contextlib
import socket
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from uqcompress.registry import Registry

#: kinds of route, in the order they are usually tried
KINDS = ("cache", "user", "package", "debian", "archive", "download")


class SourceUnavailable(FileNotFoundError):
    """No route of a source is present; the message is one line naming every route and its command."""


class RouteFailed(OSError):
    """A route that was tried and failed (a download, an unreadable archive): the source goes on to the next one."""


@dataclass(frozen=True)
class Route:
    """One place a source can come from.

    Attributes:
        kind: one of :data:`KINDS`.
        what: what it is, e.g. ``"Debian package dataset-fashion-mnist"``.
        how: the exact command or setting that makes it present, e.g. ``"sudo apt-get install dataset-fashion-mnist"``.
        locate: ``fn(cfg) -> path or None``: the file or folder when present, None when absent; raises
            :class:`RouteFailed` when it was tried and failed (a download that did not go through).
        size: download / disk size, e.g. ``"31 MB"``.
        licence: the data's or weights' licence.
        offline: whether it works with no network beyond the package registries (PyPI, Debian, npm).
    """

    kind: str
    what: str
    how: str
    locate: Callable[[dict], Any] = field(repr=False, compare=False)
    size: str = ""
    licence: str = ""
    offline: bool = True

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"route kind {self.kind!r} is not one of {', '.join(KINDS)}")


@dataclass(frozen=True)
class Source:
    """A data set or weight file and its routes, tried in order."""

    name: str
    description: str
    routes: tuple[Route, ...]
    optional: bool = False  #: no package registry ships it: tests that need it skip with the reason

    def resolve(self, cfg: dict | None = None) -> tuple[Route, Any]:
        """The first present route and what its ``locate`` returned; :class:`SourceUnavailable` when none is."""
        cfg = dict(cfg or {})
        failed: dict[int, str] = {}
        for i, route in enumerate(self.routes):
            try:
                found = route.locate(cfg)
            except RouteFailed as e:
                failed[i] = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                continue
            if found is not None:
                return route, found
        parts = []
        for i, r in enumerate(self.routes):
            why = f" (tried: {failed[i]})" if i in failed else ""
            parts.append(f"({i + 1}) {r.what}: {r.how}{why}")
        raise SourceUnavailable(f"no source of {self.name} ({self.description}) is present; routes: "
                                + "; ".join(parts))

    def present(self, cfg: dict | None = None) -> Route | None:
        """The route that would serve, without downloading (download routes count as absent); None when none."""
        for route in self.routes:
            if route.kind == "download":
                continue
            try:
                if route.locate(dict(cfg or {})) is not None:
                    return route
            except RouteFailed:
                continue
        return None


#: every source, keyed by the data set's (or weights') config name; each data module registers its own next to its
#: loader, and :mod:`uqcompress.data.weights` those of the packaged pretrained weights
SOURCES = Registry("source", package="uqcompress.data")


def register(source: Source) -> Source:
    """Add ``source`` to :data:`SOURCES` under its name (a module calls this once at import)."""
    SOURCES.register(source.name)(source)
    return source


@contextlib.contextmanager
def socket_timeout(seconds: float) -> Iterator[None]:
    """A default socket timeout for libraries that open URLs without one (torch hub, torchvision's download): a
    silently dropped connection must not hang a run forever."""
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def package_route(package: str, relpath: str, what: str, pip_name: str | None = None, nodeps: bool = False,
                  size: str = "", licence: str = "") -> Route:
    """A route to a file shipped inside an installed Python package (found without importing the package)."""
    from uqcompress.data import package_file

    pip_name = pip_name or package.replace("_", "-")

    def locate(cfg: dict):
        try:
            return package_file(package, relpath, pip_name)
        except (ModuleNotFoundError, FileNotFoundError):
            return None

    flag = " --no-deps" if nodeps else ""
    return Route("package", what, f"pip install{flag} {pip_name}", locate, size=size, licence=licence)


def table() -> list[dict[str, str]]:
    """One row per (source, route): name, route, how, size, licence, offline, present here."""
    rows = []
    for name in sorted(SOURCES):
        src = SOURCES.get(name)
        here = src.present()
        for r in src.routes:
            rows.append({"source": name, "optional": "yes" if src.optional else "", "route": r.what, "how": r.how,
                         "size": r.size, "licence": r.licence, "offline": "yes" if r.offline else "no",
                         "present": "yes" if r is here else ""})
    return rows


def main(argv: list[str] | None = None) -> int:
    """``python -m uqcompress.data.sources [--markdown]``: every data set / weight source, its routes and which is
    present here (``--markdown``: the README's table, without the machine-specific column)."""
    from uqcompress.data import sources  # the registry, also when this file runs as __main__

    argv = sys.argv[1:] if argv is None else argv
    rows = sources.table()
    if "--markdown" in argv:
        cols = ["source", "route", "how", "size", "licence", "offline", "optional"]
        print("| " + " | ".join(cols) + " |")
        print("|" + "---|" * len(cols))
        for r in rows:
            print("| " + " | ".join(r[c].replace("|", "\\|") for c in cols) + " |")
        return 0
    cols = ["source", "route", "how", "size", "licence", "offline", "present"]
    width = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols}
    print("  ".join(c.ljust(width[c]) for c in cols))
    for r in rows:
        print("  ".join(r[c].ljust(width[c]) for c in cols))
    return 0


__all__ = ["KINDS", "Route", "RouteFailed", "SOURCES", "Source", "SourceUnavailable", "package_route", "register",
           "socket_timeout", "table"]

if __name__ == "__main__":
    sys.exit(main())
