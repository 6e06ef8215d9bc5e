"""Models trained in the tests (small, so fast), their native files, and the CLI runner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from shared import clear_onnxgate_env
from sklearn.datasets import make_classification

FEATURES = 6


@pytest.fixture(autouse=True)
def _no_onnxgate_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI reads ONNXGATE_* from the environment; these tests pass everything as flags."""
    clear_onnxgate_env(monkeypatch)


@pytest.fixture(scope="session")
def training() -> tuple[np.ndarray, np.ndarray]:
    x, y = make_classification(n_samples=240, n_features=FEATURES, random_state=0)
    return x.astype(np.float32), y


@pytest.fixture
def sample_file(tmp_path: Path, training: tuple[np.ndarray, np.ndarray]) -> Path:
    path = tmp_path / "sample.npy"
    np.save(path, training[0][:120])
    return path


@pytest.fixture(scope="session")
def sklearn_pipeline(training: tuple[np.ndarray, np.ndarray]) -> Any:
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), GradientBoostingClassifier(n_estimators=15)).fit(
        *training
    )


@pytest.fixture(scope="session")
def lightgbm_model(training: tuple[np.ndarray, np.ndarray]) -> Any:
    import lightgbm

    return lightgbm.LGBMClassifier(n_estimators=15, num_leaves=8, verbose=-1).fit(*training)


@pytest.fixture(scope="session")
def xgboost_model(training: tuple[np.ndarray, np.ndarray]) -> Any:
    import xgboost

    return xgboost.XGBClassifier(n_estimators=15, max_depth=3, n_jobs=1).fit(*training)
