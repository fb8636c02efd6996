"""Face detection and 68-point landmarks with dlib, fully offline.

The detector is dlib's HOG frontal face detector (built into dlib, no file); the landmarks
come from dlib's 68-point shape predictor shipped in the ``face_recognition_models`` PyPI
package (iBUG 300-W convention: jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, mouth 48-67).
Nothing is downloaded at run time. Licence terms are in data/README.md.
"""

from __future__ import annotations

import functools
import importlib.util
import os

import dlib
import numpy as np

NUM_LANDMARKS = 68
PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"


def predictor_path() -> str:
    """Path of the 68-point model inside the installed ``face_recognition_models`` package.

    Found without importing the package, whose ``__init__`` needs ``pkg_resources`` (gone
    from setuptools >= 81).
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the face_recognition_models package (68-point dlib model) is not installed")
    path = os.path.join(next(iter(spec.submodule_search_locations)), "models", PREDICTOR_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{PREDICTOR_FILE} missing from the face_recognition_models package: {path}")
    return path


class LandmarkDetector:
    """68-point landmarks of the largest frontal face in an RGB image.

    Attributes:
      coarse_side: detection runs first on the image subsampled so its short side is about
        this many pixels (speed), then at full resolution if no face was found; the
        landmarks are always predicted at full resolution.
    """

    def __init__(self, coarse_side: int = 480):
        self.coarse_side = coarse_side
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(predictor_path())

    def _detect(self, image: np.ndarray, step: int, upsample: int):
        small = np.ascontiguousarray(image[::step, ::step])
        rects = self._detector(small, upsample)
        if not rects:
            return None
        r = max(rects, key=lambda r: r.width() * r.height())
        return dlib.rectangle(r.left() * step, r.top() * step, r.right() * step, r.bottom() * step)

    def _largest_face(self, image: np.ndarray):
        # Coarse first (4x fewer pixels), then full resolution, then upsampled for small faces.
        coarse = max(1, min(image.shape[:2]) // self.coarse_side)
        tries = ((coarse, 0),) * (coarse > 1) + ((1, 0), (1, 1))
        for step, upsample in tries:
            rect = self._detect(image, step, upsample)
            if rect is not None:
                return rect
        return None

    def __call__(self, image: np.ndarray) -> np.ndarray | None:
        """Landmarks of the largest face.

        Args:
          image: uint8 [H, W, 3] RGB.

        Returns:
          float32 [68, 2] (x, y) in pixels, or None when no face is found.
        """
        image = np.ascontiguousarray(image, np.uint8)
        rect = self._largest_face(image)
        if rect is None:
            return None
        shape = self._predictor(image, rect)
        return np.array([(p.x, p.y) for p in shape.parts()], np.float32)


@functools.cache
def default_detector() -> LandmarkDetector:
    """One detector per process (loading the predictor takes about 0.1 s)."""
    return LandmarkDetector()
