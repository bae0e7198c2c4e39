"""One small registry class, used for every kind of named thing (models, datasets, attacks, methods)."""
from __future__ import annotations

from typing import Callable, Generic, TypeVar

from .errors import UnknownNameError

T = TypeVar("T")

#: called once, the first time any registry misses a name: imports the modules that register the
#: pillars' entries (installed by the package root, since the core may not import the pillars)
_FALLBACK: list[Callable[[], object]] = []
_fallback_done = False


def on_first_unknown_name(load: Callable[[], object]) -> None:
    """Install ``load()``, run once when a name is first missing from any registry, then retried."""
    _FALLBACK.append(load)


def _load_fallback_once() -> bool:
    """Run the installed loaders (once per process); ``True`` if they ran now."""
    global _fallback_done
    if _fallback_done or not _FALLBACK:
        return False
    _fallback_done = True
    for load in _FALLBACK:
        load()
    return True


class Registry(Generic[T]):
    """Maps names to factories; unknown names raise a one-line UserError listing the known ones."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, obj: T | None = None):
        """Register ``obj`` under ``name``; usable as a decorator when ``obj`` is omitted."""

        def add(o: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = o
            return o

        return add(obj) if obj is not None else add

    def register_class(self, name: str):
        """Decorator for class registries: registers the class and sets its ``name`` attribute."""

        def add(cls):
            self.register(name, cls)
            cls.name = name
            return cls

        return add

    def get(self, name: str) -> T:
        key = name.strip().lower()
        if key not in self._items and _load_fallback_once():
            return self.get(name)   # a pillar's entry (e.g. a few-shot backbone) registered on demand
        if key not in self._items:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(sorted(self._items))}"
            )
        return self._items[key]

    def names(self) -> list[str]:
        _load_fallback_once()
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        key = name.strip().lower()
        return key in self._items or (_load_fallback_once() and key in self._items)
