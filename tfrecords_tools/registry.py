"""Layout name -> converter class, imported lazily (``facemt convert <layout>``)."""

from __future__ import annotations

import importlib
from typing import Dict, Tuple, Type

from keras_facemt.errors import ConfigError

# layout: (module, class)
CONVERTERS: Dict[str, Tuple[str, str]] = {
    "wider_face": ("tfrecords_tools.convert_wider_face", "WiderFaceConverter"),
    "fddb": ("tfrecords_tools.convert_fddb", "FddbConverter"),
    "aflw": ("tfrecords_tools.convert_aflw", "AflwConverter"),
    "300w": ("tfrecords_tools.convert_300w", "Pts68Converter"),
    "helen_parsing": ("tfrecords_tools.convert_helen_parsing", "HelenParsingConverter"),
    "mtfl": ("tfrecords_tools.convert_mtfl", "MtflConverter"),
    "celeba": ("tfrecords_tools.convert_celeba", "CelebAConverter"),
    "lfw": ("tfrecords_tools.convert_lfw", "LfwConverter"),
    "identity_folders": ("tfrecords_tools.convert_identity_folders", "IdentityFoldersConverter"),
    "morph": ("tfrecords_tools.convert_morph", "MorphConverter"),
    "imdb_wiki": ("tfrecords_tools.convert_imdb_wiki", "ImdbWikiConverter"),
    "adience": ("tfrecords_tools.convert_adience", "AdienceConverter"),
    "emotion_folders": ("tfrecords_tools.convert_emotion_folders", "EmotionFoldersConverter"),
    "jsonl": ("tfrecords_tools.convert_jsonl", "JsonLinesConverter"),
}


def get_converter(layout: str) -> Type:
    """The converter class of a layout name.

    Raises:
        ConfigError: naming the known layouts.
    """
    if layout not in CONVERTERS:
        raise ConfigError(f"Unknown dataset layout {layout!r}; known: {sorted(CONVERTERS)}. "
                          f"Received: layout={layout!r}")
    module, cls = CONVERTERS[layout]
    return getattr(importlib.import_module(module), cls)
