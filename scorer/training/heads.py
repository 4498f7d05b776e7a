"""Fitting the heads. Each fit returns a runtime head (``scorer.heads``) plus how to save it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scorer.featurize.cnn import default_threads
from scorer.heads import KnnHead, LinearHead, MlpHead

HEAD_KINDS = ("knn", "xgboost", "mlp", "logreg")

#: Per head kind and featurizer kind. XGBoost on CNN features: 200 trees of depth 3 on 30% of the
#: features each, 64 histogram bins. On the 9-genre sets (grouped 5-fold CV, frozen Lite0 features)
#: that scored 0.318 balanced accuracy in 82 s against the earlier 300 trees of depth 4 (0.303, 396 s).
#: On the 512-d histogram it keeps xgboost's defaults. The MLPs' L2 strengths were picked by
#: 5-fold CV on covers-5genre (cnn: 0.1→0.283, 1→0.283, 3→0.293, 10→0.299, 30→0.286). Logistic
#: regression on standardised features needs strong regularisation to carry over to unseen
#: artists: on the same 9-genre CV, C 0.1→0.288, 0.01→0.330, 0.003→0.359, 0.001→0.372, 0.0003→0.387.
PARAMS: dict[tuple[str, str], dict] = {
    ("knn", "cnn"): {"k": 10, "weighted": True},
    ("knn", "colour"): {"k": 10, "weighted": True},
    ("xgboost", "cnn"): {"n_estimators": 200, "max_depth": 3, "learning_rate": 0.1, "subsample": 0.8,
                         "colsample_bytree": 0.3, "max_bin": 64},
    ("xgboost", "colour"): {},
    ("mlp", "cnn"): {"hidden": 256, "alpha": 10.0},
    ("mlp", "colour"): {"hidden": 256, "alpha": 1.0},
    ("logreg", "cnn"): {"C": 0.0003},
    ("logreg", "colour"): {"C": 0.01},
}


@dataclass
class Fitted:
    """A trained head: ``predict_proba`` for evaluation, ``save`` for shipping."""

    kind: str
    featurizer: str
    model: Any  # a runtime head, or (xgboost) the fitted classifier widened to every genre
    params: dict = field(default_factory=dict)
    suffix: str = ".npz"

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_proba(x), dtype=np.float32)

    def save(self, path: Path) -> None:
        if self.kind == "xgboost":
            model = self.model
            if isinstance(model, _Widened):
                if len(model.present) != model.n_classes:
                    raise ValueError("an XGBoost head fitted without covers of some genres cannot be shipped")
                model = model.model
            path.write_bytes(xgboost_to_onnx(model, n_features=model.n_features_in_))
        else:
            self.model.save(path)


def class_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-genre weights inversely proportional to its covers (mean 1 per cover): every genre
    weighs the same in the fit, as it does in balanced accuracy. Absent genres get 0."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    present = counts > 0
    w = np.zeros(n_classes)
    w[present] = len(y) / (present.sum() * counts[present])
    return w


def fit_head(kind: str, featurizer: str, x: np.ndarray, y: np.ndarray, n_classes: int, seed: int = 0,
             balanced: bool = True) -> Fitted:
    """Fit one head on ``(x, y)``. Its probabilities always have ``n_classes`` columns, also when
    some genres have no covers here (they get probability 0). ``balanced`` weighs every genre
    equally (inverse-frequency sample weights; the kNN divides each genre's votes by its share)."""
    if kind not in HEAD_KINDS:
        raise ValueError(f"unknown head kind {kind!r}; known: {', '.join(HEAD_KINDS)}")
    params = {**PARAMS[(kind, featurizer)], "balanced": balanced}
    name = f"{featurizer}-{kind}"
    y = np.asarray(y)
    weights = class_weights(y, n_classes) if balanced else np.where(np.bincount(y, minlength=n_classes) > 0, 1.0, 0)
    if kind == "knn":
        knn = {k: v for k, v in params.items() if k != "balanced"}
        model = KnnHead(name, featurizer, x, y, n_classes, class_weight=weights.astype(np.float32), **knn)
        return Fitted(kind, featurizer, model, params)
    # xgboost and sklearn want the classes they see numbered 0..k-1: fit on those, widen after
    present = np.flatnonzero(np.bincount(y, minlength=n_classes) > 0)
    index = np.full(n_classes, -1)
    index[present] = np.arange(len(present))
    yk, sample_weight = index[y], weights[y]
    if kind == "mlp":
        mlp = {k: v for k, v in params.items() if k != "balanced"}
        head = _fit_mlp(name, featurizer, x, yk, seed, sample_weight=sample_weight, **mlp)
        return Fitted(kind, featurizer, head.widened(present, n_classes), params)
    if kind == "logreg":
        linear = _fit_logreg(name, featurizer, x, yk, seed, sample_weight, params["C"], present, n_classes)
        return Fitted(kind, featurizer, linear, params)
    _passive_openmp()
    import xgboost as xgb

    objective = "binary:logistic" if len(present) == 2 else "multi:softprob"
    xgb_params = {k: v for k, v in params.items() if k != "balanced"}
    model = xgb.XGBClassifier(objective=objective, tree_method="hist", random_state=seed,
                              n_jobs=default_threads(), **xgb_params)
    model.fit(x, yk, sample_weight=sample_weight)
    return Fitted(kind, featurizer, _Widened(model, present, n_classes), params, suffix=".onnx")


def _passive_openmp() -> None:
    """XGBoost's OpenMP threads wait for work by spinning. On cores other processes share, one fit of the CNN
    XGBoost head on 1,200 covers took 59 s spinning and 12 s waiting passively, back to back (2 cores, load
    average about 6): passive, unless the user chose otherwise. Only an OpenMP runtime started after this
    (xgboost's, at its import) reads it."""
    import os

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


class _Widened:
    """A classifier fitted on a subset of the genres, answering with a column for every genre."""

    def __init__(self, model, present: np.ndarray, n_classes: int):
        self.model, self.present, self.n_classes = model, present, n_classes
        self.n_features_in_ = model.n_features_in_

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        p = np.asarray(self.model.predict_proba(x), dtype=np.float32)
        out = np.zeros((len(x), self.n_classes), dtype=np.float32)
        out[:, self.present] = p
        return out


def _fit_mlp(name: str, featurizer: str, x: np.ndarray, y: np.ndarray, seed: int, hidden: int, alpha: float,
             sample_weight: np.ndarray | None = None) -> MlpHead:
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x)
    # early stopping holds out 10% of the covers, stratified: too few covers for that (a fold of a very small
    # set) train the full 300 iterations instead of failing
    early = int(np.ceil(0.1 * len(y))) >= max(2, len(np.unique(y)))
    clf = MLPClassifier(hidden_layer_sizes=(hidden,), alpha=alpha, early_stopping=early, validation_fraction=0.1,
                        n_iter_no_change=10, max_iter=300, random_state=seed)
    clf.fit(scaler.transform(x), y, sample_weight=sample_weight)
    (w1, w2), (b1, b2) = clf.coefs_, clf.intercepts_
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    if w2.shape[1] == 1:  # binary: sklearn keeps one logistic unit; make it a 2-way softmax
        w2, b2 = np.hstack([np.zeros_like(w2), w2]), np.hstack([np.zeros_like(b2), b2])
    return MlpHead(name, featurizer, scaler.mean_, scale, w1, b1, w2, b2)


