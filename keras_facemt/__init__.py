"""keras-facemt: multi-task face analysis in Keras 3.

Public API (imported lazily so ``import keras_facemt`` stays cheap):

* ``build_model(name, **overrides)`` / ``load_model(path)``
* ``FaceAnalyzer``, ``Face`` (batch-first inference)
* ``errors`` (typed exceptions)
"""

import importlib

__version__ = "0.1.0"

_LAZY = {
    "build_model": "keras_facemt.models.registry",
    "get_system": "keras_facemt.models.registry",
    "list_systems": "keras_facemt.models.registry",
    "load_model": "keras_facemt.serving.keras_format",
    "FaceAnalyzer": "keras_facemt.inference.analyzer",
    "Face": "keras_facemt.inference.face",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'keras_facemt' has no attribute {name!r}")


__all__ = sorted(_LAZY) + ["__version__"]
