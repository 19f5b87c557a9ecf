"""Named experiments: one lookup for every system's ``EXPERIMENTS`` table."""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping, TypeVar

from keras_facemt.errors import ConfigError

T = TypeVar("T")


def named_experiment(experiments: Mapping[str, Callable[[], T]], name: str, overrides: Mapping[str, object],
                     system: str = "") -> T:
    """The experiment ``name`` from ``experiments`` with dataclass-field ``overrides``.

    Args:
        experiments: experiment name -> factory of its frozen dataclass.
        name: the experiment asked for.
        overrides: field -> value replacing the experiment's own.
        system: the system's display name, for messages (``"Uniface"``).

    Raises:
        ConfigError: for an unknown name (listing the known ones) or field.
    """
    label = f"{system} " if system else ""
    if name not in experiments:
        raise ConfigError(f"Unknown {label}experiment {name!r}; known experiments: {sorted(experiments)}. "
                          f"Received: experiment={name!r}")
    exp = experiments[name]()
    fields = {f.name for f in dataclasses.fields(exp)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ConfigError(f"Unknown experiment field(s) {unknown}; fields: {sorted(fields)}. "
                          f"Received: overrides={dict(overrides)}")
    return dataclasses.replace(exp, **overrides) if overrides else exp
