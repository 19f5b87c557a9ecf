"""What a model is: its system, preset, config, BN domains and output declaration.

A model built through the registry (``keras_facemt.build_model``,
``System.build``), restored by an export, or loaded by ``keras_facemt.load_model``
carries a ``ModelInfo``; ``keras_facemt.save_model`` writes it into the ``.keras``
file (a ``keras_facemt.json`` member beside Keras's own ``config.json``), so
``load_model``, ``FaceAnalyzer``, ``facemt export`` and ``facemt evaluate`` need no
``run_config.json`` beside a model file.

The info is kept beside the model object (a weak map), never as a model attribute,
so it does not enter Keras's own serialisation or the model's tracked state.
"""

from __future__ import annotations

import dataclasses
import weakref
from typing import Dict, Mapping, Optional

from keras_facemt.configs.outputs import ServingSpec
from keras_facemt.errors import ConfigError

_INFO: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
# Beside a run's checkpoints: how to rebuild the model that any of them restores into.
RUN_CONFIG = "run_config.json"


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """Identity of a keras-facemt model.

    Attributes:
        system: registered system name (``ifan``, ``uniface``, ...).
        config: the system config's fields (JSON values).
        serving: output declaration of the *deployable* graph.
        deployable: whether the model this info belongs to is that graph (False for a
            training graph whose deployable graph is built around it, as Uniface's).
        preset: the preset the config came from, when known.
        domains: dataset name -> BN domain id (per-dataset BN), possibly empty.
    """

    system: str
    config: Mapping[str, object]
    serving: ServingSpec
    deployable: bool = True
    preset: Optional[str] = None
    domains: Mapping[str, int] = dataclasses.field(default_factory=dict)

    def replace(self, **changes) -> "ModelInfo":
        return dataclasses.replace(self, **changes)

    def to_json(self) -> Dict[str, object]:
        return {"system": self.system, "preset": self.preset, "config": dict(self.config),
                "domains": {str(k): int(v) for k, v in dict(self.domains).items()},
                "deployable": bool(self.deployable), "serving": self.serving.to_json()}

    @classmethod
    def from_json(cls, values: Mapping[str, object]) -> "ModelInfo":
        """Parses ``to_json`` output.

        Raises:
            ConfigError: naming the missing or malformed field.
        """
        if not isinstance(values, Mapping):
            raise ConfigError(f"Model info must be a JSON object. Received: {str(values)[:80]}")
        missing = [k for k in ("system", "config", "serving") if k not in values]
        if missing:
            raise ConfigError(f"Model info lacks {missing}. Received: keys={sorted(values)}")
        return cls(system=str(values["system"]), config=dict(values["config"] or {}),
                   serving=ServingSpec.from_json(values["serving"]), deployable=bool(values.get("deployable", True)),
                   preset=values.get("preset"), domains={str(k): int(v) for k, v in
                                                         dict(values.get("domains") or {}).items()})


def attach(model, info: ModelInfo):
    """Records ``info`` for ``model``; returns the model."""
    _INFO[model] = info
    return model


def info_of(model) -> Optional[ModelInfo]:
    """The info recorded for ``model``, or None."""
    try:
        return _INFO.get(model)
    except TypeError:  # not weak-referenceable: never registered
        return None


def serving_spec_of(model) -> ServingSpec:
    """The output declaration ``model`` carries.

    Raises:
        ConfigError: when the model carries no ``ModelInfo``.
    """
    info = info_of(model)
    if info is None:
        raise ConfigError(
            "The model does not say which keras-facemt system it is (no output declaration): build it with "
            "keras_facemt.build_model or load a file saved by keras_facemt.save_model. "
            f"Received: model={getattr(model, 'name', type(model).__name__)!r}"
        )
    return info.serving


def resolve_domain(domain, domains: Optional[Mapping[str, int]] = None) -> Optional[int]:
    """A BN domain given as an id or a training dataset/task name -> its id (None stays None).

    Raises:
        ConfigError: for a name not among ``domains``.
    """
    if domain is None:
        return None
    domains = dict(domains or {})
    if isinstance(domain, str) and domain in domains:
        return int(domains[domain])
    try:
        return int(domain)
    except (TypeError, ValueError):
        raise ConfigError(
            f"Unknown domain {domain!r}; the model's training domains are {domains or '{}'} "
            f"(give a name from them or an integer id). Received: domain={domain!r}"
        ) from None


def write_run_config(model_dir: str, info: ModelInfo, experiment: str, datasets: Mapping[str, str],
                     distribution: Optional[Mapping] = None, **extra) -> str:
    """Writes ``run_config.json`` (one shape for every system) into ``model_dir``; returns its path.

    Written before training, so that ``facemt export --model-dir`` can rebuild the
    model from any checkpoint of the run, finished or not::

        {"system", "preset", "config", "domains", "experiment",
         "datasets": {part: directory}, "distribution", ...extra}
    """
    import os

    from keras_facemt.io import write_json_atomic

    path = os.path.join(model_dir, RUN_CONFIG)
    values = info.to_json()
    values.pop("serving", None)
    values.pop("deployable", None)
    write_json_atomic(path, {**values, "experiment": experiment, "datasets": {str(k): str(v) for k, v in
                                                                                dict(datasets).items()},
                             "distribution": dict(distribution) if distribution else None, **extra})
    return path
