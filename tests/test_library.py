"""edgefer as a library, the way an app embedding it uses it: the shipped model, real crops."""

from pathlib import Path

import numpy as np
import pytest

from edgefer.classifier import Classifier, ClassifierOptions
from edgefer.preprocess import load_image

REPO = Path(__file__).resolve().parents[1]
SAMPLES = sorted((REPO / "samples").glob("*.jpg"))


@pytest.fixture(scope="module")
def classifier():
    with Classifier(ClassifierOptions(num_threads=1, batch_size=4)) as c:
        yield c


@pytest.fixture(scope="module")
def crops(classifier):
    spec = classifier.spec
    return np.stack([load_image(p, spec.input_size, spec.channels) for p in SAMPLES])


@pytest.mark.parametrize(
    "scaled",
    [
        lambda x: x / 255.0,  # a Keras habit: 0..1 floats were classified as a near-black face
        lambda x: x.astype(np.float32),
        lambda x: x.astype(np.uint16) * 257,
        lambda x: x > 127,
    ],
    ids=["float 0..1", "float 0..255", "uint16", "bool"],
)
def test_pixels_other_than_uint8_are_refused_not_misread(classifier, crops, scaled):
    with pytest.raises(ValueError, match="expected uint8 pixels 0..255, got"):
        classifier.predict(scaled(crops))


def test_a_wrong_shape_says_what_the_model_wants(classifier, crops):
    one = crops[0]
    with pytest.raises(ValueError, match=r"\(n, 48, 48, 1\), got \(48, 48, 1\) \(one image: image"):
        classifier.predict(one)
    with pytest.raises(ValueError, match=r"got \(48, 48\) \(one image: image\[None, \.\.\., None"):
        classifier.predict(one[..., 0])
    with pytest.raises(ValueError, match=r"got \(3, 48, 48, 3\)$"):
        classifier.predict(np.repeat(crops, 3, axis=-1))
    with pytest.raises(TypeError, match="expected a numpy array of images, got list"):
        classifier.predict(list(crops))
    assert classifier.predict(one[None]).shape == (1, len(classifier.labels))
