"""`--faces`: whole photos with several faces, pasted at known boxes into face-free backgrounds.

The always-run tests use the two frontal faces in samples/ (public domain); the recall and
per-face accuracy test uses FER2013 val faces and is skipped where that dataset is absent.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import composites  # noqa: E402

from edgefer.faces import (  # noqa: E402
    BlazeFace,
    FaceDetectorMissingError,
    HaarCascade,
    annotate,
    annotated_name,
    load_photo,
    open_detector,
)
from edgefer.photos import NO_FACE, FaceOptions, classify_photos  # noqa: E402

FER_VAL = ROOT.parent / "shared" / "data" / "fer2013" / "val"


@pytest.fixture(scope="module")
def frontal() -> list[tuple[Image.Image, str]]:
    """The README's two frontal sample faces, labelled by name."""
    return [
        (Image.open(ROOT / "samples" / f"{name}.jpg").convert("RGB"), name)
        for name in ("collins", "hopper")
    ]


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edgefer", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def box_of(row: dict[str, str]) -> tuple[int, int, int, int]:
    return tuple(int(row[k]) for k in ("x", "y", "w", "h"))


def place(frontal, size, boxes, angles=None, mode="RGB", seed=0) -> Image.Image:
    """A background of ``size`` with the frontal faces pasted at ``boxes`` (x, y, side)."""
    rng = np.random.default_rng(seed)
    im = composites.background(rng, size)
    for (face, _), (x, y, side), angle in zip(
        frontal, boxes, angles or [0] * len(boxes), strict=False
    ):
        patch = face.resize((side, side), Image.Resampling.BICUBIC)
        if angle:
            mask = Image.new("L", patch.size, 255).rotate(angle, expand=True)
            patch = patch.rotate(angle, Image.Resampling.BILINEAR, expand=True)
            im.paste(
                patch, (x + side // 2 - patch.width // 2, y + side // 2 - patch.height // 2), mask
            )
        else:
            im.paste(patch, (x, y))
    return im.convert(mode)


def test_every_face_gets_a_row_at_its_box(tmp_path, frontal):
    photo = tmp_path / "group.jpg"
    truth = [(80, 120, 150), (520, 260, 110)]
    place(frontal, (800, 600), truth, angles=[0, 15]).save(photo, quality=92)
    empty = tmp_path / "wall.png"
    composites.background(np.random.default_rng(7), (640, 480)).save(empty)
    out = tmp_path / "faces.csv"
    r = run_cli("classify", tmp_path, "--faces", "-o", out)
    assert r.returncode == 0, r.stderr  # an image without a face is read fine: exit 0
    rows = read_rows(out)
    assert list(rows[0])[:7] == ["path", "face", "x", "y", "w", "h", "det_score"]
    faces = [row for row in rows if row["path"] == str(photo)]
    assert [row["face"] for row in faces] == ["1", "2"]
    matched = composites.match([(x, y, s, s) for x, y, s in truth], [box_of(r) for r in faces])
    assert len(matched) == 2, faces
    for row in faces:
        assert row["error"] == "" and row["label"] and 0.6 <= float(row["det_score"]) <= 1
        probs = [float(row[k]) for k in list(row)[9:-1]]
        assert abs(sum(probs) - 1) < 0.02 and max(probs) == float(row["confidence"])
    (wall,) = [row for row in rows if row["path"] == str(empty)]
    assert wall["error"] == NO_FACE and wall["face"] == "" and wall["label"] == ""
    assert "2 images, 2 faces, 1 image without a face" in " ".join(r.stdout.split())


def test_huge_photo_boxes_are_in_full_size_pixels(tmp_path, frontal):
    # 24 MP: decoded reduced for detection, yet boxes come back in the file's own pixels.
    photo = tmp_path / "big.jpg"
    truth = [(900, 700, 900), (4200, 2000, 500)]
    place(frontal, (6000, 4000), truth).save(photo, quality=85)
    out = tmp_path / "big.csv"
    r = run_cli("classify", photo, "--faces", "-o", out)
    assert r.returncode == 0, r.stderr
    boxes = [box_of(row) for row in read_rows(out)]
    assert len(composites.match([(x, y, s, s) for x, y, s in truth], boxes)) == 2, boxes


def test_exif_rotated_photo_boxes_are_upright_pixels(tmp_path, frontal):
    # Stored sideways with EXIF orientation 6 (rotate 90° clockwise to view).
    upright = place(frontal, (600, 800), [(150, 200, 220)])
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # what a sideways camera writes
    exif = Image.Exif()
    exif[0x0112] = 6
    photo = tmp_path / "sideways.jpg"
    stored.save(photo, exif=exif, quality=92)
    out = tmp_path / "exif.csv"
    assert run_cli("classify", photo, "--faces", "-o", out).returncode == 0
    (row,) = read_rows(out)
    assert composites.match([(150, 200, 220, 220)], [box_of(row)]), row


@pytest.mark.parametrize("kind", ["JPEG", "MPO"])
def test_a_phone_photo_is_decoded_reduced(tmp_path, monkeypatch, kind):
    # A 4000x3000 JPEG was decoded at full size (a 1600 px square was asked of the reduced
    # decode, which its 1500 px short side at half size did not meet): ~120 MB per photo.
    # MPO: a JPEG followed by an MPF block (an Android Ultra HDR photo's gain map) opens as
    # Pillow's "MPO" and was decoded at full size: 0.30 s and 193 MB for a 12 MP photo against
    # 0.10 s and 113 MB for the same photo without the block.
    from PIL import JpegImagePlugin

    sizes = []
    draft = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size, *args):
        result = draft(self, mode, size, *args)
        sizes.append(self.size)
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    photo = Image.new("RGB", (4000, 3000), "grey")
    if kind == "MPO":
        gain_map = Image.new("RGB", (1000, 750), "white")
        photo.save(tmp_path / "p.jpg", format="MPO", save_all=True, append_images=[gain_map])
    else:
        photo.save(tmp_path / "p.jpg")
    assert Image.open(tmp_path / "p.jpg").format == kind
    image, factor, full = load_photo(str(tmp_path / "p.jpg"))
    assert sizes == [(2000, 1500)] and image.size == (1600, 1200)
    assert factor == 2.5 and full == (4000, 3000)


