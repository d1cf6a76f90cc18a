"""Sections of results: a table, targets with PASS/MISS, notes; for a terminal or Markdown."""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.console import Console
from rich.table import Table

#: How to get the ``--keras`` model of the committed RESULTS.md (runs/ is not committed).
REBUILD_KERAS = (
    "Section 2, the float32 rows of sections 1, 5 and 8 and the variants of section 7 need "
    "`--keras`, the float Keras model of the shipped int8 model. It is not committed (runs/ is "
    "git-ignored); rebuild "
    "it from the checkout's root (train extra installed) with `python -m train from-tflite "
    "models/edgefer-fer2013-int8.tflite ../shared/data/fer2013 --out runs/edge-kd6r`, then run "
    "`python benchmarks/run.py --keras runs/edge-kd6r/model.keras`."
)

#: RESULTS.md keeps everything below this line across runs: the hand-written findings.
NOTES_MARKER = "<!-- everything below this line is kept when run.py rewrites the file -->"


@dataclass(frozen=True)
class Check:
    """One target: what was measured, its value as text, the target, and the verdict."""

    what: str
    measured: str
    target: str
    passed: bool

    @property
    def verdict(self) -> str:
        return "PASS" if self.passed else "MISS"


@dataclass
class Section:
    """One numbered part of the benchmark."""

    number: int
    title: str
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None

    def to_dict(self) -> dict:
        return {
            "number": self.number,
            "title": self.title,
            "columns": self.columns,
            "rows": self.rows,
            "checks": [
                {"what": c.what, "measured": c.measured, "target": c.target, "verdict": c.verdict}
                for c in self.checks
            ],
            "notes": self.notes,
            "skipped": self.skipped,
        }


def print_section(console: Console, section: Section) -> None:
    heading = f"{section.number}. {section.title}"
    if section.skipped:
        console.print(f"[bold]{heading}[/]: skipped ({section.skipped})", highlight=False)
        return
    table = Table(title=heading, title_justify="left", title_style="bold")
    for i, column in enumerate(section.columns):
        table.add_column(column, justify="left" if i == 0 else "right")
    for row in section.rows:
        table.add_row(*row)
    console.print(table)
    for check in section.checks:
        colour = "green" if check.passed else "red"
        console.print(
            f"  [{colour}]{check.verdict}[/] {check.what}: {check.measured} "
            f"(target {check.target})",
            highlight=False,
        )
    for note in section.notes:
        console.print(f"  [dim]{note}[/]", highlight=False, soft_wrap=True)
    console.print()


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown_section(section: Section) -> str:
    lines = [f"## {section.number}. {section.title}", ""]
    if section.skipped:
        return "\n".join([*lines, f"Skipped: {section.skipped}.", ""])
    lines.append("| " + " | ".join(map(_md_cell, section.columns)) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(section.columns) - 1)) + "|")
    lines += ["| " + " | ".join(map(_md_cell, row)) + " |" for row in section.rows]
    lines.append("")
    for check in section.checks:
        lines.append(
            f"- **{check.verdict}** {check.what}: {check.measured} (target {check.target})"
        )
    if section.checks:
        lines.append("")
    lines += [f"{note}\n" for note in section.notes]
    return "\n".join(lines)


def markdown_report(
    machine: dict[str, str], settings: dict[str, str], sections: list[Section], kept_notes: str
) -> str:
    """The whole RESULTS.md: machine, settings, a summary of targets, every section, notes."""
    lines = [
        "# edgefer benchmarks",
        "",
        "Written by `python benchmarks/run.py` (see benchmarks/README.md). images/s are medians "
        "over repeats; each × column is the median of per-repeat ratios between runs made back "
        "to back (so it can differ from the ratio of the two medians shown). Absolute images/s "
        "vary between runs on a shared machine, ratios much less.",
        "",
        REBUILD_KERAS,
        "",
        "| machine | |",
        "|---|---|",
        *[f"| {k} | {_md_cell(v)} |" for k, v in machine.items()],
        "",
        "| settings | |",
        "|---|---|",
        *[f"| {k} | {_md_cell(v)} |" for k, v in settings.items()],
        "",
        "## Targets",
        "",
        "| section | target | measured | verdict |",
        "|---|---|---:|---|",
    ]
    for section in sections:
        for c in section.checks:
            lines.append(
                f"| {section.number} | {_md_cell(c.what)}: {_md_cell(c.target)} | "
                f"{_md_cell(c.measured)} | **{c.verdict}** |"
            )
    lines.append("")
    lines += [markdown_section(s) for s in sections]
    lines += [NOTES_MARKER, kept_notes.strip("\n"), ""]
    return "\n".join(lines)


def kept_notes(existing: str | None) -> str:
    """The hand-written part of an existing RESULTS.md (below the marker), or ''."""
    if not existing or NOTES_MARKER not in existing:
        return ""
    return existing.split(NOTES_MARKER, 1)[1]
