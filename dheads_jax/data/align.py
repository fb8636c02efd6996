"""Face alignment: a similarity transform to a canonical template, smoothed over time.

The same rule serves a whole clip at preparation time (``align_frames``) and one identity
image at sampling time (``align_image``), so a custom identity is cropped exactly like the
training data (the original project had no built-in alignment; docs/method.md, section 8).

Rule: the transform maps the rigid landmarks (nose 27-35 and eyes 36-47, which do not move
when the person speaks) onto the same points of ``TEMPLATE`` by least squares (Umeyama).
Over a clip the four similarity parameters are smoothed with a Gaussian of
``smoothing_sigma`` frames so the crop does not jitter with landmark noise.

``TEMPLATE`` is the generalised-Procrustes mean of the 68 landmarks of all 825 frames of the
GRID sample clips (``mean_shape``), levelled so the eyes are horizontal, scaled so the jaw
(point 0 to 16) spans 0.55 of the crop, with the eye centre at (0.50, 0.40): the chin sits at
0.88, the brows at 0.30, which leaves room for the open jaw and part of the hair.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

from dheads_jax.data import faces

# (x, y) as fractions of the crop side, iBUG 68-point order.
TEMPLATE = np.array(
    [
        (0.2273, 0.4122),
        (0.2341, 0.4892),
        (0.2450, 0.5650),
        (0.2575, 0.6409),
        (0.2788, 0.7128),
        (0.3161, 0.7764),
        (0.3681, 0.8289),
        (0.4301, 0.8682),
        (0.5034, 0.8816),
        (0.5777, 0.8688),
        (0.6415, 0.8294),
        (0.6937, 0.7759),
        (0.7298, 0.7100),
        (0.7503, 0.6374),
        (0.7616, 0.5607),
        (0.7711, 0.4840),
        (0.7773, 0.4066),
        (0.2734, 0.3419),
        (0.3068, 0.3077),
        (0.3560, 0.2998),
        (0.4063, 0.3102),
        (0.4531, 0.3306),
        (0.5406, 0.3298),
        (0.5898, 0.3088),
        (0.6418, 0.2981),
        (0.6929, 0.3068),
        (0.7280, 0.3413),
        (0.4987, 0.3851),
        (0.4988, 0.4332),
        (0.4983, 0.4806),
        (0.4986, 0.5306),
        (0.4434, 0.5738),
        (0.4699, 0.5842),
        (0.4987, 0.5917),
        (0.5281, 0.5845),
        (0.5556, 0.5748),
        (0.3290, 0.4006),
        (0.3588, 0.3834),
        (0.3952, 0.3830),
        (0.4281, 0.4045),
        (0.3946, 0.4135),
        (0.3575, 0.4150),
        (0.5710, 0.4043),
        (0.6043, 0.3831),
        (0.6411, 0.3835),
        (0.6716, 0.3999),
        (0.6431, 0.4150),
        (0.6056, 0.4142),
        (0.4029, 0.6905),
        (0.4369, 0.6671),
        (0.4729, 0.6544),
        (0.4988, 0.6623),
        (0.5250, 0.6553),
        (0.5626, 0.6693),
        (0.5999, 0.6919),
        (0.5636, 0.7237),
        (0.5273, 0.7366),
        (0.4989, 0.7393),
        (0.4709, 0.7357),
        (0.4358, 0.7214),
        (0.4198, 0.6905),
        (0.4725, 0.6804),
        (0.4985, 0.6832),
        (0.5253, 0.6808),
        (0.5818, 0.6916),
        (0.5255, 0.7002),
        (0.4990, 0.7032),
        (0.4726, 0.6996),
    ],
    np.float64,
)
RIGID_POINTS = np.arange(27, 48)  # nose and eyes
MAX_SUPERSAMPLE = 4


class NoFaceError(ValueError):
    """No face was found where one was needed."""


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) from src to dst (Umeyama).

    Args:
      src: [N, 2] points.
      dst: [N, 2] points.

    Returns:
      float64 [2, 3] matrix M with dst ~= src @ M[:, :2].T + M[:, 2].
    """
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    u, sv, vt = np.linalg.svd(d0.T @ s0 / len(src))
    d = np.diag([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    rot = u @ d @ vt
    scale = float((sv * np.diag(d)).sum() / (s0**2).sum(1).mean())
    lin = scale * rot
    return np.concatenate([lin, (mu_d - lin @ mu_s)[:, None]], axis=1)


def apply_transform(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Maps [..., 2] points by a [2, 3] affine matrix."""
    return points @ matrix[:, :2].T + matrix[:, 2]


def mean_shape(shapes: np.ndarray, iterations: int = 10) -> np.ndarray:
    """Generalised Procrustes mean of landmark sets, centred, unit RMS radius, eyes level.

    Args:
      shapes: [N, 68, 2] landmarks.
      iterations: alignment rounds.

    Returns:
      float64 [68, 2].
    """
    shapes = np.asarray(shapes, np.float64)
    mean = shapes[0]
    for _ in range(iterations):
        mean = np.mean([apply_transform(s, similarity_transform(s, mean)) for s in shapes], axis=0)
        mean = mean - mean.mean(0)
        mean = mean / np.sqrt((mean**2).sum(1).mean())
        dx, dy = mean[42:48].mean(0) - mean[36:42].mean(0)
        c, s = np.cos(-np.arctan2(dy, dx)), np.sin(-np.arctan2(dy, dx))
        mean = mean @ np.array([[c, -s], [s, c]]).T
    return mean


def template_transform(landmarks: np.ndarray, image_size: int) -> np.ndarray:
    """[2, 3] matrix from image pixels to crop pixels for one face's [68, 2] landmarks."""
    return similarity_transform(landmarks[RIGID_POINTS], TEMPLATE[RIGID_POINTS] * image_size)


def smooth_transforms(matrices: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing over time of similarity matrices.

    A similarity is [[a, -b, tx], [b, a, ty]]; (a, b, tx, ty) are smoothed linearly, which
    keeps every result a similarity.

    Args:
      matrices: [T, 2, 3].
      sigma: standard deviation in frames; 0 disables.

    Returns:
      [T, 2, 3].
    """
    if sigma <= 0 or len(matrices) < 2:
        return matrices
    params = np.stack([matrices[:, 0, 0], matrices[:, 1, 0], matrices[:, 0, 2], matrices[:, 1, 2]], 1)
    a, b, tx, ty = ndimage.gaussian_filter1d(params, sigma, axis=0, mode="nearest").T
    return np.stack([np.stack([a, -b, tx], -1), np.stack([b, a, ty], -1)], 1)


def warp_image(image: np.ndarray, matrix: np.ndarray, image_size: int) -> np.ndarray:
    """The crop ``matrix`` defines, antialiased, with edge pixels repeated outside the image.

    Renders at up to 4x the output size with bilinear sampling and averages blocks down,
    which approximates an area filter when the face is shrunk.

    Args:
      image: uint8 [H, W, 3].
      matrix: [2, 3] from image pixels to crop pixels.
      image_size: S.

    Returns:
      uint8 [S, S, 3].
    """
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    factor = int(np.clip(np.ceil(1.0 / scale), 1, MAX_SUPERSAMPLE))
    inv = np.linalg.inv(np.vstack([matrix, [0.0, 0.0, 1.0]]))[:2]
    corners = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], np.float64) * image_size
    src = apply_transform(corners, inv)
    h, w = image.shape[:2]
    pad = int(np.ceil(max(0.0, -src.min(), (src[:, 0] - w).max(), (src[:, 1] - h).max()))) + 2
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    # Pixel centres sit at integer coordinates in both spaces; PIL samples the input at
    # coeffs applied to (p + 0.5) in a corner-based convention, hence the half-pixel terms.
    lin = inv[:, :2] / factor
    off = inv[:, 2] + pad + 0.5 - inv[:, :2] @ np.full(2, 0.5)
    coeffs = (lin[0, 0], lin[0, 1], off[0], lin[1, 0], lin[1, 1], off[1])
    big = Image.fromarray(padded).transform(
        (image_size * factor, image_size * factor),
        Image.Transform.AFFINE,
        coeffs,
        resample=Image.Resampling.BILINEAR,
    )
    return np.asarray(big.reduce(factor) if factor > 1 else big, np.uint8)


def align_frames(
    frames: np.ndarray, landmarks: np.ndarray, image_size: int, smoothing_sigma: float = 2.0
) -> tuple[np.ndarray, np.ndarray]:
    """Aligns and crops every frame of a clip with a temporally smoothed transform.

    Args:
      frames: uint8 [T, H, W, 3].
      landmarks: [T, 68, 2] (x, y) in frame pixels.
      image_size: S, side of the square crop.
      smoothing_sigma: Gaussian standard deviation over time, in frames.

    Returns:
      (aligned uint8 [T, S, S, 3], landmarks float32 [T, 68, 2] in crop pixels).
    """
    matrices = np.stack([template_transform(lm, image_size) for lm in landmarks])
    matrices = smooth_transforms(matrices, smoothing_sigma)
    aligned = np.stack([warp_image(f, m, image_size) for f, m in zip(frames, matrices, strict=True)])
    moved = np.stack([apply_transform(lm, m) for lm, m in zip(landmarks, matrices, strict=True)])
    return aligned, moved.astype(np.float32)


def align_face(image: np.ndarray, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Aligns one image (e.g. the identity frame at sampling time) like the training data.

    Args:
      image: uint8 [H, W, 3] RGB.
      image_size: S.

    Returns:
      (aligned uint8 [S, S, 3], landmarks float32 [68, 2] in crop pixels).

    Raises:
      NoFaceError: when dlib finds no face.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 [H, W, 3] RGB image, got {image.dtype} {image.shape}")
    lm = faces.default_detector()(image)
    if lm is None:
        raise NoFaceError(f"no face found in the {image.shape[1]}x{image.shape[0]} image")
    aligned, moved = align_frames(image[None], lm[None], image_size, smoothing_sigma=0.0)
    return aligned[0], moved[0]


def align_image(image: np.ndarray, image_size: int) -> np.ndarray:
    """``align_face`` without the landmarks: uint8 [H, W, 3] -> uint8 [S, S, 3]."""
    return align_face(image, image_size)[0]
