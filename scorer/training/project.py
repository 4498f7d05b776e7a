"""Embeddings to 2-D for the map: PCA always (numpy), t-SNE with scikit-learn, UMAP with umap-learn."""

from __future__ import annotations

import numpy as np

from scorer.errors import UsageError

PROJECTIONS = ("pca", "tsne", "umap")


def check_projection(method: str) -> None:
    """Fail before any work when the method is unknown or its library is missing."""
    if method not in PROJECTIONS:
        raise UsageError(f"--projection {method}: use one of {', '.join(PROJECTIONS)}")
    needs = {"tsne": ("sklearn", "scikit-learn (the 'train' extra)"), "umap": ("umap", "umap-learn")}
    if method in needs:
        import importlib.util

        module, package = needs[method]
        if importlib.util.find_spec(module) is None:
            raise UsageError(f"--projection {method} needs {package}: pip install it, or use --projection pca")


def pca(x: np.ndarray, dims: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """``(points, explained variance ratio)``; components signed so the result is deterministic."""
    x = np.asarray(x, dtype=np.float64)
    centred = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    vt = vt[:dims]
    signs = np.sign(vt[np.arange(len(vt)), np.abs(vt).argmax(axis=1)])
    vt = vt * np.where(signs == 0, 1.0, signs)[:, None]
    variance = s ** 2
    return centred @ vt.T, variance[:dims] / max(variance.sum(), 1e-12)


def project(x: np.ndarray, method: str = "pca", seed: int = 0) -> tuple[np.ndarray, str]:
    """2-D points and a one-line description of how they were made."""
    check_projection(method)
    if method == "pca":
        points, ratio = pca(x)
        return points, f"PCA: the two directions of largest variance ({ratio[0]:.1%} and {ratio[1]:.1%} of it)"
    # t-SNE and UMAP work better on a PCA-reduced input (and much faster)
    reduced = pca(x, dims=min(50, x.shape[1], len(x)))[0]
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(min(30, max(2, (len(x) - 1) // 3)))
        points = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(reduced)
        return points, f"t-SNE (perplexity {perplexity:g}) on the first 50 principal components"
    import umap  # noqa: PLC0415

    points = umap.UMAP(n_components=2, random_state=seed).fit_transform(reduced)
    return points, "UMAP on the first 50 principal components"
