"""The Frechet distance between two Gaussians fitted to feature sets (FID, FVD).

  d = |mu_a - mu_b|^2 + Tr(S_a) + Tr(S_b) - 2 Tr((S_a S_b)^(1/2))

The last trace is computed without a general matrix square root (``scipy.linalg.sqrtm`` of
a singular 2048 x 2048 product takes minutes on a CPU and needs regularising): the
eigenvalues of S_a S_b are those of the symmetric PSD matrix S_a^(1/2) S_b S_a^(1/2), and
with fewer samples than dimensions, writing S_a = A^T A / (n - 1) and S_b = B^T B / (m - 1)
for the centred features A [n, D] and B [m, D], Tr((S_a S_b)^(1/2)) is the sum of the
singular values of A B^T / sqrt((n - 1)(m - 1)). Both are exact.
"""

from __future__ import annotations

import numpy as np


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of a feature set.

    Args:
      features: [N, D], N >= 2.

    Returns:
      (mu [D], sigma [D, D]) in float64 (covariance with the N - 1 denominator).
    """
    features = _check(features)
    return features.mean(0), np.cov(features, rowvar=False)


def _check(features: np.ndarray) -> np.ndarray:
    features = np.asarray(features, np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"need at least 2 feature vectors [N, D], got {features.shape}")
    return features


def trace_sqrt_product(sigma_a: np.ndarray, sigma_b: np.ndarray) -> float:
    """Tr((S_a S_b)^(1/2)) for symmetric PSD S_a, S_b [D, D], via one symmetric eigenproblem."""
    w, v = np.linalg.eigh(sigma_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = root_a @ sigma_b @ root_a
    eig = np.linalg.eigvalsh((inner + inner.T) / 2)
    return float(np.sqrt(np.clip(eig, 0, None)).sum())


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets.

    Args:
      features_a: [N, D], N >= 2.
      features_b: [M, D], M >= 2.

    Returns:
      The distance (float, >= 0 up to rounding).
    """
    a, b = _check(features_a), _check(features_b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sizes differ: {a.shape} vs {b.shape}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = a - mu_a, b - mu_b
    na, nb = len(a) - 1, len(b) - 1
    trace_a, trace_b = (ca**2).sum() / na, (cb**2).sum() / nb
    if min(len(a), len(b)) < a.shape[1]:
        cross = np.linalg.svd(ca @ cb.T / np.sqrt(na * nb), compute_uv=False).sum()
    else:
        cross = trace_sqrt_product(ca.T @ ca / na, cb.T @ cb / nb)
    diff = mu_a - mu_b
    return float(diff @ diff + trace_a + trace_b - 2.0 * cross)
