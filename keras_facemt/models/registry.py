"""The one registry of systems: name -> (config class, build function, presets)."""

from __future__ import annotations

import dataclasses
import importlib
from typing import Callable, Dict, List, Optional

from keras_facemt.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class System:
    """A registered system.

    Attributes:
        name: system name (``"ifan"``, ``"uniface"``, ...).
        module: module path holding ``CONFIG``, ``build`` and ``PRESETS``.
        description: one line for ``facemt`` listings.
        job: module of the system's experiment job for the shared runner
            (``training.runner``): its experiments, flags, ``run`` and report.
    """

    name: str
    module: str
    description: str
    job: Optional[str] = None

    def _mod(self):
        return importlib.import_module(self.module)

    def job_module(self):
        """The system's experiment job (``training.runner`` documents what it provides).

        Raises:
            ConfigError: for a system registered without one.
        """
        if not self.job:
            raise ConfigError(f"System {self.name!r} has no training job registered. Received: system={self.name!r}")
        return importlib.import_module(self.job)

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

    @property
    def builds_serving_model(self) -> bool:
        """Whether the deployable graph is built around the trained one (a detector's
        decoding and NMS) rather than being the trained graph itself."""
        return getattr(self._mod(), "build_serving_model", None) is not None

    def serving_spec(self, config):
        """The output declaration and preprocessing of the deployable graph (``configs.outputs``)."""
        return self._mod().serving_spec(config)

    def model_info(self, config, preset: Optional[str] = None, domains=None, deployable: Optional[bool] = None):
        """The ``ModelInfo`` of a model of this system built from ``config``."""
        from keras_facemt.configs.serialization import config_to_dict
        from keras_facemt.models.model_info import ModelInfo

        return ModelInfo(system=self.name, config=config_to_dict(config), serving=self.serving_spec(config),
                         deployable=not self.builds_serving_model if deployable is None else deployable,
                         preset=preset, domains=dict(domains or {}))

    def build(self, config, preset: Optional[str] = None, domains=None):
        """Builds the model (or the ``{name: model}`` dict of a multi-graph system), with its info attached."""
        from keras_facemt.models.model_info import attach

        built = self._mod().build_model(config)
        for model in (built.values() if isinstance(built, dict) else (built,)):
            attach(model, self.model_info(config, preset, domains))
        return built

    def deployable(self, model, info):
        """``model`` (of this system, described by ``info``) as the graph it deploys."""
        if info.deployable:
            return model
        from keras_facemt.configs.serialization import config_from_dict

        config = config_from_dict(self.config_class, dict(info.config))
        return self.serving_model(model, config, info.preset, info.domains)

    def serving_model(self, model, config, preset: Optional[str] = None, domains=None):
        """The model to export: the trained one, or what the system deploys around it
        (a detector's box decoding and NMS) when its module defines ``build_serving_model``."""
        from keras_facemt.models.model_info import attach

        build = getattr(self._mod(), "build_serving_model", None)
        served = model if build is None else build(model, config)
        return attach(served, self.model_info(config, preset, domains, deployable=True))


_SYSTEMS: Dict[str, System] = {}


def register_system(name: str, module: str, description: str, job: Optional[str] = None) -> System:
    """Registers a system: ``module`` holds ``CONFIG_CLASS``, ``PRESETS``, ``build_model``
    and ``serving_spec`` (and ``build_serving_model`` for a detector); ``job`` its
    experiment job. A system outside this package registers itself the same way.

    Raises:
        ConfigError: for a name already taken by another module.
    """
    old = _SYSTEMS.get(name)
    if old is not None and (old.module, old.job) != (module, job):
        raise ConfigError(f"System {name!r} is already registered from {old.module}. Received: module={module!r}")
    _SYSTEMS[name] = System(name, module, description, job)
    return _SYSTEMS[name]


def unregister_system(name: str) -> None:
    """Removes a registration (a system defined for a while, as in tests)."""
    _SYSTEMS.pop(name, None)


register_system("ifan", "keras_facemt.models.ifan.model", "iFAN (Li et al., MM'17): parsing, 5-pt landmarks, emotion",
                "keras_facemt.models.ifan.job")
register_system("uniface", "keras_facemt.models.uniface.model",
                "Uniface (Liao et al.): detection, 5-pt landmarks, 128-D embedding", "keras_facemt.models.uniface.job")
register_system("mtfr", "keras_facemt.models.mtfr.model", "MTFR (Wang et al., ICMR'17): face recognition + 7 attributes",
                "keras_facemt.models.mtfr.job")
register_system("allinone", "keras_facemt.models.allinone.model",
                "All-in-One (Ranjan et al., FG'17): detection, 21-pt landmarks, pose, smile, gender, age, identity",
                "keras_facemt.models.allinone.job")
register_system("tfn", "keras_facemt.models.tfn.model",
                "TFN (Lin et al., TCYB 2019): detection, 68 landmarks, age/gender/ethnicity", "keras_facemt.models.tfn.job")


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
    return system.build(system.config(preset, **overrides), preset=preset)
