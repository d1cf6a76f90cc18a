"""Running totals of a classification run and their Rich rendering."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from rich.console import Group
from rich.table import Table
from rich.text import Text

from edgefer.csvout import printable
from edgefer.photos import NO_FACE
from edgefer.pipeline import Result

#: How many failing paths to list per distinct error message.
EXAMPLES_PER_ERROR = 3
#: How many distinct error messages to list, the most frequent first; the rest are one row.
REASONS_SHOWN = 10


@dataclass
class Summary:
    """Counts only (no per-file state), so a run over 100,000 files stays small."""

    labels: tuple[str, ...]
    low_confidence: float = 0.5
    per_label: Counter = field(default_factory=Counter)
    confidence_sum: defaultdict = field(default_factory=lambda: defaultdict(float))
    n_low: int = 0
    errors: Counter = field(default_factory=Counter)
    error_examples: dict = field(default_factory=dict)
    skipped: int = 0
    #: How long the run took (None: not a run, e.g. ``edgefer summary`` of CSVs: no rate shown).
    seconds: float | None = None
    #: With face detection: rows are faces; images (read or not), and those without a face.
    faces: bool = False
    n_images: int = 0
    n_no_face: int = 0
    #: Subfolders that could not be listed (their files have no rows).
    unlisted: int = 0
    #: The model's file name, shown under the totals: two shipped models give the same labels.
    model: str | None = None

    def add(self, result: Result) -> None:
        if self.faces:
            if result.error == NO_FACE:
                self.n_images += 1
                self.n_no_face += 1
                return
            # An image's first face, or its one row: it could not be read (face None).
            self.n_images += result.face in (1, None)
        if result.error is not None:
            self.errors[result.error] += 1
            examples = self.error_examples.setdefault(result.error, [])
            if len(examples) < EXAMPLES_PER_ERROR:
                examples.append(result.path)
            return
        self.per_label[result.label] += 1
        self.confidence_sum[result.label] += result.confidence
        # As the CSV has it (6 decimals): `edgefer summary` of that CSV then counts the same.
        self.n_low += round(result.confidence, 6) < self.low_confidence

    @property
    def n_ok(self) -> int:
        return sum(self.per_label.values())

    @property
    def n_failed(self) -> int:
        return sum(self.errors.values())

    def mean_confidence(self, label: str) -> float | None:
        n = self.per_label[label]
        return self.confidence_sum[label] / n if n else None

    def render(self) -> Group:
        """A label table, an error table when there were failures, and a one-line total."""
        table = Table(title="edgefer: labels", title_justify="left")
        table.add_column("label")
        table.add_column("faces" if self.faces else "images", justify="right")
        table.add_column("share", justify="right")
        table.add_column("mean confidence", justify="right")
        for label in self.labels:
            n = self.per_label[label]
            mean = self.mean_confidence(label)
            share = f"{n / self.n_ok:.1%}" if self.n_ok else "-"
            table.add_row(
                Text(printable(label)), str(n), share, f"{mean:.3f}" if mean is not None else "-"
            )
        parts: list = [table]
        if self.errors:
            failed = Table(title="failures", title_justify="left")
            failed.add_column("reason")
            failed.add_column("files", justify="right")
            failed.add_column("e.g.", overflow="fold")  # a path cut with "…" names no file
            shown = self.errors.most_common(REASONS_SHOWN)
            for reason, n in shown:
                # Paths and messages are plain text: "[/x]" in a folder name is not markup.
                examples = ", ".join(self.error_examples[reason])
                failed.add_row(Text(printable(reason)), str(n), Text(printable(examples)))
            if len(self.errors) > len(shown):
                others = len(self.errors) - len(shown)
                rest = self.n_failed - sum(n for _, n in shown)
                failed.add_row(f"{others} other reason{'s' if others > 1 else ''}", str(rest), "")
            parts.append(failed)
        total = (
            f"{self.n_ok} classified, {self.n_failed} failed, "
            f"{self.n_low} below {_threshold(self.low_confidence)} confidence"
        )
        if self.faces:
            total = (
                f"{counted(self.n_images, 'image')}, {counted(self.n_ok, 'face')}, "
                f"{counted(self.n_no_face, 'image')} without a face, {self.n_failed} failed, "
                f"{counted(self.n_low, 'face')} below {_threshold(self.low_confidence)} confidence"
            )
        if self.skipped:
            total += f", {self.skipped} already in the CSV"
        if self.unlisted:
            total += f", {self.unlisted} folder{'s' if self.unlisted > 1 else ''} not listed"
        if self.seconds is not None:
            images = self.n_images if self.faces else self.n_ok
            rate = images / self.seconds if self.seconds > 0 else 0.0
            total += f"; {self.seconds:.2f} s, {rate:.1f} images/s"
        parts.append(total)
        if self.model:
            parts.append(Text(printable(f"model {self.model}")))
        return Group(*parts)


def counted(n: int, noun: str) -> str:
    """``n`` and ``noun``, in the plural unless ``n`` is 1: "1 image", "0 images", "2 files"."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _threshold(value: float) -> str:
    """``0.50`` as ever; a threshold with more decimals as given (0.999 was "1.00")."""
    text = f"{value:.2f}"
    return text if float(text) == value else f"{value:g}"