def test_the_full_size_of_a_nearly_square_photo_is_not_swapped(tmp_path):
    # Its working copy rounds to a square, which read as an EXIF quarter turn: (3200, 3201),
    # and boxes at its edge reached a pixel past the image.
    Image.new("RGB", (3201, 3200), "grey").save(tmp_path / "p.png")
    assert load_photo(str(tmp_path / "p.png"))[2] == (3201, 3200)
    stored = Image.new("RGB", (3200, 3201), "grey")
    exif = Image.Exif()
    exif[0x0112] = 6  # turned a quarter to view: 3201 wide
    stored.save(tmp_path / "t.jpg", exif=exif)
    assert load_photo(str(tmp_path / "t.jpg"))[2] == (3201, 3200)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P"])
def test_grey_rgba_and_palette_photos(tmp_path, frontal, mode):
    photo = tmp_path / f"photo-{mode}.png"
    place(frontal, (700, 500), [(60, 60, 160), (400, 200, 140)], mode=mode).save(photo)
    out = tmp_path / "modes.csv"
    assert run_cli("classify", photo, "--faces", "-o", out).returncode == 0
    assert [row["face"] for row in read_rows(out)] == ["1", "2"]


def test_min_face_and_max_faces(tmp_path, frontal):
    photo = tmp_path / "two.jpg"
    place(frontal, (900, 700), [(60, 80, 260), (600, 400, 70)]).save(photo, quality=92)
    out = tmp_path / "all.csv"
    assert run_cli("classify", photo, "--faces", "-o", out).returncode == 0
    assert len(read_rows(out)) == 2  # the 70 px face is found too
    out = tmp_path / "big-only.csv"
    assert run_cli("classify", photo, "--faces", "--min-face", "120", "-o", out).returncode == 0
    (row,) = read_rows(out)
    assert composites.match([(60, 80, 260, 260)], [box_of(row)])
    out = tmp_path / "one.csv"
    assert run_cli("classify", photo, "--faces", "--max-faces", "1", "-o", out).returncode == 0
    (row,) = read_rows(out)
    assert row["face"] == "1"
    out = tmp_path / "none.csv"
    assert run_cli("classify", photo, "--faces", "--min-face", "400", "-o", out).returncode == 0
    assert [row["error"] for row in read_rows(out)] == [NO_FACE]


