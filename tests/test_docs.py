"""The README stays short and the docs stay connected: no engine, no model, a fraction of a second.

- README.md is under 10,000 characters and names the two set-up commands (`make demo`, `make test`;
  CI's .ci/run calls `make test`, so that is the command the README must give);
- every relative link in README.md and docs/*.md points to a file that exists, and a `#anchor` into a
  markdown file names one of its headings (GitHub's heading ids);
- docs/architecture.md names every module file of submission/, so a new module gets placed in the
  data-flow drawing and the module table.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
ARCHITECTURE = DOCS / "architecture.md"
README_LIMIT = 10_000

LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
INLINE_CODE = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)")
FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")


def markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def links(text: str) -> list[str]:
    """Link targets in prose (inline code spans removed first: a link there is not a link)."""
    return [m.group(1) for line in prose_lines(text) for m in LINK.finditer(INLINE_CODE.sub("", line))]


def anchors(text: str) -> set[str]:
    """GitHub's ids for a file's headings: lower case, punctuation dropped, spaces to hyphens, -1, -2 for repeats."""
    seen: dict[str, int] = {}
    ids = set()
    for line in prose_lines(text):
        m = HEADING.match(line)
        if not m:
            continue
        title = re.sub(r"<[^>]+>", "", m.group(2))
        title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", title)  # a link in a heading counts by its text
        slug = re.sub(r"[^\w\- ]", "", title.replace("`", "").lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        ids.add(slug if n == 0 else f"{slug}-{n}")
    return ids


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    problems = []
    text = path.read_text(encoding="utf-8")
    for target in links(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # http:, https:, mailto: ...
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            problems.append(f"{path.relative_to(root)}: {target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor.lower() not in anchors(linked.read_text(encoding="utf-8")):
            problems.append(f"{path.relative_to(root)}: {target}: no heading #{anchor} in {linked.name}")
    return problems


def test_the_readme_is_short_enough_to_take_in_at_once():
    text = README.read_text(encoding="utf-8")
    assert len(text) < README_LIMIT, (f"README.md has {len(text):,} characters (limit {README_LIMIT:,}): "
                                      "move details into docs/ and link them")


def test_the_readme_gives_the_demo_and_test_commands_ci_runs():
    text = README.read_text(encoding="utf-8")
    assert "make demo" in text
    assert "make test" in text
    ci = ROOT / ".ci" / "run"
    if ci.exists():  # the README's test command is the one CI runs
        assert re.search(r"^\s*make test\s*$", ci.read_text(encoding="utf-8"), re.MULTILINE)
        assert re.search(r"^make test\b", text, re.MULTILINE), "the README must show `make test` as a command line"


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_to_something_that_exists(path):
    assert broken_links(path) == []


def test_the_link_checker_sees_links_and_anchors(tmp_path):
    """The checker itself: a link in prose counts, one in code does not; anchors follow GitHub's ids."""
    (tmp_path / "b.md").write_text("# Which vLLM runs where, and why\n\n## The demo (`make demo`)\n", encoding="utf-8")
    page = tmp_path / "a.md"
    page.write_text("[ok](b.md#which-vllm-runs-where-and-why) [ok](b.md#the-demo-make-demo) "
                    "[web](https://example.com/x) `[code](missing.md)`\n```\n[fenced](missing.md)\n```\n"
                    "[gone](missing.md) [bad anchor](b.md#nowhere)\n", encoding="utf-8")
    assert broken_links(page, root=tmp_path) == ["a.md: missing.md: no such file",
                                                 "a.md: b.md#nowhere: no heading #nowhere in b.md"]


def test_the_architecture_page_places_every_module_of_submission():
    named = set(re.findall(r"[\w./-]+\.py", ARCHITECTURE.read_text(encoding="utf-8")))
    missing = [p.name for p in sorted((ROOT / "submission").glob("*.py"))
               if p.name not in named and f"submission/{p.name}" not in named]
    assert missing == [], f"docs/architecture.md does not name {missing}: place them in its drawing and table"
