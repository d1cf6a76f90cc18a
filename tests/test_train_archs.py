"""Architectures build at any size, match the report's parameter count, count FLOPs by hand."""

import numpy as np
import pytest

from train.archs import build, edge, seed
from train.flops import count_flops
from train.tfenv import keras


def test_seed_matches_report_parameter_count():
    assert seed((222, 222, 3), 6).count_params() == 1_281_670  # the report: 1.28M


@pytest.mark.parametrize("shape", [(48, 48, 1), (16, 16, 3), (8, 12, 1)])
def test_archs_build_at_other_sizes_and_output_probabilities(shape):
    for name in ("seed", "edge"):
        model = build(name, shape, 5)
        probs = model.predict(np.full((2, *shape), 128.0, np.float32), verbose=0)
        assert probs.shape == (2, 5)
        np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)


def test_edge_fits_the_device_budget():
    model = edge((48, 48, 1), 7)
    assert model.count_params() <= 1_300_000
    assert count_flops(model) <= 150e6
    kinds = {type(layer).__name__ for layer in model.layers}
    allowed = {
        "InputLayer",
        "Rescaling",
        "Conv2D",
        "BatchNormalization",
        "ReLU",
        "Add",
        "MaxPooling2D",
        "GlobalAveragePooling2D",
        "Dropout",
        "Dense",
    }
    assert kinds <= allowed


def test_flops_by_hand():
    inputs = keras.Input((10, 10, 2))
    h = keras.layers.Conv2D(4, 3, padding="same")(inputs)  # 10*10*9*2*4 = 7200 MACs
    h = keras.layers.DepthwiseConv2D(3)(h)  # 8*8*9*4 = 2304
    h = keras.layers.SeparableConv2D(6, 3)(h)  # 6*6*9*4 + 6*6*4*6 = 1296 + 864
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(3)(h)  # 216*3 = 648
    assert count_flops(keras.Model(inputs, h)) == 2 * (7200 + 2304 + 1296 + 864 + 648)


def test_unknown_arch():
    with pytest.raises(ValueError):
        build("nope", (8, 8, 1), 2)


def test_edge_blocks_per_stage():
    deep = {"stem": (16,), "widths": (32, 64, 128), "blocks": (2, 2, 3)}
    model = edge((48, 48, 1), 7, **deep)
    assert sum(isinstance(layer, keras.layers.Add) for layer in model.layers) == 7
    assert model.count_params() <= 1_300_000 and count_flops(model) <= 150e6
    with pytest.raises(ValueError):
        edge((48, 48, 1), 7, blocks=(1, 2))  # one count per stage


def test_edge_flatten_head_keeps_positions_within_the_budget():
    gap, flat = edge((48, 48, 1), 7), edge((48, 48, 1), 7, head="flatten")
    assert flat.count_params() - gap.count_params() == (36 - 1) * 192 * 7
    assert count_flops(flat) <= 150e6
    assert "Flatten" in {type(layer).__name__ for layer in flat.layers}
    with pytest.raises(ValueError, match="head"):
        edge((48, 48, 1), 7, head="max")


def test_edge_squeeze_excite_gates_each_block_within_the_budget():
    gap, se = edge((48, 48, 1), 7), edge((48, 48, 1), 7, se=4)
    # per block: C -> max(C/4, 8) -> C dense weights and biases, for C = 48, 96, 192
    assert se.count_params() - gap.count_params() == sum(
        2 * c * max(c // 4, 8) + max(c // 4, 8) + c for c in (48, 96, 192)
    )
    assert count_flops(se) - count_flops(gap) < 0.1e6
    assert sum(isinstance(layer, keras.layers.Multiply) for layer in se.layers) == 3


def test_archs_command_with_arch_args():
    from typer.testing import CliRunner

    from train.cli import app

    args = '{"stem": [16], "widths": [32, 64, 128], "blocks": [2, 2, 3]}'
    done = CliRunner().invoke(app, ["archs", "--arch", "edge", "--arch-args", args])
    assert done.exit_code == 0 and "989,655 params" in done.output and "135.1 MFLOPs" in done.output
    done = CliRunner().invoke(app, ["archs", "--arch-args", args])
    assert done.exit_code == 2


@pytest.mark.parametrize("size", ["96x", "x48", "96xx48", "96x48x3", "48 ", "+48", "4.8"])
def test_a_malformed_size_is_a_usage_error(size):
    # "96x" was taken as 96x96 (and "+48", "48 " as 48): the size trained was not the one typed.
    from typer.testing import CliRunner

    from train.cli import app

    result = CliRunner().invoke(app, ["archs", "--arch", "seed", "--size", size])
    assert result.exit_code == 2, result.output
    assert result.output == f"error: --size must be N or HxW (48, 24x40), not {size!r}\n"


def test_sizes_as_n_or_hxw_are_taken():
    from typer.testing import CliRunner

    from train.cli import app

    for size, shown in (("48", "48x48x1"), ("96x48", "96x48x1"), ("24X40", "24x40x1")):
        result = CliRunner().invoke(app, ["archs", "--arch", "seed", "--size", size])
        assert result.exit_code == 0 and f"seed   {shown} -> 7" in result.output, result.output
