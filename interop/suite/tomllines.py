"""Which line of a TOML text defines a key: for errors that point at the line.

``tomllib`` reports line numbers for syntax errors only; a value that parses but
breaks the manifest's schema (a wrong type, an unknown key, a missing file) is
found here by its key path (names and array indices, as
:class:`~interop.checker.tolerances.ConfigError` carries it). The scanner reads
text that tomllib already accepted, so it only needs to follow table headers,
``[[array]]`` headers, dotted keys and the extent of multi-line values.
"""

from __future__ import annotations

import re

KeyPath = tuple  # a key path: str names and int array indices

_BARE = re.compile(r"[A-Za-z0-9_-]+")


def _key_parts(text: str, pos: int) -> tuple[list[str], int]:
    """Parse a (dotted, maybe quoted) key starting at ``pos``; returns the names and the end."""
    parts: list[str] = []
    while True:
        while pos < len(text) and text[pos] in " \t":
            pos += 1
        if pos < len(text) and text[pos] == '"':
            end = pos + 1
            chars: list[str] = []
            while end < len(text) and text[end] != '"':
                if text[end] == "\\" and end + 1 < len(text):
                    escape = text[end + 1]
                    chars.append({"n": "\n", "t": "\t", '"': '"', "\\": "\\"}.get(escape, escape))
                    end += 2
                    continue
                chars.append(text[end])
                end += 1
            parts.append("".join(chars))
            pos = end + 1
        elif pos < len(text) and text[pos] == "'":
            end = text.find("'", pos + 1)
            parts.append(text[pos + 1:end])
            pos = end + 1
        else:
            match = _BARE.match(text, pos)
            if not match:
                return parts, pos
            parts.append(match.group())
            pos = match.end()
        while pos < len(text) and text[pos] in " \t":
            pos += 1
        if pos < len(text) and text[pos] == ".":
            pos += 1
            continue
        return parts, pos


class _Scanner:
    """Walks the text once, recording the first line of every key path it sees."""

    def __init__(self, text: str):
        self.lines = text.splitlines()
        self.found: dict[KeyPath, int] = {}
        self.arrays: dict[KeyPath, int] = {}  # array-of-tables path -> number of [[...]] seen

    def record(self, path: KeyPath, line: int) -> None:
        self.found.setdefault(tuple(path), line)

    def header_path(self, names: list[str]) -> KeyPath:
        """Header names to a path, inserting the current index of every array of tables passed."""
        path: tuple = ()
        for name in names:
            path += (name,)
            if path in self.arrays:
                path += (self.arrays[path] - 1,)
        return path

    def scan(self) -> dict[KeyPath, int]:
        table: KeyPath = ()
        row = 0
        while row < len(self.lines):
            line = self.lines[row]
            stripped = line.lstrip()
            number = row + 1
            if stripped.startswith("[["):
                names, _ = _key_parts(stripped, 2)
                parent = self.header_path(names[:-1])
                array = (*parent, names[-1])
                self.arrays[array] = self.arrays.get(array, 0) + 1
                table = (*array, self.arrays[array] - 1)
                for depth in range(1, len(table) + 1):
                    self.record(table[:depth], number)
                row += 1
                continue
            if stripped.startswith("["):
                table = self.header_path(_key_parts(stripped, 1)[0])
                for depth in range(1, len(table) + 1):
                    self.record(table[:depth], number)
                row += 1
                continue
            if not stripped or stripped.startswith("#"):
                row += 1
                continue
            names, pos = _key_parts(line, 0)
            if not names or pos >= len(line) or line[pos] != "=":
                row += 1
                continue
            key = (*table, *names)
            for depth in range(len(table) + 1, len(key) + 1):
                self.record(key[:depth], number)
            row = self.value(key, row, pos + 1)
        return self.found

    def value(self, key: KeyPath, row: int, pos: int) -> int:
        """Skip the value starting at (row, pos); record array element lines. Returns the next row."""
        depth = 0
        element = -1
        expecting = False  # at the start of an element of the outermost array
        text = self.lines[row]
        while True:
            while pos < len(text):
                char = text[pos]
                if char == "#":
                    break
                if char in " \t":
                    pos += 1
                    continue
                if depth == 1 and expecting and char not in ",]":
                    element += 1
                    self.record((*key, element), row + 1)
                    expecting = False
                if char in "\"'":
                    row, text, pos = self._skip_string(row, text, pos, char, text.startswith(char * 3, pos))
                    if depth == 0:
                        return row + 1
                    continue
                if char in "[{":
                    depth += 1
                    expecting = depth == 1 and char == "["
                elif char in "]}":
                    depth -= 1
                elif char == "," and depth == 1:
                    expecting = True
                pos += 1
                if depth == 0:
                    return row + 1
            row += 1
            if row >= len(self.lines):
                return row
            text, pos = self.lines[row], 0

    def _skip_string(self, row: int, text: str, pos: int, quote: str, triple: bool) -> tuple[int, str, int]:
        if not triple:
            end = pos + 1
            while end < len(text) and text[end] != quote:
                end += 2 if quote == '"' and text[end] == "\\" else 1
            return row, text, end + 1
        delimiter = quote * 3
        start = pos + 3
        while True:
            end = text.find(delimiter, start)
            while end != -1 and quote == '"' and _escaped(text, end):
                end = text.find(delimiter, end + 1)
            if end != -1:
                end += 3
                while end < len(text) and text[end] == quote:  # up to two quotes may end the string
                    end += 1
                return row, text, end
            row += 1
            if row >= len(self.lines):
                return row, "", 0
            text, start = self.lines[row], 0


def _escaped(text: str, index: int) -> bool:
    backslashes = 0
    while index - backslashes - 1 >= 0 and text[index - backslashes - 1] == "\\":
        backslashes += 1
    return backslashes % 2 == 1


def key_lines(text: str) -> dict[KeyPath, int]:
    """Every key path the text defines, mapped to its 1-based line."""
    return _Scanner(text).scan()


def line_of(text: str, path: KeyPath) -> int | None:
    """The line defining ``path``, or of its nearest defined parent (None when nothing matches)."""
    found = key_lines(text)
    for depth in range(len(path), 0, -1):
        if tuple(path[:depth]) in found:
            return found[tuple(path[:depth])]
    return None
