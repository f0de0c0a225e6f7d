"""Finding spec files in a checkout by glob, the way CI discovery and `qgjob specs` do.

Globs follow minimatch (what AppWright/Playwright users write): `**` as a whole segment
matches any number of directories including none, `*` and `?` stay within a segment,
`{ts,js}` alternatives expand first (nested too). Matches are files, relative to the root,
with `/` separators, sorted and without duplicates; anything under `node_modules/` or a
dot-directory (`.git/`) is left out.
"""

from __future__ import annotations

from pathlib import Path

SKIPPED_DIRS = frozenset({"node_modules"})


def expand_braces(pattern: str) -> list[str]:
    """`a.{ts,js}` → [`a.ts`, `a.js`]; a brace without a top-level comma stays literal."""
    depth, start = 0, -1
    for index, char in enumerate(pattern):
        if char == "{":
            if depth == 0:
                start = index
            depth += 1
        elif char == "}" and depth:
            depth -= 1
            if depth == 0:
                options = _split_top_level(pattern[start + 1 : index])
                if len(options) > 1:
                    head, tail = pattern[:start], pattern[index + 1 :]
                    return [
                        expanded
                        for option in options
                        for expanded in expand_braces(head + option + tail)
                    ]
    return [pattern]


def _split_top_level(body: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in body:
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        depth += (char == "{") - (char == "}")
        current.append(char)
    parts.append("".join(current))
    return parts


def find_specs(root: Path, pattern: str) -> list[str]:
    """Files under `root` matching `pattern`, as sorted POSIX paths relative to `root`."""
    pattern = pattern.strip()
    if not pattern:
        raise ValueError("the glob is empty")
    found: set[str] = set()
    for alternative in expand_braces(pattern):
        if alternative.startswith("/") or ".." in Path(alternative).parts:
            raise ValueError(f"the glob must stay inside the directory (got {alternative!r})")
        for path in root.glob(alternative.removeprefix("./")):
            relative = path.relative_to(root)
            if path.is_file() and not _skipped(relative):
                found.add(relative.as_posix())
    return sorted(found)


def _skipped(relative: Path) -> bool:
    return any(part in SKIPPED_DIRS or part.startswith(".") for part in relative.parts[:-1])
