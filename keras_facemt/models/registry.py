"""The one registry of systems: name -> (config class, build function, presets)."""

from __future__ import annotations

import dataclasses
import importlib
from typing import Callable, Dict, List

from keras_facemt.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class System:
    """A registered system.

    Attributes:
        name: system name (``"ifan"``, ``"uniface"``, ...).
        module: module path holding ``CONFIG``, ``build`` and ``PRESETS``.
        description: one line for ``facemt`` listings.
    """

    name: str
    module: str
    description: str

    def _mod(self):
        return importlib.import_module(self.module)

    @property
    def config_class(self):
        return self._mod().CONFIG_CLASS

    @property
    def presets(self) -> Dict[str, Callable]:
        return self._mod().PRESETS

    def config(self, preset: str = "small", **overrides):
        """The preset's config with ``overrides`` applied (validated)."""
        if preset not in self.presets:
            raise ConfigError(
                f"Unknown preset {preset!r} for system {self.name!r}; presets: {sorted(self.presets)}. "
                f"Received: preset={preset!r}"
            )
        cfg = self.presets[preset]()
        return dataclasses.replace(cfg, **overrides) if overrides else cfg

    def build(self, config):
        return self._mod().build_model(config)

    def serving_model(self, model, config):
        """The model to export: the trained one, or what the system deploys around it
        (a detector's box decoding and NMS) when its module defines ``build_serving_model``."""
        build = getattr(self._mod(), "build_serving_model", None)
        return model if build is None else build(model, config)


_SYSTEMS: Dict[str, System] = {}


def register_system(name: str, module: str, description: str) -> None:
    _SYSTEMS[name] = System(name, module, description)


register_system("ifan", "keras_facemt.models.ifan.model", "iFAN (Li et al., MM'17): parsing, 5-pt landmarks, emotion")
register_system("uniface", "keras_facemt.models.uniface.model", "Uniface (Liao et al.): detection, 5-pt landmarks, 128-D embedding")
register_system("mtfr", "keras_facemt.models.mtfr.model", "MTFR (Wang et al., ICMR'17): face recognition + 7 attributes")


def list_systems() -> List[str]:
    return sorted(_SYSTEMS)


def get_system(name: str) -> System:
    """Returns a registered system.

    Raises:
        ConfigError: if ``name`` is unknown.
    """
    try:
        return _SYSTEMS[name]
    except KeyError:
        raise ConfigError(f"Unknown system {name!r}; systems: {list_systems()}. Received: name={name!r}") from None


def build_model(name: str, preset: str = "small", **overrides):
    """Builds system ``name`` from a preset config with ``overrides``.

    Example:
        >>> model = build_model("ifan", preset="small", iterations=2)
    """
    system = get_system(name)
    return system.build(system.config(preset, **overrides))
