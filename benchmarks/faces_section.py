"""Section 9: face detection on whole photos (issue #7): recall, false detections, per-face
accuracy and speed of each detector, on FER2013 faces pasted at known boxes.
"""

from __future__ import annotations

import time
from pathlib import Path

import composites
import numpy as np
from PIL import Image
from report import Section

from edgefer.classifier import Classifier, ClassifierOptions
from edgefer.faces import DETECTORS, FaceDetectorMissingError, crop_face, open_detector
from edgefer.photos import FaceOptions, classify_photos

#: (name, composite side range in px, --min-face) of the two photo sets.
SETS = (("48-240 px", (48, 240), 40), ("24-48 px", (24, 48), 24))


def _photos(val_dir: Path, per_label: int, sides, seed: int):
    faces = composites.load_faces(val_dir, per_label, skip=300)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(faces))
    return [
        composites.composite(
            rng,
            [faces[i] for i in order[s : s + 5]],
            sides=sides,
            max_angle=20,
            rotated_share=0.33,
        )
        for s in range(0, len(order), 5)
    ]


def face_detection(ctx) -> Section:
    sec = Section(
        9,
        "Face detection on whole photos (`--faces`): FER2013 val faces pasted into 960x720 "
        "backgrounds, 5 per photo, a third rotated up to 20°",
        [
            "detector",
            "faces",
            "set (--min-face)",
            "recall IoU≥0.5",
            "recall, rotated",
            "false / photo",
            "label accuracy, found faces",
            "same faces as crops",
            "ms / photo, 1 thread",
        ],
    )
    if ctx.val_dir is None or not any(p.is_dir() for p in ctx.val_dir.iterdir()):
        sec.skipped = "no labelled val folder"
        return sec
    per_label = 6 if ctx.sizes.per_label else 30
    classifier = Classifier(ClassifierOptions(model=ctx.shipped, batch_size=16))
    spec = classifier.spec
    for set_name, sides, min_face in SETS:
        photos = [p for p in _photos(ctx.val_dir, per_label, sides, seed=9) if p[1]]
        if not photos:
            sec.skipped = f"no images to paste from {ctx.val_dir}"
            break
        # The crops themselves, classified directly: what the labels would be with a perfect
        # detector (FER faces, upscaled and pasted, then re-cropped by the truth box).
        truth_crops = np.stack(
            [
                crop_face(im, _face_of(t), spec.input_size, spec.channels, 0.0, False)
                for im, truths in photos
                for t in truths
            ]
        )
        truth_labels = [t.label for _, truths in photos for t in truths]
        direct = classifier.predict(truth_crops).argmax(1)
        direct_acc = np.mean(
            [spec.labels[i] == lab for i, lab in zip(direct, truth_labels, strict=True)]
        )
        for name in DETECTORS:
            try:
                detector = open_detector(name, num_threads=1)
            except FaceDetectorMissingError as exc:
                sec.notes.append(f"{name}: not measured ({exc}).")
                continue
            hits = total = rot_hits = rot_total = false = correct = 0
            seconds = 0.0
            for im, truths in photos:
                t0 = time.perf_counter()
                found = detector.detect(im, min_face)
                seconds += time.perf_counter() - t0
                matched = composites.match([t.box for t in truths], [f.box() for f in found])
                hits += len(matched)
                total += len(truths)
                false += len(found) - len(matched)
                for i, t in enumerate(truths):
                    if abs(t.angle) > 5:
                        rot_total += 1
                        rot_hits += i in matched
                if matched:
                    crops = np.stack(
                        [
                            crop_face(im, found[j], spec.input_size, spec.channels)
                            for j in matched.values()
                        ]
                    )
                    pred = classifier.predict(crops).argmax(1)
                    correct += sum(
                        spec.labels[p] == truths[i].label
                        for p, i in zip(pred, matched.keys(), strict=True)
                    )
            detector.close()
            sec.rows.append(
                [
                    name,
                    str(total),
                    f"{set_name} ({min_face})",
                    f"{hits / total:.3f}",
                    f"{rot_hits / max(1, rot_total):.3f} of {rot_total}",
                    f"{false / len(photos):.2f}",
                    f"{correct / max(1, hits):.3f}",
                    f"{direct_acc:.3f}",
                    f"{1000 * seconds / len(photos):,.0f}",
                ]
            )
        if set_name == SETS[0][0]:
            sec.notes.append(_end_to_end(ctx, classifier, photos))
    classifier.close()
    sec.notes.append(
        "Ground truth: the pasted square. Boxes are reported in FER2013's framing (BlazeFace's "
        "tighter box is scaled by 1/0.88 and raised 0.10 of its height, measured on FER2013 "
        "train faces). 'same faces as crops': the classifier on the truth squares, the most a "
        "detector could give. Recall counts a face once; a found face with IoU < 0.5 is both "
        "a miss and a false detection. 'ms / photo' is one timed pass over the photos, not "
        "repeated (nor is the end-to-end run), so unlike the other sections it has no spread."
    )
    return sec


def _face_of(truth):
    from edgefer.faces import Face

    x, y, w, h = truth.box
    return Face(x, y, w, h, 1.0)


def _end_to_end(ctx, classifier, photos) -> str:
    """Whole photos through classify_photos (JPEG files, default workers), photos/s."""
    folder = ctx.work / "face-photos"
    folder.mkdir(exist_ok=True)
    paths = []
    for i, (im, _) in enumerate(photos):
        path = folder / f"photo-{i:03d}.jpg"
        im.save(path, quality=90)
        paths.append(str(path))
    t0 = time.perf_counter()
    n = sum(len(group) for group in classify_photos(classifier, paths, FaceOptions()))
    seconds = time.perf_counter() - t0
    with Image.open(paths[0]) as im:
        size = im.size
    return (
        f"End to end (`classify_photos`, blazeface, default workers, {size[0]}x{size[1]} JPEG): "
        f"{len(paths) / seconds:.1f} photos/s, {n} rows for {len(paths)} photos."
    )
