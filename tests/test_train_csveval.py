"""evaluate-csv: metrics from an edgefer CSV, truth from the label folder each image is in."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from train.cli import app
from train.csveval import CsvFormatError, evaluate_rows, read_results

CSV = """path,label,confidence,happy,sad,error
val/happy/1.png,happy,0.900000,0.900000,0.100000,
val/happy/2.png,sad,0.600000,0.400000,0.600000,
val/sad/3.png,sad,0.800000,0.200000,0.800000,
val/sad/4.png,,,,,truncated or corrupt image
other/5.png,happy,0.700000,0.700000,0.300000,
"""


def test_rows_scored_by_parent_folder_failed_rows_apart(tmp_path):
    path = tmp_path / "out.csv"
    path.write_text(CSV)
    labels, rows = read_results(path)
    assert labels == ("happy", "sad")
    m = evaluate_rows(labels, rows)
    assert m["n"] == 3 and m["accuracy"] == pytest.approx(2 / 3)
    assert m["confusion_matrix"] == [[1, 1], [0, 1]]
    assert m["failed_rows"] == 1 and m["unlabelled_rows"] == 1


def test_not_an_edgefer_csv(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(CsvFormatError):
        read_results(path)


def test_cli_writes_metrics_json_and_png(tmp_path):
    path = tmp_path / "out.csv"
    path.write_text(CSV)
    result = CliRunner().invoke(app, ["evaluate-csv", str(path), "--labels-from-parent-dir"])
    assert result.exit_code == 0, result.output
    assert "accuracy=0.6667" in result.output
    metrics = json.loads((tmp_path / "out-metrics.json").read_text())
    assert metrics["macro_f1"] == pytest.approx((2 / 3 + 2 / 3) / 2)
    assert (tmp_path / "out-metrics-confusion.png").stat().st_size > 1000


def test_two_csvs_scored_in_one_folder_keep_their_own_results(tmp_path):
    # Both wrote metrics.json and confusion.png beside the CSV: the second replaced the first's.
    (tmp_path / "default.csv").write_text(CSV)
    (tmp_path / "robust.csv").write_text(CSV.replace("2.png,sad,", "2.png,happy,"))
    for name in ("default", "robust"):
        result = CliRunner().invoke(app, ["evaluate-csv", str(tmp_path / f"{name}.csv")])
        assert result.exit_code == 0, result.output
        assert f"wrote {tmp_path / f'{name}-metrics.json'}" in result.output
    default = json.loads((tmp_path / "default-metrics.json").read_text())
    robust = json.loads((tmp_path / "robust-metrics.json").read_text())
    assert default["accuracy"] == pytest.approx(2 / 3) and robust["accuracy"] == 1.0
    assert default["csv"] == str(tmp_path / "default.csv")
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [
        "default-metrics-confusion.png",
        "robust-metrics-confusion.png",
    ]


def test_cli_exit_2_on_bad_csv(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("nope\n")
    assert CliRunner().invoke(app, ["evaluate-csv", str(path)]).exit_code == 2
    binary = tmp_path / "photo.csv"  # a JPEG under the wrong name
    binary.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF" + bytes(range(256)))
    good = tmp_path / "out.csv"
    good.write_text(CSV)
    for args in (["evaluate-csv", str(binary)], ["compare-csv", str(good), str(binary)]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2
        assert "photo.csv is not an edgefer CSV (not UTF-8 text)" in " ".join(result.output.split())


def _csv(path, predictions):
    """An edgefer CSV of images under their true-label folders with the given predictions."""
    lines = ["path,label,confidence,angry,happy,sad,error"]
    for i, (truth, predicted) in enumerate(predictions):
        if predicted is None:
            lines.append(f"val/{truth}/{i}.png,,,,,,broken")
        else:
            p = {k: "0.9" if k == predicted else "0.05" for k in ("angry", "happy", "sad")}
            lines.append(
                f"val/{truth}/{i}.png,{predicted},0.9,{p['angry']},{p['happy']},{p['sad']},"
            )
    path.write_text("\n".join(lines) + "\n")
    return path


def test_compare_counts_discordant_images_and_mcnemar_p(tmp_path):
    from math import comb

    from train.csveval import compare_rows

    truth = ["happy"] * 12 + ["sad"] * 2 + ["angry"] * 10 + ["sad"] * 3 + ["happy"]
    a = ["happy"] * 12 + ["happy"] * 2 + ["angry"] * 10 + ["happy", "happy", "angry"] + ["happy"]
    b = ["sad"] * 12 + ["sad"] * 2 + ["angry"] * 10 + ["happy", "happy", "happy"] + [None]
    csv_a = _csv(tmp_path / "a.csv", list(zip(truth, a, strict=True)))
    csv_b = _csv(tmp_path / "b.csv", list(zip(truth, b, strict=True)))
    r = compare_rows(read_results(csv_a), read_results(csv_b))
    # The image B failed on is left out: 27 shared, A right on 22, B on 12.
    assert r["images"] == 27
    assert r["only_a_right"] == 12 and r["only_b_right"] == 2
    assert r["accuracy_a"] == pytest.approx(22 / 27) and r["accuracy_b"] == pytest.approx(12 / 27)
    assert r["mcnemar_p"] == pytest.approx(2 * (comb(14, 0) + comb(14, 1) + comb(14, 2)) / 2**14)
    assert r["top1_agreement"] == pytest.approx(12 / 27)
    same = compare_rows(read_results(csv_a), read_results(csv_a))
    assert same["mcnemar_p"] == 1.0 and same["only_a_right"] == same["only_b_right"] == 0
    result = CliRunner().invoke(app, ["compare-csv", str(csv_a), str(csv_b)])
    assert result.exit_code == 0, result.output
    assert "right only for A 12, only for B 2" in result.output and "p=0.013" in result.output
    other = tmp_path / "other.csv"
    other.write_text("path,label,confidence,happy,sad,error\nval/happy/0.png,happy,1,1,0,\n")
    result = CliRunner().invoke(app, ["compare-csv", str(csv_a), str(other)])
    assert result.exit_code == 2 and "different labels" in result.output


def test_formula_like_labels_round_trip_through_the_csv(tmp_path):
    # edgefer writes a label "-ve" as "'-ve" in the header as in cells; the header was read as is
    # and every row fell outside the label folders.
    path = tmp_path / "out.csv"
    path.write_text(
        "path,label,confidence,'-ve,'+ve,error\n"
        "val/-ve/1.png,'-ve,0.9,0.9,0.1,\n"
        "val/+ve/2.png,'-ve,0.6,0.6,0.4,\n"
    )
    labels, rows = read_results(path)
    assert labels == ("-ve", "+ve")
    m = evaluate_rows(labels, rows)
    assert m["n"] == 2 and m["accuracy"] == pytest.approx(0.5) and m["unlabelled_rows"] == 0


def test_compare_matches_paths_across_spellings_and_reports_what_it_left_out(tmp_path, monkeypatch):
    from train.csveval import compare_rows

    monkeypatch.chdir(tmp_path)
    truth = ["happy", "sad", "angry", "happy"]
    rel = _csv(tmp_path / "rel.csv", list(zip(truth, truth, strict=True)))
    absolute = tmp_path / "abs.csv"
    absolute.write_text(rel.read_text().replace("\nval/", f"\n{tmp_path}/val/"))
    r = compare_rows(read_results(rel), read_results(absolute))
    assert r["images"] == 4 and r["only_in_a"] == r["only_in_b"] == 0
    fewer = _csv(tmp_path / "fewer.csv", list(zip(truth[:2], truth[:2], strict=True)))
    r = compare_rows(read_results(rel), read_results(fewer))
    assert r["images"] == 2 and r["only_in_a"] == 2 and r["only_in_b"] == 0
    result = CliRunner().invoke(app, ["compare-csv", str(rel), str(fewer)])
    assert "images scored in only one CSV are left out: 2 in A, 0 in B" in result.output


def test_faces_csvs_and_bom_csvs(tmp_path):
    faces = tmp_path / "faces.csv"
    faces.write_text("path,face,x,y,w,h,det_score,label,confidence,happy,sad,error\n")
    with pytest.raises(CsvFormatError, match="written with --faces"):
        read_results(faces)
    bom = tmp_path / "bom.csv"
    bom.write_text("\ufeff" + CSV)  # saved by a spreadsheet as "CSV UTF-8"
    assert read_results(bom)[0] == ("happy", "sad")


def test_evaluate_csv_out_may_be_a_folder_or_a_named_file(tmp_path):
    path = tmp_path / "out.csv"
    path.write_text(CSV)
    (tmp_path / "ev").mkdir()
    assert (
        CliRunner()
        .invoke(app, ["evaluate-csv", str(path), "--out", str(tmp_path / "ev")])
        .exit_code
        == 0
    )
    assert sorted(p.name for p in (tmp_path / "ev").iterdir()) == ["confusion.png", "metrics.json"]
    named = tmp_path / "ev" / "C-metrics.json"
    assert CliRunner().invoke(app, ["evaluate-csv", str(path), "--out", str(named)]).exit_code == 0
    assert (tmp_path / "ev" / "C-metrics-confusion.png").exists()


def test_a_predicted_label_outside_the_columns_is_named(tmp_path):
    path = tmp_path / "out.csv"
    path.write_text("path,label,confidence,happy,sad,error\nval/happy/1.png,angry,0.9,0.9,0.1,\n")
    with pytest.raises(CsvFormatError, match="not the CSV's label columns: angry"):
        evaluate_rows(*read_results(path))
    result = CliRunner().invoke(app, ["archs", "--channels", "2"])
    assert result.exit_code == 2 and "--channels must be 1 or 3" in result.output


def test_a_time_column_is_read_past(tmp_path):
    lines = CSV.splitlines()
    stamp = ",2026-11-30T08:05:09+01:00,"
    timed = [lines[0].replace("path,", "path,time,")]
    timed += [line.replace(",", stamp, 1) for line in lines[1:]]
    path = tmp_path / "timed.csv"
    path.write_text("\n".join(timed) + "\n")
    labels, rows = read_results(path)
    assert labels == ("happy", "sad")
    assert evaluate_rows(labels, rows)["accuracy"] == pytest.approx(2 / 3)
    faces = tmp_path / "faces.csv"
    faces.write_text("path,time,face,x,y,w,h,det_score,label,confidence,happy,sad,error\n")
    with pytest.raises(CsvFormatError, match="written with --faces"):
        read_results(faces)


def test_labels_named_like_columns_and_rows_cut_short(tmp_path):
    # Rows were dicts keyed by column name: a label "path" or "error" took that column's place.
    path = tmp_path / "out.csv"
    path.write_text(
        "path,label,confidence,path,error,error\n"
        "val/path/1.png,path,0.900000,0.900000,0.100000,\n"
        "val/error/2.png,error,0.800000,0.200000,0.800000,\n"
        "val/error/3.png,path,0.600000,0.600000,0.400000,\n"
        "val/path/4.png,,,,,truncated or corrupt image\n"
        "val/path/5.png,path,0.9\n"  # the last row of a CSV still being written
        "val/error/6.png,error,0.8,x,y,\n"
    )
    labels, rows = read_results(path)
    assert labels == ("path", "error")
    m = evaluate_rows(labels, rows)
    assert m["n"] == 3 and m["accuracy"] == pytest.approx(2 / 3)
    assert m["failed_rows"] == 1 and m["incomplete_rows"] == 2 and m["unlabelled_rows"] == 0
    assert m["loss"] == pytest.approx(-(np.log(0.9) + np.log(0.8) + np.log(0.4)) / 3)
    result = CliRunner().invoke(app, ["evaluate-csv", str(path)])
    assert result.exit_code == 0, result.output
    assert "failed rows 1, rows outside label folders 0, rows cut short or damaged 2" in (
        result.output
    )


def test_nothing_to_score_says_why(tmp_path):
    # The usual cause: a dataset's test folders classified with the default FER2013 model.
    path = tmp_path / "out.csv"
    path.write_text(
        "path,label,confidence,happy,sad,error\n"
        + "".join(f"test/{c}/{i}.png,sad,0.6,0.4,0.6,\n" for c in "ABCDEFGH" for i in range(2))
    )
    result = CliRunner().invoke(app, ["evaluate-csv", str(path)])
    assert result.exit_code == 2
    assert "labels: happy, sad; its images' folders: A, B, C, D, E, F (and 2 more)" in (
        " ".join(result.output.split())
    )
    path.write_text("path,label,confidence,happy,sad,error\nv/sad/1.png,,,,,truncated\n")
    with pytest.raises(CsvFormatError, match="1 failed and 0 cut short"):
        evaluate_rows(*read_results(path))
    path.write_text("path,label,confidence,happy,sad,error\n")
    with pytest.raises(CsvFormatError, match="the CSV has no rows"):
        evaluate_rows(*read_results(path))


def test_images_in_a_class_folders_sub_folders_are_of_that_class(tmp_path):
    # fit, convert --validate and `train split` count Surprise/batch2/x.jpg as Surprise; here
    # only the parent folder was read, so `classify test/ -r` of such a dataset had those
    # rows left out as "outside label folders" and the metrics were of the rest.
    path = tmp_path / "out.csv"
    path.write_text(
        "path,label,confidence,happy,sad,error\n"
        "test/happy/batch2/1.png,happy,0.900000,0.900000,0.100000,\n"
        "/data/sad/test/happy/2019/05/2.png,sad,0.600000,0.400000,0.600000,\n"
        "test/sad/3.png,sad,0.800000,0.200000,0.800000,\n"
        "other/4.png,happy,0.700000,0.700000,0.300000,\n"
    )
    m = evaluate_rows(*read_results(path))
    assert m["n"] == 3 and m["unlabelled_rows"] == 1
    assert m["confusion_matrix"] == [[1, 1], [0, 1]]


def test_compare_csvs_of_one_label_set_in_another_column_order(tmp_path):
    # Two models of the same labels in another output order (fit --classes) were refused as
    # having "different labels"; rows are compared by label name, so the order does not matter.
    truth = ["happy"] * 4 + ["sad"] * 3 + ["angry"] * 3
    a = ["happy", "happy", "sad", "angry", "sad", "sad", "happy", "angry", "angry", "sad"]
    csv_a = _csv(tmp_path / "a.csv", list(zip(truth, a, strict=True)))
    lines = csv_a.read_text().splitlines()
    reordered = []
    for line in lines:  # columns angry,happy,sad -> sad,angry,happy
        c = line.split(",")
        reordered.append(",".join([*c[:3], c[5], c[3], c[4], *c[6:]]))
    csv_b = tmp_path / "b.csv"
    csv_b.write_text("\n".join(reordered) + "\n")
    assert read_results(csv_b)[0] == ("sad", "angry", "happy")
    result = CliRunner().invoke(app, ["compare-csv", str(csv_a), str(csv_b)])
    assert result.exit_code == 0, result.output
    assert "images=10  A 0.6000  B 0.6000" in result.output
    assert "top-1 agreement 1.000" in result.output
    other = tmp_path / "other.csv"
    other.write_text("path,label,confidence,happy,sad,error\nval/happy/0.png,happy,1,1,0,\n")
    refused = CliRunner().invoke(app, ["compare-csv", str(csv_a), str(other)])
    assert refused.exit_code == 2 and "only A has angry" in refused.output
