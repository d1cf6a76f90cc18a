"""robustness: a converted model's accuracy under camera conditions, in the edge runtime."""

import json

import numpy as np
import pytest
from conftest import LABELS, synth_images
from typer.testing import CliRunner

from edgefer.cli import app as edgefer_app
from edgefer.spec import ModelSpec
from train.cli import app
from train.csveval import evaluate_rows, read_results
from train.metrics import mcnemar_p
from train.robustness import CONDITIONS, measure, perturb


@pytest.mark.parametrize("channels", [1, 3])
def test_each_condition_keeps_shape_changes_the_images_and_repeats_with_its_seed(channels):
    x, _ = synth_images(12, seed=3)
    x = np.repeat(x, channels, axis=-1)
    for condition in CONDITIONS:
        once = perturb(x, condition, seed=7)
        assert once.shape == x.shape and once.dtype == np.uint8, condition.name
        np.testing.assert_array_equal(once, perturb(x, condition, seed=7), err_msg=condition.name)
        changed = np.mean(np.any(once != x, axis=(1, 2, 3)))
        assert changed == (0.0 if condition.name == "clean" else 1.0), condition.name
    noise = next(c for c in CONDITIONS if c.name == "noise 10")
    assert np.any(perturb(x, noise, seed=7) != perturb(x, noise, seed=8))


def test_shift_and_zoom_move_the_picture_not_just_its_values():
    x = np.zeros((1, 16, 16, 1), np.uint8)
    x[0, 6:10, 6:10] = 255  # a bright square in the middle
    by_name = {c.name: c for c in CONDITIONS}
    shifted = perturb(x, by_name["shifted 8%"])[0, ..., 0]
    assert shifted.sum() == x.sum()  # the square is whole, one pixel off diagonally
    assert np.argwhere(shifted == 255).min(0).tolist() in ([5, 5], [5, 7], [7, 5], [7, 7])
    big = np.zeros((1, 48, 48, 1), np.uint8)
    big[0, 18:30, 18:30] = 255
    bright = [(perturb(big, by_name[n])[0] > 127).sum() for n in ("zoomed in", "zoomed out")]
    assert bright[0] > 12 * 12 > bright[1]  # closer: a larger square; further: a smaller one


def test_the_clean_row_is_what_classify_and_evaluate_csv_measure(int8_model, tiny_data, tmp_path):
    rows = measure(int8_model, tiny_data)
    assert [r["condition"] for r in rows] == [c.name for c in CONDITIONS]
    csv = tmp_path / "out.csv"
    result = CliRunner().invoke(
        edgefer_app, ["classify", str(tiny_data), "-r", "-o", str(csv), "--model", str(int8_model)]
    )
    assert result.exit_code == 0, result.output
    metrics = evaluate_rows(*read_results(csv))
    clean = rows[0]
    assert clean["n"] == metrics["n"] == 3 * 20
    assert clean["accuracy"] == pytest.approx(metrics["accuracy"])
    assert clean["same_as_clean"] == 1.0 and clean["change_points"] == 0.0


def test_mirroring_breaks_a_model_that_tells_left_from_the_rest(int8_model, tiny_data):
    # The tiny model finds a bright left half: mirrored, those images lose their cue, while
    # a bright top half or centre stays where it was.
    clean, mirrored = measure(int8_model, tiny_data)[:2]
    assert mirrored["condition"] == "mirrored"
    assert clean["recall"]["left"] > 0.9 and mirrored["recall"]["left"] < 0.1
    assert mirrored["recall"]["top"] > 0.9 and mirrored["recall"]["center"] > 0.9
    assert mirrored["lowest_recall_label"] == "left"
    assert mirrored["same_as_clean"] == pytest.approx(2 / 3, abs=0.1)
    # Its answers: a third each when clean; mirrored, "left" is almost never said.
    for row in (clean, mirrored):
        assert sum(row["predicted"].values()) == pytest.approx(1.0)
    assert all(share == pytest.approx(1 / 3, abs=0.1) for share in clean["predicted"].values())
    assert mirrored["predicted"]["left"] < 0.1 and mirrored["most_predicted_label"] != "left"


