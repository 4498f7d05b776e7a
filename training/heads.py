"""Fitting the heads. Each fit returns a runtime head (``scorer.heads``) plus how to save it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from scorer.featurize.cnn import default_threads
from scorer.heads import KnnHead, MlpHead

HEAD_KINDS = ("knn", "xgboost", "mlp")

#: Per head kind and featurizer kind. XGBoost on CNN features follows the reference recipe
#: (300 trees, depth 4); on the 512-d histogram it keeps xgboost's defaults. The MLPs' L2
#: strengths were picked by 5-fold CV on covers-5genre (cnn: 0.1→0.283, 1→0.283, 3→0.293,
#: 10→0.299, 30→0.286 balanced accuracy).
PARAMS: dict[tuple[str, str], dict] = {
    ("knn", "cnn"): {"k": 10, "weighted": True},
    ("knn", "colour"): {"k": 10, "weighted": True},
    ("xgboost", "cnn"): {"n_estimators": 300, "max_depth": 4, "learning_rate": 0.1, "subsample": 0.8,
                         "colsample_bytree": 0.5},
    ("xgboost", "colour"): {},
    ("mlp", "cnn"): {"hidden": 256, "alpha": 10.0},
    ("mlp", "colour"): {"hidden": 256, "alpha": 1.0},
}


@dataclass
class Fitted:
    """A trained head: ``predict_proba`` for evaluation, ``save`` for shipping."""

    kind: str
    featurizer: str
    model: object
    params: dict = field(default_factory=dict)
    suffix: str = ".npz"

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_proba(x), dtype=np.float32)

    def save(self, path: Path) -> None:
        if self.kind == "xgboost":
            path.write_bytes(xgboost_to_onnx(self.model, n_features=self.model.n_features_in_))
        else:
            self.model.save(path)


def fit_head(kind: str, featurizer: str, x: np.ndarray, y: np.ndarray, n_classes: int, seed: int = 0) -> Fitted:
    if kind not in HEAD_KINDS:
        raise ValueError(f"unknown head kind {kind!r}; known: {', '.join(HEAD_KINDS)}")
    params = dict(PARAMS[(kind, featurizer)])
    name = f"{featurizer}-{kind}"
    if kind == "knn":
        model = KnnHead(name, featurizer, x, y, n_classes, **params)
        return Fitted(kind, featurizer, model, params)
    if kind == "mlp":
        return Fitted(kind, featurizer, _fit_mlp(name, featurizer, x, y, seed, **params), params)
    import xgboost as xgb

    objective = "binary:logistic" if n_classes == 2 else "multi:softprob"
    model = xgb.XGBClassifier(objective=objective, tree_method="hist", random_state=seed,
                              n_jobs=default_threads(), **params)
    model.fit(x, y)
    return Fitted(kind, featurizer, model, params, suffix=".onnx")


def _fit_mlp(name: str, featurizer: str, x: np.ndarray, y: np.ndarray, seed: int, hidden: int, alpha: float) -> MlpHead:
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x)
    clf = MLPClassifier(hidden_layer_sizes=(hidden,), alpha=alpha, early_stopping=True, validation_fraction=0.1,
                        n_iter_no_change=10, max_iter=300, random_state=seed)
    clf.fit(scaler.transform(x), y)
    (w1, w2), (b1, b2) = clf.coefs_, clf.intercepts_
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    if w2.shape[1] == 1:  # binary: sklearn keeps one logistic unit; make it a 2-way softmax
        w2, b2 = np.hstack([np.zeros_like(w2), w2]), np.hstack([np.zeros_like(b2), b2])
    return MlpHead(name, featurizer, scaler.mean_, scale, w1, b1, w2, b2)


def xgboost_to_onnx(model, n_features: int) -> bytes:
    from onnxmltools import convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    onx = convert_xgboost(model, initial_types=[("features", FloatTensorType([None, n_features]))], target_opset=15)
    return onx.SerializeToString()
