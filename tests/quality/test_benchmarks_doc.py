"""docs/benchmarks.md: every result section names its command, machine and date."""

from __future__ import annotations

import re

import pytest

from tests.support import ROOT

BENCHMARKS = ROOT / "docs" / "benchmarks.md"
ISO_DATE = re.compile(r"\b20\d\d-\d\d-\d\d\b")
# A command is a bench/ script, a `python -m` module or a `molecule`/`pytest` run, as written in the doc.
COMMAND = re.compile(r"bench/\w+\.py|python -m \w|molecule test|pytest ")


def sections() -> dict[str, str]:
    """Split the page into its level-2 sections, keyed by heading, each with its level-3 subsections."""
    parts = re.split(r"^## (.+)$", BENCHMARKS.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return {heading.strip(): body for heading, body in zip(parts[1::2], parts[2::2], strict=True)}


def test_benchmark_headings_unique():
    headings = re.findall(r"^#{2,3} (.+)$", BENCHMARKS.read_text(encoding="utf-8"), flags=re.MULTILINE)
    duplicates = sorted({heading for heading in headings if headings.count(heading) > 1})
    assert duplicates == []


@pytest.mark.parametrize("heading", list(sections()))
def test_benchmark_section_complete(heading):
    body = sections()[heading]
    assert body.strip(), f"section {heading!r} is empty"
    assert ISO_DATE.search(body), f"section {heading!r} gives no date as YYYY-MM-DD"
    assert "Machine" in body or "machine" in body, f"section {heading!r} does not describe the machine"
    assert COMMAND.search(body), f"section {heading!r} does not name the command that produced it"
