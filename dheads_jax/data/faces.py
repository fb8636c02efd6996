"""Face detection and 68-point landmarks with dlib, fully offline.

The detector is dlib's HOG frontal face detector (built into dlib, no file); the landmarks
come from dlib's 68-point shape predictor shipped in the ``face_recognition_models`` PyPI
package (iBUG 300-W convention: jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, mouth 48-67).
Nothing is downloaded at run time. Licence terms are in data/README.md.

``FaceTrack`` lets a clip run the (slow) detector on a few frames only: the box for the next
frame comes from the current landmarks, moved like the landmarks moved since the last
detection, and a cheap check says when the face was lost.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import os

import dlib
import numpy as np

NUM_LANDMARKS = 68
PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"
TRACK_POINTS = np.arange(27, 48)  # nose and eyes: they do not move when the person speaks


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
        self.detections = 0  # runs of the face detector (``detect``), for measuring sparse detection
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

    def detect(self, image: np.ndarray):
        """Box of the largest face.

        Args:
          image: uint8 [H, W, 3] RGB, C-contiguous.

        Returns:
          dlib.rectangle in pixels, or None when no face is found.
        """
        self.detections += 1
        return self._largest_face(image)

    def landmarks(self, image: np.ndarray, rect) -> np.ndarray:
        """float32 [68, 2] (x, y) predicted inside ``rect`` of a C-contiguous uint8 RGB image."""
        shape = self._predictor(image, rect)
        return np.array([(p.x, p.y) for p in shape.parts()], np.float32)

    def __call__(self, image: np.ndarray) -> np.ndarray | None:
        """Landmarks of the largest face.

        Args:
          image: uint8 [H, W, 3] RGB.

        Returns:
          float32 [68, 2] (x, y) in pixels, or None when no face is found.
        """
        image = np.ascontiguousarray(image, np.uint8)
        rect = self.detect(image)
        if rect is None:
            return None
        return self.landmarks(image, rect)


def _similarity(src: np.ndarray, dst: np.ndarray) -> tuple[complex, complex, float]:
    """Least-squares similarity from src to dst [N, 2] points, in complex form.

    Returns:
      (q, t, residual): dst ~= q * src + t with points as complex x + iy; residual is the RMS
      distance left, relative to the RMS radius of dst.
    """
    a = src[:, 0].astype(np.float64) + 1j * src[:, 1]
    b = dst[:, 0].astype(np.float64) + 1j * dst[:, 1]
    ma, mb = a.mean(), b.mean()
    a0, b0 = a - ma, b - mb
    q = complex(np.vdot(a0, b0) / max(np.vdot(a0, a0).real, 1e-12))
    radius = float(np.sqrt(np.mean(np.abs(b0) ** 2)))
    residual = float(np.sqrt(np.mean(np.abs(q * a0 - b0) ** 2))) / max(radius, 1e-12)
    return q, mb - q * ma, residual


@dataclasses.dataclass(frozen=True)
class FaceTrack:
    """The detector's box and the face's look at the last detection, carried to later frames.

    Between detections the box of frame i is the detected box moved by the similarity that
    takes the nose and eye landmarks of the detection frame to those of frame i - 1 (rounded
    to the detector's own steps of position and size, see ``rect``), so it keeps the relation
    between box and landmarks the detector had; the 68-point predictor then runs in it as
    after a detection. ``lost`` tells when the landmarks of a tracked frame
    should not be trusted: their nose and eyes no longer fit a similarity of the detected
    ones, the face changed size too much, or the image under the landmarks no longer looks
    like the detected face (normalised correlation of a grey-level grid over eyes and nose).

    Attributes:
      box: (left, top, right, bottom) of the detected box.
      points: float64 [21, 2] nose and eye landmarks at the detection.
      grid: float64 [G * G, 2] sample points over the eyes and nose at the detection.
      patch: float64 [G * G] grey levels at ``grid``, zero mean and unit norm.
      max_residual: largest shape residual of a tracked frame (relative RMS distance).
      max_scale_change: largest factor of size change since the detection.
      min_correlation: smallest correlation of the grey-level grid with the detection's.
    """

    box: tuple[float, float, float, float]
    points: np.ndarray
    grid: np.ndarray
    patch: np.ndarray
    max_residual: float = 0.15
    max_scale_change: float = 1.3
    min_correlation: float = 0.6

    GRID_SIDE = 12
    POSITION_STEP = 0.11  # grid of the detector's box positions, as a fraction of the box width
    SCALE_STEP = 1.2  # ratio of the detector's successive box sizes (pyramid levels)

    @classmethod
    def start(cls, image: np.ndarray, rect, landmarks: np.ndarray, **thresholds) -> FaceTrack:
        """A track from a detection: the box, the landmarks predicted in it, and the image."""
        points = np.asarray(landmarks, np.float64)[TRACK_POINTS]
        lo, hi = points.min(0), points.max(0)
        pad = 0.15 * (hi - lo)
        u = np.linspace(0.0, 1.0, cls.GRID_SIDE)
        gx, gy = np.meshgrid(lo[0] - pad[0] + u * (hi[0] - lo[0] + 2 * pad[0]), lo[1] + u * (hi[1] - lo[1]))
        grid = np.stack([gx.ravel(), gy.ravel()], 1)
        box = (float(rect.left()), float(rect.top()), float(rect.right()), float(rect.bottom()))
        return cls(box, points, grid, _normalised(_grey_at(image, grid)), **thresholds)

    def rect(self, previous: np.ndarray):
        """dlib.rectangle for the next frame from the landmarks [68, 2] of the previous one.

        The detector's boxes lie on a grid (its HOG cells at the pyramid level of the box) and
        come in sizes a factor ``SCALE_STEP`` apart, so it returns the same box while the face
        moves a little: the tracked box moves and grows in the same steps, which keeps the
        68-point predictor's input, and its output, that of per-frame detection on most frames.
        """
        q, t, _ = _similarity(self.points, np.asarray(previous, np.float64)[TRACK_POINTS])
        left, top, right, bottom = self.box
        centre = complex((left + right) / 2, (top + bottom) / 2)
        shift = q * centre + t - centre
        step = self.POSITION_STEP * (right - left)
        dx, dy = round(shift.real / step) * step, round(shift.imag / step) * step
        scale = self.SCALE_STEP ** round(np.log(max(abs(q), 1e-3)) / np.log(self.SCALE_STEP))
        half_w, half_h = scale * (right - left) / 2, scale * (bottom - top) / 2
        x, y = centre.real + dx, centre.imag + dy
        return dlib.rectangle(round(x - half_w), round(y - half_h), round(x + half_w), round(y + half_h))

    def lost(self, image: np.ndarray, landmarks: np.ndarray) -> bool:
        """Whether the landmarks [68, 2] predicted in a tracked box of ``image`` look wrong."""
        landmarks = np.asarray(landmarks, np.float64)
        if not np.isfinite(landmarks).all():
            return True
        q, t, residual = _similarity(self.points, landmarks[TRACK_POINTS])
        if residual > self.max_residual or not 1 / self.max_scale_change <= abs(q) <= self.max_scale_change:
            return True
        z = q * (self.grid[:, 0] + 1j * self.grid[:, 1]) + t
        patch = _normalised(_grey_at(image, np.stack([z.real, z.imag], 1)))
        return float(patch @ self.patch) < self.min_correlation


def _grey_at(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Grey levels (channel mean) at the nearest pixels of [N, 2] (x, y) points, clipped to the image."""
    h, w = image.shape[:2]
    x = np.clip(np.rint(points[:, 0]), 0, w - 1).astype(np.intp)
    y = np.clip(np.rint(points[:, 1]), 0, h - 1).astype(np.intp)
    return image[y, x].astype(np.float64).mean(-1)


def _normalised(values: np.ndarray) -> np.ndarray:
    values = values - values.mean()
    return values / max(float(np.linalg.norm(values)), 1e-6)


@functools.cache
def default_detector() -> LandmarkDetector:
    """One detector per process (loading the predictor takes about 0.1 s)."""
    return LandmarkDetector()
