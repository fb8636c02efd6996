"""The paper's smoothness metrics, OFM and F-MSE: the official script's version and a clean one.

Official (``smoothness_eval.py`` of MStypulkowski/diffused-heads, reproduced quirk for quirk):
every frame, as OpenCV decodes it (BGR), is resized to 128 x 128 with ``cv2.resize``'s
default bilinear interpolation and converted to grayscale; for each pair of consecutive frames

- OFM: Farneback optical flow (pyr_scale 0.5, levels 7, winsize 5, iterations 15, poly_n 5,
  poly_sigma 1.2), its magnitude min-max normalised to [0, 255] *within the frame pair*,
  truncated to uint8, mapped through the JET colour map, and the mean taken over all pixels
  and the three colour channels of the colour-mapped images. The numbers are therefore
  colour-map intensities, not pixels: zero flow everywhere scores 128 / 3 = 42.67, because
  JET maps 0 to BGR (128, 0, 0), and a still video scores a little more (about 43.6 on
  the GRID clips), because Farneback's tiny non-zero flow on identical frames is stretched
  to the full range by the normalisation;
- F-MSE: ``(frame - prev_frame) ** 2`` on the uint8 frames, so both the difference and the
  square wrap around modulo 256, averaged over pixels and channels.

Per video the script writes the mean and the standard deviation of each over all its pairs;
a video with fewer than two frames is skipped (it raises inside the script's ``try``).

Clean versions, on the same 128 px frames and the same flow: OFM_clean is the mean flow
magnitude in pixels per frame (128 px scale); F-MSE_clean is the mean squared difference of
consecutive frames in float (0..255 scale, squared).
"""

from __future__ import annotations

import cv2
import numpy as np

SIZE = 128
FARNEBACK = dict(pyr_scale=0.5, levels=7, winsize=5, iterations=15, poly_n=5, poly_sigma=1.2, flags=0)


def read_frames_opencv(path: str) -> np.ndarray:
    """Every frame of a video as OpenCV's VideoCapture decodes it (what the official script reads).

    Args:
      path: a video file.

    Returns:
      uint8 [T, H, W, 3] BGR (T may be 0).
    """
    cap = cv2.VideoCapture(path)
    frames = []
    try:
        ok, frame = cap.read()
        while ok:
            frames.append(frame)
            ok, frame = cap.read()
    finally:
        cap.release()
    if not frames:
        return np.zeros((0, 1, 1, 3), np.uint8)
    return np.stack(frames)


def _pairs(frames_bgr: np.ndarray):
    """(prev, frame, prev_gray, gray, flow) for consecutive 128 px frames."""
    # Deliberately not dheads_jax.imaging.resize (the project's resize): the official OFM
    # script calls cv2.resize with its default (bilinear) interpolation, and so do we.
    prev = cv2.resize(frames_bgr[0], (SIZE, SIZE))
    prev_gray = cv2.cvtColor(prev, cv2.COLOR_BGR2GRAY)
    for raw in frames_bgr[1:]:
        frame = cv2.resize(raw, (SIZE, SIZE))
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        flow = cv2.calcOpticalFlowFarneback(prev_gray, gray, None, **FARNEBACK)
        yield prev, frame, flow
        prev, prev_gray = frame, gray


def smoothness(frames_bgr: np.ndarray) -> dict | None:
    """Official and clean OFM and F-MSE of one video.

    Args:
      frames_bgr: uint8 [T, H, W, 3] in OpenCV's BGR order (the channel order changes
        nothing here: every mean is over all channels and grayscale uses the matching
        weights).

    Returns:
      dict with ofm, ofm_std, fmse, fmse_std (official, as the script's output columns
      flow_mean, flow_std, mse, mse_std), ofm_clean (px / frame), fmse_clean and per-pair
      curves ofm_per_pair / fmse_clean_per_pair [T - 1]; None for fewer than two frames.
    """
    frames_bgr = np.asarray(frames_bgr)
    if frames_bgr.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 as decoded, got {frames_bgr.dtype}")
    if len(frames_bgr) < 2:
        return None
    colour_maps, wrapped, magnitude_means, fmse_clean = [], [], [], []
    for prev, frame, flow in _pairs(frames_bgr):
        magnitude, _ = cv2.cartToPolar(flow[..., 0], flow[..., 1])
        magnitude_means.append(float(magnitude.astype(np.float64).mean()))
        scaled = cv2.normalize(magnitude, None, 0, 255, cv2.NORM_MINMAX)
        colour_maps.append(cv2.applyColorMap(scaled.astype(np.uint8), cv2.COLORMAP_JET))
        wrapped.append((frame - prev) ** 2)  # uint8: wraps modulo 256, as in the script
        diff = frame.astype(np.float64) - prev.astype(np.float64)
        fmse_clean.append(float((diff**2).mean()))
    colour_maps = np.array(colour_maps)
    wrapped = np.array(wrapped)
    return dict(
        ofm=float(colour_maps.mean()),
        ofm_std=float(colour_maps.std()),
        fmse=float(wrapped.mean()),
        fmse_std=float(wrapped.std()),
        ofm_clean=float(np.mean(magnitude_means)),
        fmse_clean=float(np.mean(fmse_clean)),
        ofm_per_pair=colour_maps.reshape(len(colour_maps), -1).mean(-1),
        fmse_clean_per_pair=np.asarray(fmse_clean),
    )


def smoothness_rgb(frames_rgb: np.ndarray) -> dict | None:
    """``smoothness`` of RGB frames (converted to BGR first). Args: uint8 [T, H, W, 3] RGB."""
    return smoothness(np.ascontiguousarray(np.asarray(frames_rgb)[..., ::-1]))