def _fit_logreg(name: str, featurizer: str, x: np.ndarray, y: np.ndarray, seed: int, sample_weight: np.ndarray,
                C: float, present: np.ndarray, n_classes: int) -> LinearHead:
    """Multinomial logistic regression on standardised features, folded into one linear layer
    (``softmax(x @ W + b)``: the standardisation is part of ``W`` and ``b``)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x)
    clf = LogisticRegression(C=C, max_iter=3000, random_state=seed)
    clf.fit(scaler.transform(x), y, sample_weight=sample_weight)
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    coef, intercept = clf.coef_, clf.intercept_
    if coef.shape[0] == 1:  # binary: one logit for the second class
        coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.hstack([np.zeros_like(intercept), intercept])
    w_k = (coef / scale).T
    b_k = intercept - (scaler.mean_ / scale) @ coef.T
    w = np.zeros((x.shape[1], n_classes), dtype=np.float32)
    b = np.full(n_classes, -1e4, dtype=np.float32)  # a genre with no training covers: probability 0
    w[:, present], b[present] = w_k, b_k
    return LinearHead(name, featurizer, w, b)


def xgboost_to_onnx(model, n_features: int) -> bytes:
    from onnxmltools import convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    onx = convert_xgboost(model, initial_types=[("features", FloatTensorType([None, n_features]))], target_opset=15)
    return onx.SerializeToString()
