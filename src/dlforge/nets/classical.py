"""Classical baselines: scikit-learn estimators as modules, fitted once and stored without pickle.

Each estimator is registered as a network (``net.name``: ``random_forest``, ``decision_tree``,
``gradient_boosting``, ``logistic_regression``); the config's other ``net`` options are the
estimator's own arguments (``model.net.n_estimators=300``). :class:`FittedEstimator` holds the
scikit-learn pipeline (optional TF-IDF weighting or PCA, then the estimator); its
``predict_proba`` is the module's forward. In a checkpoint the fitted pipeline is a uint8 tensor of
skops bytes (the module's extra state), so checkpoints still load with ``torch.load(weights_only=True)``;
reading it back builds only the types skops trusts and those of :func:`trusted_types` (the fitted trees).
"""

from __future__ import annotations

import functools
import importlib
import warnings
import zipfile
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from dlforge.errors import CheckpointError, DlforgeError, first_line
from dlforge.registry import register_net

if TYPE_CHECKING:  # scikit-learn loads on first use: it adds seconds to every tool's start
    from scipy import sparse
    from sklearn.base import ClassifierMixin
    from sklearn.pipeline import Pipeline

    Features = np.ndarray | sparse.csr_matrix

#: net name -> the scikit-learn classifier it builds
ESTIMATORS = {
    "random_forest": "sklearn.ensemble.RandomForestClassifier",
    "decision_tree": "sklearn.tree.DecisionTreeClassifier",
    "gradient_boosting": "sklearn.ensemble.HistGradientBoostingClassifier",
    "logistic_regression": "sklearn.linear_model.LogisticRegression",
}


class FittedEstimator(nn.Module):
    """A scikit-learn pipeline as a module: :meth:`fit` once, then ``forward`` gives log-probabilities.

    Args:
        estimator: an unfitted classifier.
        tfidf: weight word counts by TF-IDF (sublinear term frequency) before the estimator.
        pca: project onto this many principal components first (fitted on the training split).
    """

    def __init__(self, estimator: ClassifierMixin, tfidf: bool = False, pca: int | None = None) -> None:
        from sklearn.decomposition import PCA
        from sklearn.feature_extraction.text import TfidfTransformer
        from sklearn.pipeline import Pipeline

        super().__init__()
        steps: list[tuple[str, Any]] = []
        if tfidf:
            steps.append(("tfidf", TfidfTransformer(sublinear_tf=True)))
        if pca:
            steps.append(("pca", PCA(n_components=pca, svd_solver="randomized")))
        self.pipeline = Pipeline([*steps, ("estimator", estimator)])
        self.fitted = False

    @property
    def estimator(self) -> ClassifierMixin:
        return self.pipeline.named_steps["estimator"]

    def fit(self, features: Features, labels: np.ndarray, seed: int) -> None:
        """Fit the whole pipeline on the training split (``seed``: every random choice it makes)."""
        self.pipeline.set_params(**{f"{name}__random_state": seed for name in self.random_steps()})
        try:
            self.pipeline.fit(features, labels)
        except (TypeError, ValueError) as err:
            raise DlforgeError(f"cannot fit {type(self.estimator).__name__}: {first_line(err)}") from None
        self.fitted = True

    def random_steps(self) -> list[str]:
        return [name for name, step in self.pipeline.steps if "random_state" in step.get_params()]

    def forward(self, features: Features) -> torch.Tensor:
        """Log-probabilities (N, classes) of every class, also those absent from the training split."""
        if not self.fitted:
            raise DlforgeError("this baseline was never fitted; train it first (python train.py model=...)")
        probs = self.pipeline.predict_proba(features)
        return torch.from_numpy(np.log(np.clip(probs, 1e-12, None))).float()

    # --- the fitted pipeline in a state dict: skops bytes as a uint8 tensor -------------------
    def get_extra_state(self) -> torch.Tensor:
        if not self.fitted:
            return torch.empty(0, dtype=torch.uint8)
        import skops.io

        data = skops.io.dumps(self.pipeline, compression=zipfile.ZIP_DEFLATED)
        return torch.frombuffer(bytearray(data), dtype=torch.uint8)

    def set_extra_state(self, state: torch.Tensor) -> None:
        if state.numel() == 0:
            return
        self.pipeline = load_pipeline(state.numpy().tobytes())
        self.fitted = True


