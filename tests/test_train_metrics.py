"""train.metrics against a hand-made confusion matrix; the module must not import TensorFlow."""

import subprocess
import sys

import numpy as np
import pytest
from conftest import peak_memory

from train.metrics import (
    accuracy,
    confusion_matrix,
    log_loss,
    macro_f1,
    per_class,
    predict_probs,
    summarize,
)

LABELS = ("a", "b", "c")
# Hand-made: true a -> 3 a, 1 b; true b -> 2 b; true c -> 1 a, 1 b, 2 c.
Y_TRUE = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
Y_PRED = np.array([0, 0, 0, 1, 1, 1, 0, 1, 2, 2])
CM = np.array([[3, 1, 0], [0, 2, 0], [1, 1, 2]])


def test_confusion_matrix_matches_hand_count():
    np.testing.assert_array_equal(confusion_matrix(Y_TRUE, Y_PRED, 3), CM)


def test_per_class_precision_recall_f1():
    stats = per_class(CM)
    np.testing.assert_allclose(stats["precision"], [3 / 4, 2 / 4, 2 / 2])
    np.testing.assert_allclose(stats["recall"], [3 / 4, 2 / 2, 2 / 4])
    f1 = [0.75, 2 * 0.5 * 1 / 1.5, 2 * 1 * 0.5 / 1.5]
    np.testing.assert_allclose(stats["f1"], f1)
    assert accuracy(CM) == pytest.approx(7 / 10)
    assert macro_f1(CM) == pytest.approx(np.mean(f1))


def test_absent_class_has_zero_precision_and_is_left_out_of_macro_f1():
    cm = confusion_matrix(np.array([0, 0, 1]), np.array([0, 1, 1]), 3)
    stats = per_class(cm)
    assert stats["precision"][2] == 0 and stats["recall"][2] == 0
    assert macro_f1(cm) == pytest.approx(np.mean([2 / 3, 2 / 3]))


def test_summarize_is_json_ready():
    m = summarize(Y_TRUE, Y_PRED, LABELS)
    assert m["n"] == 10 and m["confusion_matrix"] == CM.tolist()
    assert m["per_class"]["c"]["support"] == 4
    assert m["per_class"]["a"]["precision"] == pytest.approx(0.75)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError):
        confusion_matrix(np.array([0, 1]), np.array([0]), 2)


def test_log_loss():
    probs = np.array([[0.5, 0.5], [0.25, 0.75]])
    assert log_loss(np.array([0, 1]), probs) == pytest.approx(-(np.log(0.5) + np.log(0.75)) / 2)


def test_metrics_and_csveval_do_not_import_tensorflow():
    code = (
        "import sys, train.metrics, train.csveval, train.data; "
        "sys.exit('tensorflow' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


class _Model:
    """Stands in for a Keras model: each image's row is its first column's mean, per channel."""

    output_shape = (None, 3)

    def __init__(self):
        self.batches = []

    def predict_on_batch(self, x):
        self.batches.append((len(x), x.dtype))
        return x[:, :, 0, :].mean(axis=1)


def test_predictions_are_made_a_batch_at_a_time_and_mirrored_for_tta():
    # A float32 copy of every image (and one of every mirror image) was made first: 8 GB and
    # more for the validation images of the reference report's size.
    x = np.random.default_rng(0).integers(0, 256, (2000, 20, 20, 3), dtype=np.uint8)
    model = _Model()
    plain, peak = peak_memory(lambda: predict_probs(model, x))
    np.testing.assert_allclose(plain, x[:, :, 0, :].mean(axis=1), rtol=1e-6)
    assert model.batches == [(256, np.float32)] * 7 + [(208, np.float32)]
    assert peak < 2 * x.nbytes, (peak, x.nbytes)  # a float32 copy of x is 4 x.nbytes
    both = predict_probs(_Model(), x, tta=True)
    expected = (x[:, :, 0, :].mean(axis=1) + x[:, :, -1, :].mean(axis=1)) / 2
    np.testing.assert_allclose(both, expected, rtol=1e-6)
    assert predict_probs(_Model(), x[:0]).shape == (0, 3)
