"""Path globs with gitignore/minimatch semantics, compiled to regular expressions (pure).

- `*` matches within one path segment, `?` one character, `[abc]` / `[!abc]` a class;
- `**` as a whole segment matches zero or more segments: `tests/**/*.spec.ts` matches
  `tests/a.spec.ts` and `tests/x/y/a.spec.ts`; a trailing `tests/**` matches all below `tests/`;
- `{ts,js}` alternatives are expanded first, as minimatch does;
- matching is case-sensitive and includes dot-files (as in .gitignore).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

_GLOBSTAR = "**"


def expand_braces(pattern: str) -> tuple[str, ...]:
    """`a.{ts,js}` → (`a.ts`, `a.js`); nested braces expand too; unbalanced ones stay literal."""
    depth = 0
    start = -1
    for index, char in enumerate(pattern):
        if char == "{":
            if depth == 0:
                start = index
            depth += 1
        elif char == "}" and depth:
            depth -= 1
            if depth == 0:
                options = _split_top_level(pattern[start + 1 : index])
                if len(options) < 2:
                    continue
                head, tail = pattern[:start], pattern[index + 1 :]
                return tuple(
                    expanded
                    for option in options
                    for expanded in expand_braces(head + option + tail)
                )
    return (pattern,)


def _split_top_level(inner: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in inner:
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        depth += (char == "{") - (char == "}")
        current += char
    parts.append(current)
    return parts


def segment_regex(segment: str) -> str:
    """The regex for one path segment (no `/` inside)."""
    out, index = [], 0
    while index < len(segment):
        char = segment[index]
        if char == "*":
            while index + 1 < len(segment) and segment[index + 1] == "*":
                index += 1  # `a**b` is an ordinary star, as in gitignore
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[" and (end := segment.find("]", index + 2)) != -1:
            body = segment[index + 1 : end]
            negate = body[:1] in ("!", "^")
            body = body[1:] if negate else body
            escaped = body.replace("\\", "\\\\").replace("[", "\\[")
            out.append(f"[{'^/' if negate else ''}{escaped}]")
            index = end
        else:
            out.append(re.escape(char))
        index += 1
    return "".join(out)


def _compile_one(pattern: str) -> str:
    segments = pattern.split("/")
    out = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == _GLOBSTAR:
            out.append(".*" if last else "(?:[^/]+/)*")
        else:
            out.append(segment_regex(segment) + ("" if last else "/"))
    return "".join(out)


@lru_cache(maxsize=256)
def compile_glob(pattern: str) -> re.Pattern[str]:
    """One regex matching a whole path against `pattern` (braces expanded into alternatives)."""
    alternatives = "|".join(_compile_one(p) for p in expand_braces(pattern))
    return re.compile(f"(?:{alternatives})\\Z")


@dataclass(frozen=True)
class GlobSet:
    """Several globs; a path matches if any matches."""

    patterns: tuple[str, ...]
    _regexes: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)
    _segments: tuple[tuple[str, ...], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        expanded = [e for p in self.patterns for e in expand_braces(p)]
        object.__setattr__(self, "_regexes", tuple(compile_glob(p) for p in self.patterns))
        object.__setattr__(self, "_segments", tuple(tuple(e.split("/")) for e in expanded))

    def matches(self, path: str) -> bool:
        return any(regex.match(path) for regex in self._regexes)

    def select(self, paths: Iterable[str]) -> tuple[str, ...]:
        """The matching paths, sorted and without duplicates."""
        return tuple(sorted({path for path in paths if self.matches(path)}))

    def may_match_below(self, directory: str) -> bool:
        """Whether some file under `directory/` could match (prunes tree walks)."""
        parts = [p for p in directory.split("/") if p]
        return any(_may_match_below(segments, parts) for segments in self._segments)


def _may_match_below(pattern: tuple[str, ...], parts: list[str]) -> bool:
    for index, part in enumerate(parts):
        if index >= len(pattern) - 1:
            # The pattern's last segment names the file itself; `**` there still reaches down.
            return index < len(pattern) and pattern[index] == _GLOBSTAR
        if pattern[index] == _GLOBSTAR:
            return True
        if not re.fullmatch(segment_regex(pattern[index]), part):
            return False
    return True
