"""One small registry class, used for every kind of named thing (models, datasets, attacks, methods)."""
from __future__ import annotations

from typing import Callable, Generic, TypeVar

from .errors import UnknownNameError

T = TypeVar("T")


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
        if key not in self._items:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(sorted(self._items))}"
            )
        return self._items[key]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return name.strip().lower() in self._items