def test_face_options_need_faces_and_csv_modes_do_not_mix(tmp_path, frontal):
    photo = tmp_path / "p.jpg"
    place(frontal, (400, 300), [(50, 50, 120)]).save(photo)
    r = run_cli("classify", photo, "--min-face", "40", "-o", tmp_path / "x.csv")
    assert r.returncode == 2 and "--min-face applies only with --faces" in r.stderr
    r = run_cli("classify", photo, "--faces", "--detector", "yolo", "-o", tmp_path / "x.csv")
    assert r.returncode == 2 and "unknown detector" in r.stderr
    plain = tmp_path / "plain.csv"
    assert run_cli("classify", photo, "-o", plain).returncode == 0
    r = run_cli("classify", photo, "--faces", "--append", "-o", plain)
    assert r.returncode == 2 and "without face detection" in r.stderr
    assert len(read_rows(plain)) == 1


def test_annotate_writes_checkable_copies(tmp_path, frontal):
    (tmp_path / "in").mkdir()
    photo = tmp_path / "in" / "group.png"
    place(frontal, (640, 480), [(40, 40, 160), (380, 200, 150)]).save(photo)
    (tmp_path / "in" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    ann = tmp_path / "annotated"
    r = run_cli("classify", tmp_path / "in", "--faces", "--annotate", ann, "-o", tmp_path / "a.csv")
    assert r.returncode == 1  # the broken file fails; the others are annotated all the same
    (copy,) = ann.iterdir()
    assert copy.suffix == ".jpg" and "group" in copy.name
    drawn = np.asarray(Image.open(copy).convert("RGB"), dtype=int)
    plain = np.asarray(Image.open(photo).convert("RGB"), dtype=int)
    assert drawn.shape == plain.shape
    # The box outline is drawn in yellow where the face's box edge runs.
    rows = read_rows(tmp_path / "a.csv")
    assert [r["error"] for r in rows if r["face"] == ""] == ["not an image or unsupported format"]
    x, y, w, h = box_of(next(r for r in rows if r["face"] == "1"))
    edge = drawn[y + h // 2, max(0, x - 1) : x + 3]
    assert ((edge[:, 0] > 200) & (edge[:, 1] > 180) & (edge[:, 2] < 90)).any()


def test_annotated_copies_are_not_inputs_and_a_refused_run_leaves_no_folder(tmp_path, frontal):
    # An --annotate folder inside the input folder (-r) had its copies classified, annotated
    # and copied again on each next run; one that is the input folder is refused. A run that
    # failed at its output still created the --annotate folder.
    inbox = tmp_path / "in"
    inbox.mkdir()
    place(frontal, (640, 480), [(40, 40, 160)]).save(inbox / "group.png")
    ann, out = inbox / "ann", tmp_path / "a.csv"
    for _ in range(2):
        r = run_cli("classify", inbox, "-r", "--faces", "--annotate", ann, "-o", out)
        assert r.returncode == 0, r.stderr
    assert {row["path"] for row in read_rows(out)} == {str(inbox / "group.png")}
    assert len(list(ann.iterdir())) == 1
    r = run_cli("classify", inbox, "--faces", "--annotate", inbox, "-o", out)
    assert r.returncode == 2 and "is a folder to classify" in r.stderr
    os.symlink(inbox, tmp_path / "link")  # the input folder by another name
    r = run_cli("classify", inbox, "--faces", "--annotate", tmp_path / "link", "-o", out)
    assert r.returncode == 2 and "is a folder to classify" in r.stderr
    os.symlink(tmp_path / "nowhere", tmp_path / "broken")  # each copy failed, exit 0
    r = run_cli("classify", inbox, "--faces", "--annotate", tmp_path / "broken", "-o", out)
    assert r.returncode == 2 and "is not a folder" in r.stderr
    gone = tmp_path / "new" / "ann"
    r = run_cli("classify", inbox, "--faces", "--annotate", gone, "-o", tmp_path / "no/x.csv")
    assert r.returncode == 2 and "output directory does not exist" in r.stderr
    assert not (tmp_path / "new").exists()


def test_haar_detector_or_its_install_hint(tmp_path, frontal, monkeypatch):
    photo = tmp_path / "p.jpg"
    place(frontal, (640, 480), [(60, 60, 200), (380, 200, 160)]).save(photo, quality=92)
    try:
        import cv2  # noqa: F401
    except ImportError:
        cv2 = None
    if cv2 is not None:
        out = tmp_path / "haar.csv"
        r = run_cli("classify", photo, "--faces", "--detector", "haar", "-o", out)
        assert r.returncode == 0, r.stderr
        truth = [(60, 60, 200, 200), (380, 200, 160, 160)]
        assert len(composites.match(truth, [box_of(row) for row in read_rows(out)])) == 2
    monkeypatch.setitem(sys.modules, "cv2", None)  # as if opencv were not installed
    with pytest.raises(FaceDetectorMissingError, match=r"edgefer\[faces\]"):
        open_detector("haar")


def test_each_searched_photo_is_reported_as_it_is_done(tmp_path, frontal):
    # What keeps `watch --faces` alive for systemd's watchdog while a group of large photos is
    # searched (results come out only per group of up to eight).
    from edgefer.classifier import Classifier, ClassifierOptions

    paths = []
    for i, boxes in enumerate(([(40, 40, 160)], [], [(300, 100, 150)])):
        place(frontal, (640, 480), boxes).save(tmp_path / f"{i}.png")
        paths.append(str(tmp_path / f"{i}.png"))
    paths.append(str(tmp_path / "missing.png"))
    done = []
    with Classifier(ClassifierOptions()) as classifier:
        groups = classify_photos(classifier, paths, on_decoded=lambda: done.append(1))
        first = next(groups)
        assert len(done) == 4  # all four searched before the group's first result
        assert [first, *groups][0][0].face == 1


def test_a_photo_being_searched_reports_each_view(tmp_path, frontal):
    # on_decoded came only once a photo was searched: a 12 MP photo is 2,450 views at the
    # default --min-face (3.9 s on one x86 core), longer than WatchdogSec=30 on a small Pi, and
    # systemd killed and restarted `watch --faces` on the same photo again and again.
    from edgefer.classifier import Classifier, ClassifierOptions

    place(frontal, (1600, 1200), [(200, 200, 300)]).save(tmp_path / "big.png")
    views, found = [], []
    detector = BlazeFace(num_threads=1, on_view=lambda: views.append(1))
    try:
        tiles = len(detector._tiles(1600, 1200, 24))
        assert len(detector.detect(Image.open(tmp_path / "big.png").convert("RGB"), 24)) == 1
    finally:
        detector.close()
    assert len(views) == tiles > 900
    with Classifier(ClassifierOptions()) as classifier:
        options = FaceOptions(min_face=24)
        groups = classify_photos(
            classifier,
            [str(tmp_path / "big.png")],
            options,
            on_decoded=lambda: found.append(len(views)),
            on_progress=lambda: views.append(1),
        )
        assert next(groups)[0].face == 1
    assert found == [2 * tiles] and len(views) == 2 * tiles  # every view, before the photo's end


def test_recall_and_accuracy_on_pasted_fer2013_faces():
    """Detection recall at IoU >= 0.5 and per-face label accuracy, on FER2013 val faces pasted
    at 48-240 px (a third rotated up to 20 degrees) into 960x720 backgrounds."""
    if not FER_VAL.is_dir():
        pytest.skip(f"FER2013 not found at {FER_VAL}")
    from edgefer.classifier import Classifier, ClassifierOptions

    faces = composites.load_faces(FER_VAL, 8, skip=200)
    rng = np.random.default_rng(11)
    order = rng.permutation(len(faces))
    hits = total = correct = 0
    with Classifier(ClassifierOptions(batch_size=8)) as classifier:
        folder = Path(os.environ.get("TMPDIR", "/tmp"))
        for start in range(0, len(order), 5):
            group = [faces[i] for i in order[start : start + 5]]
            image, truth = composites.composite(
                rng, group, sides=(48, 240), max_angle=20, rotated_share=0.33
            )
            path = folder / f"edgefer-fer-composite-{os.getpid()}-{start}.png"
            image.save(path)
            try:
                (results,) = classify_photos(classifier, [str(path)], FaceOptions())
            finally:
                path.unlink()
            boxes = [r.box for r in results if r.box is not None]
            matched = composites.match([t.box for t in truth], boxes)
            hits += len(matched)
            total += len(truth)
            correct += sum(truth[t].label == results[b].label for t, b in matched.items())
    recall, accuracy = hits / total, correct / max(1, hits)
    print(f"recall {recall:.3f} ({hits}/{total}), per-face accuracy {accuracy:.3f}")
    assert recall >= 0.8  # measured 0.92 on faces >= 48 px (benchmarks/RESULTS.md)
    assert accuracy >= 0.5  # 7 classes: chance is 0.14; the model scores 0.68 on the crops


def test_watch_faces_one_row_per_face_exactly_once(tmp_path, int8_model, frontal):
    from test_watch_daemon import Daemon, wait_for

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    out = tmp_path / "faces.csv"
    with Daemon(tmp_path, int8_model, inbox, out, "--faces").start() as daemon:
        daemon.wait_ready()
        place(frontal, (640, 480), [(40, 40, 160), (380, 200, 150)]).save(inbox / "two.png")
        composites.background(np.random.default_rng(3), (320, 240)).save(inbox / "none.png")
        wait_for(lambda: out.exists() and len(read_rows(out)) == 3, 60, "3 rows", daemon)
        daemon.stop(signal.SIGKILL)
        daemon.start().wait_ready()  # the restart must not classify anything again
        place(frontal, (500, 400), [(100, 100, 200)]).save(inbox / "one.png")
        wait_for(lambda: len(read_rows(out)) == 4, 60, "4 rows", daemon)
        assert daemon.stop() == 0
    raw = out.read_text()
    header = raw.splitlines()[0].split(",")
    assert header[:9] == ["path", "face", "x", "y", "w", "h", "det_score", "label", "confidence"]
    state = out.with_name(out.name + ".state").read_text().splitlines()
    assert int(state[-1].strip("[").split(",")[0]) == len(raw.encode())
    rows = read_rows(out)
    assert all(len(r) == len(header) and None not in r for r in rows)
    assert sorted((Path(r["path"]).name, r["face"]) for r in rows) == [
        ("none.png", ""),
        ("one.png", "1"),
        ("two.png", "1"),
        ("two.png", "2"),
    ]
    assert [r["error"] for r in rows if r["face"] == ""] == [NO_FACE]


def test_tiny_faces_are_reported_only_above_min_face(tmp_path, frontal):
    photo = tmp_path / "tiny.jpg"
    truth = [(100, 100, 28), (500, 300, 30)]
    place(frontal, (800, 600), truth).save(photo, quality=95)
    out = tmp_path / "default.csv"
    assert run_cli("classify", photo, "--faces", "-o", out).returncode == 0
    assert [row["error"] for row in read_rows(out)] == [NO_FACE]  # below the default 40 px
    out = tmp_path / "small.csv"
    assert run_cli("classify", photo, "--faces", "--min-face", "16", "-o", out).returncode == 0
    boxes = [box_of(row) for row in read_rows(out)]
    assert len(composites.match([(x, y, s, s) for x, y, s in truth], boxes)) == 2, boxes


def test_annotated_names_are_unique_per_path_and_fit_a_file_name():
    # p.jpg and p.png, and a/b__c.jpg and a/b/c.jpg, used to share a name (one copy overwrote
    # the other), and deep paths made names over 255 bytes.
    paths = ["an/sub/p.jpg", "an/sub/p.png", "an/sub__p.jpg", "/an/sub/p.jpg"]
    names = [annotated_name(p) for p in paths]
    assert len(set(names)) == len(paths) and all(n.endswith(".jpg") for n in names)
    assert names[0].startswith("an__sub__p.jpg.")
    deep = annotated_name("/x/" + "d" * 200 + "/" + "é" * 200 + "/p.jpg")
    assert len(deep.encode()) <= 255
    # A path from a hidden folder gave a hidden copy, which `ls` does not show.
    assert annotated_name(".snap/p.jpg").startswith("snap__p.jpg.")
    assert annotated_name(".jpg").startswith("jpg.")


def test_boxes_stay_inside_the_photo_and_min_face_is_exact(tmp_path, frontal):
    # A face in the corner of a 5000x3333 photo got y+h = 3334 (clipped to the rounded working
    # size times the factor, not the photo's size); --min-face 76 reported a 75 px face.
    photo = tmp_path / "corner.png"
    place(frontal, (5000, 3333), [(4300, 2633, 700)]).save(photo)
    out = tmp_path / "c.csv"
    assert run_cli("classify", photo, "--faces", "-o", out, "-t", "1").returncode == 0
    (row,) = read_rows(out)
    x, y, w, h = box_of(row)
    assert x + w <= 5000 and y + h <= 3333 and w > 400
    sizes = tmp_path / "sizes.jpg"
    place(frontal, (900, 500), [(60, 120, 70), (500, 120, 90)]).save(sizes, quality=92)
    for min_face in (60, 80, 100):
        out = tmp_path / f"m{min_face}.csv"
        r = run_cli("classify", sizes, "--faces", "--min-face", min_face, "-o", out, "-t", "1")
        assert r.returncode == 0, r.stderr
        widths = [box_of(row)[2] for row in read_rows(out) if row["face"]]
        assert all(w >= min_face for w in widths), (min_face, widths)


def test_annotate_copies_photos_without_faces_and_fits_captions(tmp_path, frontal):
    # Photos without a face got no copy, and on panoramas the captions ran off the image.
    (tmp_path / "in").mkdir()
    place(frontal, (640, 480), []).save(tmp_path / "in" / "empty.png")
    ann = tmp_path / "ann"
    r = run_cli("classify", tmp_path / "in", "--faces", "--annotate", ann, "-o", tmp_path / "a.csv")
    assert r.returncode == 0, r.stderr
    assert [p.name.split(".")[0].endswith("empty") for p in ann.iterdir()] == [True]
    for size, box in (((8000, 300), (3000, 20, 260, 260)), ((300, 8000), (20, 3000, 260, 260))):
        Image.new("RGB", size, "white").save(tmp_path / "pano.png")
        annotate(str(tmp_path / "pano.png"), [(box, "1: happy 0.93")], tmp_path / "out.jpg")
        copy = np.asarray(Image.open(tmp_path / "out.jpg").convert("L"))
        rows, cols = np.nonzero(copy < 80)  # the caption's text: nothing else is dark
        assert len(rows) > 30, size
        assert rows.min() > 0 and cols.min() > 0, size  # not cut by an edge
        assert rows.max() < copy.shape[0] - 1 and cols.max() < copy.shape[1] - 1, size


def test_annotate_stops_with_one_warning_when_the_folder_takes_no_copies(
    tmp_path, frontal, monkeypatch
):
    # A full or read-only disk (or root writing to /proc, past the os.access check) gave one
    # warning per image, with Python's "[Errno 28] ...: 'path'" text.
    import errno

    from typer.testing import CliRunner

    import edgefer.faces
    from edgefer.cli import app

    inbox = tmp_path / "in"
    inbox.mkdir()
    for i in range(3):
        place(frontal, (640, 480), [(40, 40, 160)]).save(inbox / f"p{i}.png")
    calls = []

    def full(*args, **kwargs):
        calls.append(args)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(args[2]))

    monkeypatch.setattr(edgefer.faces, "annotate", full)
    out = tmp_path / "a.csv"
    argv = ["classify", str(inbox), "--faces", "--annotate", str(tmp_path / "ann"), "-o", str(out)]
    r = CliRunner().invoke(app, argv)
    assert r.exit_code == 0, r.output
    assert len(calls) == 1 and len(read_rows(out)) == 3
    assert r.output.count("warning:") == 1
    assert "No space left on device; no more copies" in " ".join(r.output.split())


def test_an_annotated_copy_that_cannot_be_written_leaves_no_temp_file(tmp_path, monkeypatch):
    # A full disk cut the JPEG short: its hidden temp file stayed in the --annotate folder,
    # holding space on the disk that had run out of it.
    import errno

    photo = tmp_path / "p.png"
    Image.new("RGB", (64, 48), (90, 90, 90)).save(photo)
    (tmp_path / "ann").mkdir()

    def save(image, fp, *args, **kwargs):
        Path(fp).write_bytes(b"\xff\xd8\xff half a JPEG")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Image.Image, "save", save)
    with pytest.raises(OSError, match="No space left"):
        annotate(str(photo), [], tmp_path / "ann" / "p.jpg")
    assert list((tmp_path / "ann").iterdir()) == []


@pytest.mark.parametrize(
    ("make", "message"),
    [
        # A threshold above 1 found no face, ever; an overlap of 1 stepped tiles one pixel.
        (lambda: BlazeFace(score_threshold=1.5), r"^score_threshold must be 0\.\.1, got 1\.5$"),
        (lambda: BlazeFace(tile_overlap=1.0), r"^tile_overlap must be at least 0 and below 1"),
        # OpenCV refused it only at the first photo, with a cv2.error of its assertion.
        (lambda: HaarCascade(scale_factor=1.0), r"^scale_factor must be above 1, got 1\.0$"),
        (lambda: HaarCascade(min_neighbors=-1), r"^min_neighbors must be >= 0, got -1$"),
    ],
    ids=["score_threshold", "tile_overlap", "scale_factor", "min_neighbors"],
)
def test_detector_settings_out_of_range_are_refused_when_made(make, message):
    with pytest.raises(ValueError, match=message):
        make()
