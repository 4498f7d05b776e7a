"""The CPU featurizer cuts a batch into one slice per core, each run on one onnxruntime thread at the same time:
the features must be those of running each cover alone, in the batch's order, whatever the cut."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from scorer.decode import decode_image
from scorer.featurize import OnnxFeaturizer
from scorer.featurize.cnn import CPU
from scorer.model import shipped_featurizer


@pytest.fixture(scope="module")
def covers(sample_covers) -> np.ndarray:
    return np.stack([decode_image(p.read_bytes()) for p in sample_covers[:7]])


@pytest.fixture(scope="module")
def one_by_one(covers) -> np.ndarray:
    """Each cover alone, on a featurizer that never slices."""
    single = OnnxFeaturizer(shipped_featurizer(), threads=1, providers=[CPU])
    return np.concatenate([single(c[None]) for c in covers])


@pytest.mark.parametrize("threads", [2, 3, 7, 16])
def test_a_sliced_batch_gives_each_covers_own_features_in_order(covers, one_by_one, threads):
    cnn = OnnxFeaturizer(shipped_featurizer(), threads=threads, providers=[CPU])
    assert cnn.parallel == threads
    assert cnn.session.get_session_options().intra_op_num_threads == 1
    features = cnn(covers)
    assert features.shape == one_by_one.shape
    np.testing.assert_allclose(features, one_by_one, rtol=0, atol=1e-5)
    # distinct covers have distinct features, so a slice out of place would show
    assert len({f.tobytes() for f in one_by_one}) == len(covers)


def test_the_other_slices_run_on_the_featurizers_own_threads(covers):
    cnn = OnnxFeaturizer(shipped_featurizer(), threads=3, providers=[CPU])
    cnn(covers)
    assert cnn._pool is not None
    assert cnn._pool._max_workers == 2  # threads - 1: the caller runs the first slice itself
    assert any(t.name.startswith("scorer-onnx") for t in threading.enumerate())


def test_a_single_cover_is_one_run_on_the_calling_thread(covers, one_by_one):
    cnn = OnnxFeaturizer(shipped_featurizer(), threads=4, providers=[CPU])
    np.testing.assert_allclose(cnn(covers[:1]), one_by_one[:1], rtol=0, atol=1e-5)
    assert cnn._pool is None  # nothing was handed to another thread
