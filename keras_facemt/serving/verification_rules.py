"""The limits every export check applies, and the row each task metric is reported as.

* float32 runtimes: every output within ``FLOAT32_TOLERANCE`` x its scale;
* TFLite float16: within ``FLOAT16_TOLERANCE`` x its scale;
* quantized models: each task's metric may lose at most ``INT8_MAX_RELATIVE_LOSS``
  relative to Keras on labelled data; without labels the Keras outputs are the
  reference (agreement >= ``AGREEMENT_FLOOR``, landmark NME to the Keras points
  <= ``AGREEMENT_NME_CEILING``, embedding cosine >= ``EMBEDDING_MIN_COSINE``).
"""

from __future__ import annotations

from typing import Dict

FLOAT32_TOLERANCE = 1e-4
FLOAT16_TOLERANCE = 1e-2
INT8_MAX_RELATIVE_LOSS = 0.10
AGREEMENT_FLOOR = 0.9
AGREEMENT_NME_CEILING = 0.1
# A quantized embedding's mean cosine to the Keras one must reach this (int8 included).
EMBEDDING_MIN_COSINE = 0.95


def relative_loss(keras_value: float, export_value: float, higher_is_better: bool) -> float:
    """How much worse the export scores than Keras, relative to Keras's score (positive = worse)."""
    denom = max(abs(keras_value), 1e-12)
    return (keras_value - export_value) / denom if higher_is_better else (export_value - keras_value) / denom


def metric_entry(metric: str, keras_value: float, export_value: float, loss: float, limit: float, reference: str,
                 examples: int) -> Dict[str, object]:
    """One task's row of ``task_metrics``."""
    return {"metric": metric, "keras": float(keras_value), "export": float(export_value),
            "relative_loss": float(loss), "limit": float(limit), "reference": reference, "examples": int(examples)}
