"""benchmarks/run.py: its quick mode on the tiny model writes every section, and its helpers work.

No timing thresholds here: a shared CI machine makes any such assertion flaky. The structure of
the output, the interleaving order, the arithmetic and the tensorflow check are what is tested.
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))

import flops  # noqa: E402
import harness  # noqa: E402
import report  # noqa: E402
import run  # noqa: E402
import sections  # noqa: E402

from edgefer.shipped import SHIPPED_MODELS, shipped_models_dir  # noqa: E402
from edgefer.spec import read_spec  # noqa: E402


def test_interleave_rotates_the_order_and_reports_items_per_second():
    calls = []

    def workload(name):
        def run():
            calls.append(name)
            return 10

        return run

    rates = harness.interleave({k: workload(k) for k in "abc"}, repeats=3, warmup=1)
    assert calls == [*"abc", *"abc", *"bca", *"cab"]  # warm-up, then rotated repeats
    assert set(rates) == {"a", "b", "c"}
    assert all(len(r.values) == 3 and r.median > 0 for r in rates.values())


def test_paired_ratio_is_the_median_of_per_repeat_ratios():
    a = harness.Rates((10.0, 40.0, 30.0))
    b = harness.Rates((10.0, 10.0, 10.0))
    assert harness.paired_ratio(a, b) == 3.0
    assert harness.Rates((9.0, 10.0, 11.0)).spread == pytest.approx(0.2)


def test_child_peak_rss_does_not_inherit_this_process_size():
    hog = bytearray(200 * 1024 * 1024)
    hog[::4096] = b"\1" * len(hog[::4096])  # touch every page: this process is now >200 MiB
    run = harness.run_process([sys.executable, "-c", "pass"])
    assert run.returncode == 0
    assert run.peak_rss_kib < 100 * 1024, run.peak_rss_kib


def test_mac_counts_of_conv_depthwise_and_dense():
    # 3x3 conv, 1 -> 8 channels, 16x16 output: 16*16*8 outputs, 9 MACs each.
    assert flops._op_macs("CONV_2D", (8, 3, 3, 1), (16, 16, 8)) == 16 * 16 * 8 * 9
    assert flops._op_macs("DEPTHWISE_CONV_2D", (1, 3, 3, 8), (16, 16, 8)) == 16 * 16 * 8 * 9
    assert flops._op_macs("FULLY_CONNECTED", (3, 512), (3,)) == 3 * 512
    assert flops._op_macs("MAX_POOL_2D", (), (8, 8, 8)) == 0


def test_model_cost_of_the_tiny_model(int8_model):
    cost = flops.model_cost(int8_model.read_bytes())
    # conftest's model: Conv2D(8, 3) on 16x16 -> 14x14x8, then Dense(3) on 7*7*8.
    assert cost.macs == 14 * 14 * 8 * 9 + 7 * 7 * 8 * 3
    assert cost.flops == 2 * cost.macs


def test_hand_written_notes_survive_a_rewrite():
    old = "# results\nold tables\n" + report.NOTES_MARKER + "\n## Findings\nkept\n"
    new = report.markdown_report({"CPU": "x"}, {"mode": "quick"}, [], report.kept_notes(old))
    assert "old tables" not in new
    assert new.rstrip().endswith("## Findings\nkept")


@pytest.fixture
def results_md(tmp_path):
    """A RESULTS.md from an earlier, good run."""
    path = tmp_path / "RESULTS.md"
    path.write_text("good results\n")
    return path


@pytest.fixture
def no_measuring(monkeypatch):
    """Fails the test if run.py gets as far as measuring (building its inputs)."""

    def build_context(*_):
        pytest.fail("got as far as measuring")

    monkeypatch.setattr(run, "build_context", build_context)


@pytest.mark.parametrize("wanted", ["99", "abc", "1,99", "0", ","])
def test_a_section_that_does_not_exist_is_a_usage_error_before_anything_runs(
    wanted, results_md, no_measuring, capsys
):
    with pytest.raises(SystemExit) as exc:
        run.main(["--sections", wanted, "--results", str(results_md)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error: --sections" in err, err
    assert results_md.read_text() == "good results\n"


@pytest.mark.parametrize("repeats", ["0", "-3"])
def test_repeats_below_one_are_a_usage_error_before_anything_runs(
    repeats, results_md, no_measuring, capsys
):
    # -3 crashed once measuring had begun; 0 was taken for the default without a word.
    with pytest.raises(SystemExit) as exc:
        run.main(["--repeats", repeats, "--results", str(results_md)])
    assert exc.value.code == 2 and "error: --repeats" in capsys.readouterr().err
    assert results_md.read_text() == "good results\n"


@pytest.mark.parametrize(
    "option, path",
    [
        ("--results", "missing/RESULTS.md"),
        ("--json", "missing/results.json"),
        ("--results", "."),  # a folder
    ],
)
def test_an_unwritable_output_is_a_usage_error_before_measuring(
    option, path, tmp_path, no_measuring, capsys
):
    with pytest.raises(SystemExit) as exc:
        run.main(["--results", str(tmp_path / "R.md"), option, str(tmp_path / path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"error: {option}" in err, err


def test_a_workdir_that_is_not_empty_is_a_usage_error_before_measuring(
    tmp_path, no_measuring, capsys
):
    # A run keeps what it generated in --workdir: the next run with the same folder ended in a
    # FileExistsError traceback (pngs/ exists) once measuring began.
    workdir = tmp_path / "work"
    (workdir / "pngs").mkdir(parents=True)
    (tmp_path / "file").write_text("")
    for folder, why in ((workdir, "not empty"), (tmp_path / "file", "not a folder")):
        with pytest.raises(SystemExit) as exc:
            run.main(["--results", str(tmp_path / "R.md"), "--workdir", str(folder)])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"error: --workdir {folder}: {why}" in err, err


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write in a read-only folder")
def test_a_read_only_folder_is_refused_before_measuring(tmp_path, no_measuring, capsys):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    with pytest.raises(SystemExit) as exc:
        run.main(["--results", str(folder / "RESULTS.md")])
    assert exc.value.code == 2 and "cannot write" in capsys.readouterr().err


def test_ctrl_c_is_one_line_and_exit_130_and_keeps_the_results(
    results_md, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(run, "build_context", lambda *_: SimpleNamespace(keras=None, variants={}))
    monkeypatch.setattr(run, "settings_of", lambda *_: {"mode": "test"})
    monkeypatch.setattr(run, "machine_description", lambda: {"CPU": "test"})

    def interrupted(ctx):
        raise KeyboardInterrupt

    # Section 4 runs first and is done when section 1 is interrupted.
    monkeypatch.setitem(sections.SECTIONS, 4, lambda ctx: report.Section(4, "done"))
    monkeypatch.setitem(sections.SECTIONS, 1, interrupted)
    argv = ["--sections", "1,4", "--results", str(results_md), "--json", str(tmp_path / "r.json")]
    try:
        code = run.main(argv)
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C ended in a KeyboardInterrupt traceback")
    assert code == 130
    assert capsys.readouterr().err == "interrupted\n"
    assert results_md.read_text() == "good results\n"  # no partial report over it
    assert not (tmp_path / "r.json").exists()


def test_an_interrupted_write_leaves_the_old_file(results_md, monkeypatch):
    results_md.chmod(0o644)

    def interrupted(*_):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(os, "replace", interrupted)
        with pytest.raises(KeyboardInterrupt):
            run.write_atomically(results_md, "new results\n")
    assert results_md.read_text() == "good results\n"
    assert [p.name for p in results_md.parent.iterdir()] == ["RESULTS.md"]  # no temp file left
    run.write_atomically(results_md, "new results\n")
    assert results_md.read_text() == "new results\n"
    assert results_md.stat().st_mode & 0o777 == 0o644


def test_help_says_how_to_rebuild_the_keras_model_of_results_md(capsys):
    command = (
        "python -m train from-tflite models/edgefer-fer2013-int8.tflite ../shared/data/fer2013 "
        "--out runs/edge-kd6r"
    )
    with pytest.raises(SystemExit):
        run.main(["--help"])
    help_text = " ".join(capsys.readouterr().out.replace("\\\n", " ").split())
    assert command in help_text and "--keras runs/edge-kd6r/model.keras" in help_text
    assert command in report.markdown_report({}, {}, [], "")
    committed = (BENCH / "RESULTS.md").read_text().split(report.NOTES_MARKER)[0]
    assert command in committed and "--keras runs/edge-kd6r/model.keras" in committed


def _context(tmp_path, model: Path, **sizes) -> sections.Context:
    """A context for one section, with a few real 48x48 PNGs and nothing converted."""
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(np.full((48, 48), 40 * i, np.uint8), "L").save(folder / f"{i}.png")
    spec = read_spec(model.read_bytes())
    ctx = sections.Context(
        shipped=model,
        spec=spec,
        sizes=sections.Sizes(**sizes),
        work=tmp_path,
        pool=sorted(folder.iterdir()),
        val_dir=tmp_path / "no-labels",
        calibration_dir=folder,
        cores=2,
        edgefer=["edgefer"],
        folder=folder,
    )
    ctx.val_dir.mkdir()
    ctx.folder_images = np.zeros((4, 48, 48, 1), np.uint8)
    return ctx


def test_the_measured_model_is_named_not_called_shipped(tmp_path):
    folder = shipped_models_dir()
    default = folder / SHIPPED_MODELS["default"]
    robust = _context(tmp_path, folder / SHIPPED_MODELS["robust"])
    assert list(robust.models) == ["int8 (robust)"]
    mine = tmp_path / "mine.tflite"
    mine.write_bytes(default.read_bytes())
    robust.shipped = mine
    assert list(robust.models) == ["int8 (mine.tflite)"]
    robust.shipped = default
    assert list(robust.models) == ["int8 (shipped)"]  # edgefer's default, as before


def _spread_columns(section) -> list[int]:
    return [i for i, c in enumerate(section.columns) if c == "spread"]


def test_spread_of_repeats_in_startup_and_memory(tmp_path, monkeypatch):
    ctx = _context(
        tmp_path, shipped_models_dir() / SHIPPED_MODELS["default"], memory=(2, 5), memory_distinct=2
    )

    def processes(commands, repeats, warmup=1):
        for command in commands.values():  # the memory section counts the big run's rows
            if "-o" in command:
                out = Path(command[command.index("-o") + 1])
                out.write_text("header\n" + "row\n" * 5)
        return {
            name: [harness.ProcessRun(s, 1024 * s, 0, "") for s in (0.9, 1.0, 1.1)]
            for name in commands
        }

    monkeypatch.setattr(sections, "interleave_processes", processes)
    monkeypatch.setattr(sections, "_imports_of", lambda command: (set(), []))
    startup = sections.startup(ctx)
    assert _spread_columns(startup) == [2]
    assert all(row[2] == "±10%" for row in startup.rows)
    memory = sections.memory(ctx)
    assert _spread_columns(memory) == [2, 4]
    assert all(row[2] == row[4] == "±10%" for row in memory.rows)


def test_spread_of_repeats_in_threads_and_shipped_models(tmp_path, monkeypatch):
    ctx = _context(tmp_path, shipped_models_dir() / SHIPPED_MODELS["default"], grid=4)

    class Classifier:
        def predict(self, pixels):
            return np.eye(7)[np.zeros(len(pixels), int)]

        def close(self):
            pass

    monkeypatch.setattr(sections.wl, "cli_classify", lambda *a: lambda: 1)
    monkeypatch.setattr(sections.wl, "bare_invoke", lambda *a: lambda: 1)
    monkeypatch.setattr(sections.wl, "classifier", lambda *a: Classifier())
    monkeypatch.setattr(
        sections,
        "interleave",
        lambda runs, repeats: {k: harness.Rates((90.0, 100.0, 110.0)) for k in runs},
    )
    grid = sections.threads_and_batches(ctx)
    assert _spread_columns(grid) == [4, 6]
    assert all(row[4] == row[6] == "±10%" for row in grid.rows)
    shipped = sections.shipped_models(ctx)
    assert _spread_columns(shipped) == [4, 7, 10]
    assert all(row[i] == "±10%" for row in shipped.rows for i in (4, 7, 10))


def test_a_single_repeat_has_no_spread():
    assert sections._spread_of([1.0]) == "-"
    assert sections._spread_of([9.0, 10.0, 11.0]) == "±10%"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "{empty}"], "--data {empty}: no images there"),
        (["--n", "0"], "--n 0: give 1 or more"),
        (["--repeats", "0"], "--repeats 0: give 1 or more"),
        (["--model", "{empty}/m.tflite"], "--model: model not found"),
    ],
)
def test_profile_pipeline_usage_errors_are_one_line(tmp_path, tiny_data, args, message):
    # Its default --data, in a checkout not beside shared/, ended in a numpy traceback ("need at
    # least one array to stack"), as did --n 0; a missing model in a ModelError traceback.
    empty = tmp_path / "empty"
    empty.mkdir()
    args = [a.format(empty=empty) for a in args]
    data = [] if "--data" in args else ["--data", str(tiny_data)]
    cmd = [sys.executable, str(BENCH / "profile_pipeline.py"), *data, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and message.format(empty=empty) in proc.stderr


@pytest.mark.slow
def test_quick_run_writes_every_section(tmp_path, tiny_data, tiny_keras, tiny_models):
    results, data = tmp_path / "RESULTS.md", tmp_path / "results.json"
    variants = [f"--variant={kind}={path}" for kind, path in tiny_models.items()]
    cmd = [
        sys.executable,
        str(BENCH / "run.py"),
        "--quick",
        f"--model={tiny_models['int8']}",
        f"--keras={tiny_keras}",
        *variants,
        f"--data={tiny_data}",
        f"--results={results}",
        f"--json={data}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    payload = json.loads(data.read_text())
    sections = {s["number"]: s for s in payload["sections"]}
    assert sorted(sections) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    for s in sections.values():
        assert s["skipped"] is None, s
        assert s["rows"] and all(len(row) == len(s["columns"]) for row in s["rows"]), s["title"]
        assert all(c["verdict"] in ("PASS", "MISS") for c in s["checks"])
    # Every target of the issue is checked; the model-independent ones are not about speed.
    assert len(sections[1]["checks"]) == 4  # int8 and float32, all cores and one core
    assert [len(sections[n]["checks"]) for n in (2, 3, 4, 6)] == [1, 1, 2, 1]
    tf_check = sections[4]["checks"][1]
    assert tf_check["verdict"] == "PASS" and tf_check["measured"] == "none"
    variants_shown = [row[0] for row in sections[7]["rows"]]
    assert variants_shown[:4] == ["float32", "float16", "dynamic", "int8"]
    assert any("Pi 4" in note for note in sections[8]["notes"])
    # Face detection: each detector on both photo sets (the synthetic "faces" are not faces).
    assert [row[0] for row in sections[9]["rows"]][:1] == ["blazeface"]
    assert any("photos/s" in note for note in sections[9]["notes"])
    # The shipped models by name, against the default; the tiny data has none of their labels.
    shipped = {row[0]: row for row in sections[10]["rows"]}
    assert list(shipped) == ["default", "robust"]
    assert shipped["default"][5] == "1.00×" and shipped["default"][-1] == "1.0000"
    # The spread between repeats, wherever there are repeats (section 9 times one pass).
    for n in (1, 2, 3, 4, 5, 6, 10):
        assert "spread" in sections[n]["columns"], sections[n]["title"]
    assert shipped["robust"][-2] == "-" and any("no accuracy" in n for n in sections[10]["notes"])
    text = results.read_text()
    for heading in ("## Targets", "## 1. ", "## 4. ", "## 8. ", report.NOTES_MARKER):
        assert heading in text
    assert "load average at start" in text and "CPU" in payload["machine"]
    assert "PASS" in proc.stdout or "MISS" in proc.stdout


def test_keras_and_variant_sections_without_labelled_data_measure_speed_only(
    tmp_path, monkeypatch, tiny_keras, tiny_models
):
    """--data with none of the model's labels: sections 2 and 7 give speed, no accuracy (they
    ended the whole run with a TypeError, before RESULTS.md was written)."""
    ctx = _context(tmp_path, tiny_models["int8"])
    assert ctx.val is None  # the context's --data has no label folders
    ctx.folder_images = np.zeros((4, *ctx.spec.input_size, ctx.spec.channels), np.uint8)
    ctx.keras = tiny_keras
    ctx.variants = {"none": tiny_models["none"], "int8": tiny_models["int8"]}
    monkeypatch.setattr(sections.wl, "cli_classify", lambda *a: lambda: 1)
    keras = sections.against_keras(ctx)
    assert len(keras.rows) == 4 and keras.checks
    assert any("no accuracy" in note for note in keras.notes)
    variants = sections.quantization_variants(ctx)
    accuracy = variants.columns.index("val accuracy")
    assert [row[0] for row in variants.rows] == ["float32", "int8", "Keras .keras (section 2)"]
    assert all(row[accuracy] == "-" for row in variants.rows)
    assert all(row[accuracy + 1] not in ("", "-") for row in variants.rows)  # agreement stays


def test_unreadable_images_in_data_are_left_out_with_a_warning(tmp_path, capsys):
    """A corrupt file (or a HEIC without its plugin) in --data ended the run in an ImageError
    traceback at start-up, before anything was measured."""
    from argparse import Namespace

    spec = read_spec((shipped_models_dir() / SHIPPED_MODELS["default"]).read_bytes())
    for label in spec.labels[:2]:
        folder = tmp_path / "data" / "val" / label
        folder.mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((48, 48), 60 * i, np.uint8), "L").save(folder / f"{i}.png")
        (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    args = Namespace(model=None, data=tmp_path / "data", quick=True, repeats=1, keras=None)
    args.variant = []
    (tmp_path / "work").mkdir()
    ctx = run.build_context(args, tmp_path / "work")
    assert len(ctx.pool) == 6 and not any(p.name == "broken.png" for p in ctx.pool)
    assert ctx.val is not None and len(ctx.val[1]) == 6
    assert ctx.folder_images.shape[0] == sections.QUICK.folder  # cycled over the 6 readable
    assert capsys.readouterr().err.count("warning: left out") == 2
    for broken in (tmp_path / "data" / "val").rglob("*.png"):
        if broken.name != "broken.png":
            broken.unlink()
    with pytest.raises(SystemExit, match="no readable images under"):
        run.build_context(args, tmp_path / "work2")


def test_quick_runs_write_beside_the_committed_results_not_over_them(tmp_path):
    # `run.py --quick`, the README's "a minute or so", replaced the committed RESULTS.md (the
    # full run's figures and notes) with its small version.
    assert run.parse_args(["--quick"]).results == run.HERE / "RESULTS-quick.md"
    assert run.parse_args([]).results == run.HERE / "RESULTS.md"
    given = tmp_path / "R.md"
    assert run.parse_args(["--quick", "--results", str(given)]).results == given
