"""The docs cannot go stale: the configuration reference is the generator's output, and every relative link in
README.md and docs/*.md points to a file (and heading) that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from benchmarks.config_reference import PAGE, render_reference

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^\s*(```|~~~)")
LINK = re.compile(r"!?\[([^\]]*)\]\(([^)\s]+)\)")
CODE_SPAN = re.compile(r"`+[^`]*`+")


def prose_lines(path: Path) -> list[tuple[int, str]]:
    """The lines of a Markdown file outside fenced code blocks, with their line numbers."""
    lines, in_fence = [], False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence:
            lines.append((number, line))
    return lines


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors of a Markdown file: lower case, punctuation dropped, spaces to hyphens, -1, -2 ...
    for repeats."""
    seen: dict[str, int] = {}
    for _, line in prose_lines(path):
        match = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        slug = re.sub(r"[^\w\- ]", "", match.group(1).lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        if count:
            seen[f"{slug}-{count}"] = 1
    return set(seen)


def relative_links(path: Path) -> list[tuple[int, str]]:
    """(line, target) of every link that is not a URL; code spans are not links."""
    found = []
    for number, line in prose_lines(path):
        for match in LINK.finditer(CODE_SPAN.sub("code", line)):
            target = match.group(2)
            if not re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: ...
                found.append((number, target))
    return found


def test_configuration_reference_is_generated_from_the_config():
    assert PAGE.read_text(encoding="utf-8") == render_reference(), (
        "docs/configuration.md is stale; write it again with `python -m benchmarks.config_reference --write`"
    )


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_to_an_existing_file_and_heading(path):
    broken = []
    for number, target in relative_links(path):
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"{path.name}:{number}: {target} (no such file)")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{path.name}:{number}: {target} (no heading #{anchor} in {linked.name})")
    assert not broken, "\n".join(broken)


def test_readme_links_to_every_docs_page():
    linked = {target.partition("#")[0] for _, target in relative_links(ROOT / "README.md")}
    missing = [p.name for p in DOCS[1:] if f"docs/{p.name}" not in linked]
    assert not missing, f"README.md does not link to {missing}"


def test_anchors_and_links_are_read_as_github_renders_them(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "# Iterating: cross-validation, learning curves\n## The `Trainer` peer\n## Notes\n## Notes\n"
        "```bash\n# a comment, not a heading [x](missing.md)\n```\n"
        "See [here](other.md#top), `[Paris](city)` and [site](https://example.org).\n",
        encoding="utf-8",
    )
    assert anchors(page) == {"iterating-cross-validation-learning-curves", "the-trainer-peer", "notes", "notes-1"}
    assert relative_links(page) == [(8, "other.md#top")]
