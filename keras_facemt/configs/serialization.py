"""Config dataclasses <-> JSON, for ``run_config.json``, manifests and model files."""

from __future__ import annotations

import dataclasses
import typing
from typing import Dict

from keras_facemt.errors import ConfigError


def _to_field_type(value, annotation):
    """JSON lists back to tuples where the dataclass field is a tuple."""
    text = str(annotation)
    if isinstance(value, list) and ("Tuple" in text or "tuple" in text):
        return tuple(_to_field_type(v, "") for v in value)
    if isinstance(value, list):
        return [_to_field_type(v, "") for v in value]
    return value


def config_to_dict(config) -> Dict[str, object]:
    """A config dataclass as JSON-ready values."""
    return dataclasses.asdict(config)


def config_from_dict(config_class, values: Dict[str, object]):
    """Builds a frozen config dataclass from JSON values (lists -> tuples).

    Raises:
        ConfigError: for unknown fields (validation errors come from the class).
    """
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{config_class.__name__} has no fields {unknown}. Received: config keys={sorted(values)}")
    try:
        hints = typing.get_type_hints(config_class)
    except Exception:
        hints = {}
    kwargs = {k: _to_field_type(v, hints.get(k, fields[k].type)) for k, v in values.items()}
    return config_class(**kwargs)
