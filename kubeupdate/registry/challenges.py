"""The ``WWW-Authenticate`` header of a registry's 401 (RFC 7235), parsed.

A registry answers ``Basic realm="..."`` (htpasswd) or
``Bearer realm="https://auth.example/token",service="...",scope="..."``
(the distribution token flow). One header may carry several challenges,
separated by commas like the parameters are, so the parser reads a token
followed by ``=`` as a parameter and any other token as the next scheme.
The ``token68`` form (``Negotiate abc==``) is not used by registries and is
refused as a syntax error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_SPACE: Final = re.compile(r"[ \t]*")


@dataclass(frozen=True)
class Challenge:
    """One challenge: the scheme in lowercase, and its parameters (names lowercased)."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str | None:
        return self.params.get("realm")


class ChallengeSyntaxError(ValueError):
    """The header is not a list of challenges."""


def parse_challenges(header: str) -> list[Challenge]:
    """Every challenge of a ``WWW-Authenticate`` header, in order."""
    reader = _Reader(header)
    challenges: list[Challenge] = []
    while True:
        reader.skip_separators()
        if reader.at_end():
            return challenges
        scheme = reader.expect(_TOKEN, "an authentication scheme").lower()
        params: dict[str, str] = {}
        reader.skip_spaces()
        # Parameters follow until a token that is not followed by '=' (the next scheme).
        while not reader.at_end():
            mark = reader.position
            reader.skip_separators()
            name = reader.match(_TOKEN)
            if name is None:
                if not reader.at_end():
                    raise ChallengeSyntaxError(f"unexpected text at {reader.position}: {header!r}")
                break
            reader.skip_spaces()
            if not reader.consume("="):
                reader.position = mark  # a new challenge starts here
                break
            reader.skip_spaces()
            params[name.lower()] = reader.value()
            reader.skip_spaces()
        challenges.append(Challenge(scheme, params))


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.position = 0

    def at_end(self) -> bool:
        return self.position >= len(self.text)

    def skip_spaces(self) -> None:
        found = _SPACE.match(self.text, self.position)
        assert found is not None  # the pattern matches the empty string
        self.position = found.end()

    def skip_separators(self) -> None:
        while not self.at_end() and self.text[self.position] in " \t,":
            self.position += 1

    def match(self, pattern: re.Pattern[str]) -> str | None:
        found = pattern.match(self.text, self.position)
        if found is None or not found.group():
            return None
        self.position = found.end()
        return found.group()

    def expect(self, pattern: re.Pattern[str], what: str) -> str:
        value = self.match(pattern)
        if value is None:
            raise ChallengeSyntaxError(f"expected {what} at {self.position}: {self.text!r}")
        return value

    def consume(self, text: str) -> bool:
        if self.text.startswith(text, self.position):
            self.position += len(text)
            return True
        return False

    def value(self) -> str:
        if not self.consume('"'):
            return self.expect(_TOKEN, "a parameter value")
        chars: list[str] = []
        while not self.at_end():
            char = self.text[self.position]
            self.position += 1
            if char == "\\" and not self.at_end():
                chars.append(self.text[self.position])
                self.position += 1
            elif char == '"':
                return "".join(chars)
            else:
                chars.append(char)
        raise ChallengeSyntaxError(f"unterminated quoted string: {self.text!r}")