def test_cli_prints_the_table_and_writes_json(int8_model, tiny_data, tmp_path):
    out = tmp_path / "r.json"
    args = ["robustness", str(tiny_data), "--model", str(int8_model), "--limit", "30"]
    result = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "half size" in result.output and "n=30" in result.output
    saved = json.loads(out.read_text())
    assert saved["model"] == str(int8_model) and len(saved["rows"]) == len(CONDITIONS)


def test_cli_refuses_folders_without_the_models_labels(int8_model, tmp_path):
    (tmp_path / "cats").mkdir()
    result = CliRunner().invoke(app, ["robustness", str(tmp_path), "--model", str(int8_model)])
    assert result.exit_code == 2
    assert "no images" in result.output and ", ".join(LABELS) in result.output


def test_against_runs_the_other_model_on_the_same_perturbed_images(tiny_models, tiny_data):
    int8, float32 = tiny_models["int8"], tiny_models["none"]
    rows = measure(int8, tiny_data, limit=60, against=float32)
    alone = measure(float32, tiny_data, limit=60)
    for row, other in zip(rows, alone, strict=True):
        versus = row["against"]
        assert versus["accuracy"] == pytest.approx(other["accuracy"]), row["condition"]
        # The discordant counts are the difference of the two accuracies, image for image.
        difference = versus["only_this_right"] - versus["only_other_right"]
        assert difference == round(row["n"] * (row["accuracy"] - versus["accuracy"]))
        assert versus["mcnemar_p"] == mcnemar_p(
            versus["only_this_right"], versus["only_other_right"]
        )
    itself = measure(int8, tiny_data, limit=60, against=int8)
    for r in itself:
        assert r["against"]["only_this_right"] == r["against"]["only_other_right"] == 0
        assert r["against"]["mcnemar_p"] == 1.0


def test_against_a_model_of_other_labels_is_refused(int8_model, tiny_data):
    result = CliRunner().invoke(
        app, ["robustness", str(tiny_data), "--model", str(int8_model), "--against", "default"]
    )
    assert result.exit_code == 2 and "not the labels and input of" in result.output


def test_cli_against_adds_the_columns_and_the_json(tiny_models, tiny_data, tmp_path):
    out = tmp_path / "r.json"
    args = ["robustness", str(tiny_data), "--model", str(tiny_models["int8"]), "--limit", "30"]
    result = CliRunner().invoke(app, [*args, "--against", str(tiny_models["none"]), "--out", out])
    assert result.exit_code == 0, result.output
    assert "only other" in result.output and "McNemar" in result.output
    saved = json.loads(out.read_text())
    assert saved["against"] == str(tiny_models["none"])
    assert {"accuracy", "only_this_right", "only_other_right", "mcnemar_p"} == set(
        saved["rows"][0]["against"]
    )


def test_mcnemar_p_is_the_exact_two_sided_binomial():
    assert mcnemar_p(0, 0) == 1.0
    assert mcnemar_p(10, 0) == mcnemar_p(0, 10) == pytest.approx(2 / 2**10)
    assert mcnemar_p(5, 5) == 1.0  # capped: the two tails overlap at the middle
    assert mcnemar_p(212, 217) == pytest.approx(0.847, abs=0.001)  # edge-p1 vs edge-kd6 on val


def test_a_datasets_root_given_for_its_val_folder_is_named_in_the_refusal(int8_model, tmp_path):
    # A dataset root of train/ and val/ was "no images in DATA/<label>/" and no more.
    from train.evaluate import load_labelled

    for split in ("train", "val"):
        (tmp_path / "data" / split / LABELS[0]).mkdir(parents=True)
    data = tmp_path / "data"
    args = ["robustness", str(data), "--model", str(int8_model)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    said = " ".join(result.output.split())
    assert f"its train/, val/ hold them: give {data / 'val'}" in said, said
    with pytest.raises(ValueError, match=r"its train/, val/ hold them: give .*val\)$"):
        load_labelled(data, ModelSpec(labels=LABELS, input_size=(16, 16), channels=1))
