"""Code cites docs/ files only, and every file and section it cites exists; README and docs cite nothing
outside the repository."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CODE = [
    path
    for folder in ("analysis", "solvers", "experiments", "figures", "tests")
    for path in (ROOT / folder).rglob("*.py")
]
CITATION = re.compile(r'docs/([a-z-]+\.md)(?:, "([^"]+)")?')


def headings(document: Path) -> set[str]:
    return {line.lstrip("#").strip() for line in document.read_text().splitlines() if line.startswith("#")}


def test_every_cited_document_and_section_exists():
    missing = []
    for path in CODE:
        for name, section in CITATION.findall(path.read_text()):
            section = " ".join(section.split())  # a citation may wrap across lines
            document = ROOT / "docs" / name
            if not document.exists():
                missing.append(f"{path.relative_to(ROOT)}: docs/{name}")
            elif section and section not in headings(document):
                missing.append(f'{path.relative_to(ROOT)}: docs/{name}, "{section}"')
    assert missing == []


def test_nothing_cites_files_outside_the_repository_or_issue_numbers():
    outside = re.compile(r"\.\./shared|SEEDS-MATH|issue #?\d", re.IGNORECASE)
    texts = CODE + [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]
    offenders = [
        str(path.relative_to(ROOT))
        for path in texts
        if path != Path(__file__) and outside.search(path.read_text())
    ]
    assert offenders == []
