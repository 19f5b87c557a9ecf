"""MTFR configuration (Wang et al., "Multi-task Deep Neural Network for Joint Face
Recognition and Facial Attribute Prediction", ICMR 2017).

``MTFRConfig`` is a frozen dataclass validated on construction; ``model.build_model``
turns it into the plain arguments of ``build_mtfr``. The paper's ablations are
switches:

* ``block``: ``"full"`` (3 convs, Fig. 2), ``"fast"`` (2 convs, Fig. 3) or
  ``"variant"`` (2 convs + 1 conv on the bypass, Fig. 8; Table 5).
* ``head_config``: 1 (a separate FC ``g`` on ``f`` for the attributes, the model of
  Sec. 3.3), 2 (attributes read ``f`` directly: the shared structure) or 3 (an
  independent FC per attribute on ``f``) -- Table 6.
* ``attribute_group``: ``"none"``, ``"eye"``, ``"nose"``, ``"global"`` or ``"all"``
  (Table 1 / Table 7): which of the 7 attributes the network predicts.
"""

from __future__ import annotations

import dataclasses
from typing import Tuple

from keras_facemt.errors import ConfigError

# Table 1, in output order.
ATTRIBUTES: Tuple[str, ...] = (
    "Narrow_Eyes", "Big_Nose", "Pointy_Nose", "Chubby", "Double_Chin", "High_Cheekbones", "Male",
)
ATTRIBUTE_GROUPS = {
    "none": (),
    "eye": ("Narrow_Eyes",),
    "nose": ("Big_Nose", "Pointy_Nose"),
    "global": ("Chubby", "Double_Chin", "High_Cheekbones", "Male"),
    "all": ATTRIBUTES,
}
BLOCKS = ("full", "fast", "variant")
HEAD_CONFIGS = (1, 2, 3)


@dataclasses.dataclass(frozen=True)
class MTFRConfig:
    """MTFR model configuration.

    Attributes:
        image_size: ``(height, width)`` of the aligned input (paper: 112x96, Sec. 4.4).
        stem_filters: plain 3x3 convs before the first pooling (reading of Sec. 3.3:
            32 then 64).
        group_blocks: residual blocks per group (paper: 3, 4, 6, 3).
        group_filters: channels per group (paper: 64, 128, 256, 512). A group whose
            width differs from its input starts with a plain 3x3 conv to the new
            width; then a 2x2 max-pool (stride 2) halves the map before the blocks,
            so the paper preset has 4 poolings (112x96 -> 7x6).
        block: ``"full"``, ``"fast"`` or ``"variant"``.
        feature_dim: size of ``f(I)`` (paper: 1024).
        attribute_dim: size of ``g`` (paper: 1024).
        num_identities: P, identity classes (paper: 10,575 CASIA-WebFace ids).
        head_config: 1, 2 or 3 (Table 6).
        attribute_group: which attributes are predicted (Table 7).
        dropout: dropout on the FC layers (paper: 0.5).
    """

    image_size: Tuple[int, int] = (112, 96)
    stem_filters: Tuple[int, ...] = (32, 64)
    group_blocks: Tuple[int, ...] = (3, 4, 6, 3)
    group_filters: Tuple[int, ...] = (64, 128, 256, 512)
    block: str = "full"
    feature_dim: int = 1024
    attribute_dim: int = 1024
    num_identities: int = 10575
    head_config: int = 1
    attribute_group: str = "all"
    dropout: float = 0.5

    def __post_init__(self):
        if len(tuple(self.image_size)) != 2 or min(self.image_size) < 16:
            raise ConfigError(f"image_size must be (height, width) >= 16. Received: image_size={self.image_size}")
        if not self.stem_filters or min(self.stem_filters) < 1:
            raise ConfigError(f"stem_filters must be positive widths. Received: stem_filters={self.stem_filters}")
        if len(self.group_blocks) != len(self.group_filters) or not self.group_blocks:
            raise ConfigError(f"group_blocks and group_filters need the same non-zero length. Received: "
                              f"group_blocks={self.group_blocks}, group_filters={self.group_filters}")
        if min(self.group_blocks) < 1 or min(self.group_filters) < 1:
            raise ConfigError(f"group_blocks and group_filters must be >= 1. Received: "
                              f"group_blocks={self.group_blocks}, group_filters={self.group_filters}")
        pools = len(self.group_filters)
        if min(self.image_size) < 2 ** pools:
            raise ConfigError(f"image_size {self.image_size} is too small for {pools} poolings. "
                              f"Received: image_size={self.image_size}")
        if self.block not in BLOCKS:
            raise ConfigError(f"block must be one of {BLOCKS}. Received: block={self.block!r}")
        if self.head_config not in HEAD_CONFIGS:
            raise ConfigError(f"head_config must be one of {HEAD_CONFIGS}. Received: head_config={self.head_config!r}")
        if self.attribute_group not in ATTRIBUTE_GROUPS:
            raise ConfigError(f"attribute_group must be one of {sorted(ATTRIBUTE_GROUPS)}. "
                              f"Received: attribute_group={self.attribute_group!r}")
        for name in ("feature_dim", "attribute_dim", "num_identities"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1. Received: {name}={getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1). Received: dropout={self.dropout}")

    @property
    def attributes(self) -> Tuple[str, ...]:
        """Names of the predicted attributes, in output order (Table 1 order)."""
        chosen = set(ATTRIBUTE_GROUPS[self.attribute_group])
        return tuple(a for a in ATTRIBUTES if a in chosen)


def paper() -> MTFRConfig:
    """Sec. 3.3 / 4.4: Full blocks, 112x96, f = g = 1024, P = 10,575."""
    return MTFRConfig()


def small() -> MTFRConfig:
    """Trains on 2 CPU cores in minutes: 56x48 crops, one Fast block per group."""
    return MTFRConfig(image_size=(56, 48), stem_filters=(8, 16), group_blocks=(1, 1, 1, 1),
                      group_filters=(16, 32, 64, 128), block="fast", feature_dim=128, attribute_dim=128,
                      num_identities=300)


def tiny() -> MTFRConfig:
    """For tests: 28x24 crops, three groups."""
    return MTFRConfig(image_size=(28, 24), stem_filters=(8,), group_blocks=(1, 1, 1), group_filters=(8, 16, 32),
                      block="fast", feature_dim=32, attribute_dim=32, num_identities=20)


PRESETS = {"paper": paper, "small": small, "tiny": tiny}