@functools.cache
def trusted_types() -> frozenset[str]:
    """The types beyond skops' defaults that a stored baseline may hold (the fitted trees of the forests,
    the tree and gradient boosting), as skops itself names them in what dlforge writes: every estimator
    of :data:`ESTIMATORS` behind PCA, and the TF-IDF step, fitted on a few rows through their public
    classes. No scikit-learn module path is written here, private ones (where the tree types live)
    least of all, so the names follow scikit-learn's own. A fraction of a second, once per process."""
    import skops.io
    from sklearn.decomposition import PCA
    from sklearn.feature_extraction.text import TfidfTransformer
    from sklearn.pipeline import Pipeline

    features = np.array([[0, 1, 2], [1, 0, 3], [2, 2, 0], [3, 1, 1], [0, 3, 1], [1, 1, 1]], dtype=float)
    labels = np.array([0, 1, 0, 1, 0, 1])
    written: list[Any] = [TfidfTransformer(sublinear_tf=True).fit(features)]
    with warnings.catch_warnings():  # a few rows: convergence notes and the like say nothing here
        warnings.simplefilter("ignore")
        for path in ESTIMATORS.values():
            module, _, class_name = path.rpartition(".")
            estimator = getattr(importlib.import_module(module), class_name)()
            small = {"random_state": 0, "n_estimators": 2, "max_iter": 2}
            estimator.set_params(**{k: v for k, v in small.items() if k in estimator.get_params()})
            pca = PCA(n_components=2, svd_solver="randomized", random_state=0)
            written.append(Pipeline([("pca", pca), ("estimator", estimator)]).fit(features, labels))
    return frozenset(skops.io.get_untrusted_types(data=skops.io.dumps(written)))


def load_pipeline(data: bytes) -> Pipeline:
    """A pipeline from skops bytes, refusing any type outside skops' defaults and :func:`trusted_types`."""
    import skops.io
    from sklearn.pipeline import Pipeline

    try:
        untrusted = skops.io.get_untrusted_types(data=data)
        unknown = sorted(set(untrusted) - trusted_types())
        if unknown:
            raise CheckpointError(
                f"the stored baseline holds types dlforge does not trust ({', '.join(unknown[:3])}); "
                "it was not written by dlforge: refusing to load it"
            )
        pipeline = skops.io.loads(data, trusted=untrusted)  # every one of them in trusted_types()
    except CheckpointError:
        raise
    except Exception as err:  # skops raises several types for damaged files
        raise CheckpointError(f"cannot read the stored baseline: {first_line(err)}") from None
    if not isinstance(pipeline, Pipeline):
        raise CheckpointError(f"the stored baseline is a {type(pipeline).__name__}, not a pipeline")
    return pipeline


def estimator_net(name: str) -> Any:
    """A factory ``(tfidf, pca, class_weight, **options) -> FittedEstimator`` for ``ESTIMATORS[name]``."""
    module, _, class_name = ESTIMATORS[name].rpartition(".")

    def build(
        tfidf: bool = False,
        pca: int | None = None,
        class_weight: dict[int, float] | None = None,
        **options: Any,
    ) -> FittedEstimator:
        cls = getattr(importlib.import_module(module), class_name)
        try:
            estimator = cls(class_weight=class_weight, **options)
        except TypeError as err:
            raise DlforgeError(f"{class_name}: {first_line(err)}; see its scikit-learn options") from None
        return FittedEstimator(estimator, tfidf=tfidf, pca=pca)

    build.__doc__ = f"A scikit-learn {class_name} (options from ``net``) in a :class:`FittedEstimator`."
    return build


for _name in ESTIMATORS:
    register_net(_name)(estimator_net(_name))
