"""Every citation of the design document points at a section that docs/design.md has.

Citations read ``docs/design.md §N`` (also ``design.md §N`` and the older ``DESIGN §N``), optionally
followed by a quoted part of that section: ``docs/design.md §2, "Training data"``. Section N must
be a numbered heading of docs/design.md (``## N. Title``); a quoted part must be a heading inside
section N.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DESIGN = ROOT / "docs" / "design.md"
SCANNED_SUFFIXES = (".py", ".md", ".yaml")
SKIPPED_DIRS = {".venv", "build", "install", "log", "out", "runs", ".git", "__pycache__"}

_CITATION = re.compile(r'(?:(?:docs/)?design\.md|DESIGN) §(\d+)(?:, "([^"]+)")?')
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*$")
_NUMBERED = re.compile(r"^(\d+)\.?\s")


@dataclass(frozen=True)
class Citation:
    path: str
    line: int
    section: int
    part: str | None
    old_form: bool = False  # "DESIGN §N": the design document outside the repository

    def __str__(self) -> str:
        part = f', "{self.part}"' if self.part else ""
        return f"{self.path}:{self.line}: §{self.section}{part}"


def design_sections(text: str) -> dict[int, list[str]]:
    """{section number: titles of the headings inside it} of the design document's markdown."""
    sections: dict[int, list[str]] = {}
    current, level = None, 0
    for line in text.splitlines():
        heading = _HEADING.match(line)
        if not heading:
            continue
        depth, title = len(heading.group(1)), heading.group(2)
        numbered = _NUMBERED.match(title)
        if numbered:
            current, level = int(numbered.group(1)), depth
            sections.setdefault(current, [])
        elif current is not None and depth > level:
            sections[current].append(title)
        else:
            current = None
    return sections


def citations(text: str, path: str) -> list[Citation]:
    """The design citations in ``text`` (a file at ``path``, for messages)."""
    return [
        Citation(
            path,
            text.count("\n", 0, m.start()) + 1,
            int(m.group(1)),
            m.group(2),
            m.group(0).startswith("DESIGN"),
        )
        for m in _CITATION.finditer(text)
    ]


def broken(cites: list[Citation], sections: dict[int, list[str]]) -> list[Citation]:
    """The citations whose section, or quoted part of it, has no heading."""
    return [
        c
        for c in cites
        if c.section not in sections or (c.part is not None and c.part not in sections[c.section])
    ]


def repository_citations(root: Path = ROOT) -> list[Citation]:
    """The citations in the repository's .py/.md/.yaml files (not this file's test strings)."""
    out: list[Citation] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        for name in sorted(files):
            path = Path(folder) / name
            if name.endswith(SCANNED_SUFFIXES) and path != Path(__file__).resolve():
                text = path.read_text(encoding="utf-8", errors="replace")
                out += citations(text, str(path.relative_to(root)))
    return out


def test_design_doc_is_in_the_repository():
    sections = design_sections(DESIGN.read_text(encoding="utf-8"))
    # The sections the code cites by number: the method (with its training data) and the protocol.
    assert {2, 4} <= set(sections), sorted(sections)
    assert "Training data" in sections[2]


def test_every_citation_has_its_section():
    sections = design_sections(DESIGN.read_text(encoding="utf-8"))
    cites = repository_citations()
    assert cites, "no design citations found: is the scan looking in the right place?"
    bad = broken(cites, sections)
    assert not bad, "citations of missing design sections:\n" + "\n".join(map(str, bad))
    old = [c for c in cites if c.old_form]
    assert not old, "cite docs/design.md, not the outside DESIGN:\n" + "\n".join(map(str, old))


def test_parser_catches_a_bad_citation():
    sections = design_sections("# Doc\n## 1. Job\n## 2. Method\n### Training data\n## 3. Frames\n")
    assert sections == {1: [], 2: ["Training data"], 3: []}
    text = (
        "see docs/design.md §2 and DESIGN §3,\n"
        'design.md §2, "Training data"; docs/design.md §9\n'
        'DESIGN §3, "Training data" and DESIGN §2, "Nothing"\n'
    )
    cites = citations(text, "x.py")
    assert [c.old_form for c in cites] == [False, True, False, False, True, True]
    assert [(c.line, c.section, c.part) for c in cites] == [
        (1, 2, None),
        (1, 3, None),
        (2, 2, "Training data"),
        (2, 9, None),
        (3, 3, "Training data"),
        (3, 2, "Nothing"),
    ]
    assert [str(c) for c in broken(cites, sections)] == [
        "x.py:2: §9",
        'x.py:3: §3, "Training data"',
        'x.py:3: §2, "Nothing"',
    ]
