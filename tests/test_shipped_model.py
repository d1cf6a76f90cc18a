"""The shipped default model stays within issue #5's budget, and its model card describes it."""

import re
import sys
from pathlib import Path

import numpy as np

from edgefer.classifier import Classifier, default_model_path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import flops  # noqa: E402

CARD = REPO / "models" / "README.md"
FER2013 = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")


def test_shipped_model_is_full_int8_within_the_size_and_flops_budget():
    path = default_model_path()
    with Classifier.create_from_model_path(path, num_threads=1) as classifier:
        assert classifier.labels == FER2013
        assert classifier.input_dtype == np.int8 and classifier.output_dtype == np.int8
        metadata = classifier.spec.metadata
    assert metadata["quantization"] == "int8"
    assert path.stat().st_size <= 1_500_000
    cost = flops.model_cost(path.read_bytes())  # counted from the graph, not the metadata
    assert cost.flops <= 150e6
    assert abs(cost.flops - metadata["flops"]) <= 0.01 * cost.flops


def test_model_card_states_the_shipped_file_size_and_flops():
    # A replaced model with an unchanged card would describe another file.
    path = default_model_path()
    card = CARD.read_text()
    assert f"{path.stat().st_size:,} bytes" in card
    mflops = flops.model_cost(path.read_bytes()).flops / 1e6
    stated = [float(x) for x in re.findall(r"([\d.]+) MFLOPs per image", card)]
    assert stated and all(abs(x - mflops) < 0.1 for x in stated), (stated, mflops)
