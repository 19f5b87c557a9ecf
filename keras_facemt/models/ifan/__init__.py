"""iFAN: integrated Face Analytics Network (Li et al., MM'17).

``build_model(config)`` / ``build_models(config)`` in ``model.py``; ``IFANConfig`` in
``config.py``; presets ``paper``, ``small`` and ``tiny`` in ``model.PRESETS``.
"""

from keras_facemt.models.ifan.config import IFANConfig
from keras_facemt.models.ifan.model import (
    PRESETS,
    TaskHead,
    build_ifan,
    build_model,
    build_models,
    component_prefix,
    output_key,
    task_head,
    task_scope,
)

__all__ = [
    "IFANConfig",
    "PRESETS",
    "TaskHead",
    "build_ifan",
    "build_model",
    "build_models",
    "component_prefix",
    "output_key",
    "task_head",
    "task_scope",
]
