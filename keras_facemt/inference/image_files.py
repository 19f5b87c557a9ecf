"""Reading image files for inference: any layout OpenCV decodes, one-line errors."""

from __future__ import annotations

import os
from typing import List

import numpy as np

from keras_facemt.errors import DataError


def read_images(paths: List[str]) -> List[np.ndarray]:
    """Reads image files as RGB(A)/gray arrays.

    Raises:
        DataError: naming the first missing or undecodable file.
    """
    import cv2

    images = []
    for p in paths:
        if os.path.isdir(p):
            raise DataError(f"{p}: is a directory; pass image files.")
        if not os.path.isfile(p):
            raise DataError(f"{p}: image file does not exist.")
        data = np.fromfile(p, np.uint8)
        if data.size == 0:
            raise DataError(f"{p}: empty file, not an image.")
        try:
            arr = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
        except cv2.error:  # OpenCV asserts on some damaged headers instead of returning None
            arr = None
        if arr is None or arr.size == 0:
            raise DataError(f"{p}: not a decodable image (JPEG/PNG/BMP...).")
        if arr.ndim == 3 and arr.shape[-1] == 3:
            arr = cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
        elif arr.ndim == 3 and arr.shape[-1] == 4:
            arr = cv2.cvtColor(arr, cv2.COLOR_BGRA2RGBA)
        images.append(arr)
    return images
