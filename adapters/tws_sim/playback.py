"""Recorded TWS traffic (the ib-captures formats) as server->client frames, and the version it needs.

Formats (see ib-captures/README.md):
- nautilus `*.txt`: one frame per file, fields separated by the literal 4-character text `\\x00`;
- rust-ibapi `*.txt`: one frame per line, each field followed by `|`; in files where every line ends in
  `||`, the last empty field is a test-string artifact and is stripped;
- rust-ibapi `*.yaml`: request/response pairs; the responses' `raw` strings (YAML escapes, `\\0` = NUL).
"""

from __future__ import annotations

import re
from pathlib import Path

NAUTILUS_SEPARATOR = "\\x00"
_RESPONSE_RAW = re.compile(r'^\s*- raw: "(.*)"\s*$')
_YAML_ESCAPES = {"0": "\0", '"': '"', "\\": "\\", "n": "\n", "t": "\t", "/": "/"}
_VERSION_IN_NAME = re.compile(r"_v(\d{3})\b")
_VERSION_IN_YAML = re.compile(r"^\s*server_version:\s*(\d+)", re.MULTILINE)
NAUTILUS_VERSION = 176  # their captures follow the v170-176 layouts


def _terminated(fields: list[str]) -> list[str]:
    """Drop the empty string after the final terminator."""
    return fields[:-1] if fields and fields[-1] == "" else fields


def parse_nautilus(text: str) -> list[list[str]]:
    body = text.strip("\r\n")
    return [_terminated(body.split(NAUTILUS_SEPARATOR))] if body else []


def parse_rust_lines(text: str) -> list[list[str]]:
    lines = [line for line in text.splitlines() if line.strip()]
    artifact = bool(lines) and all(line.endswith("||") for line in lines)
    frames = []
    for line in lines:
        fields = _terminated(line.split("|"))
        frames.append(fields[:-1] if artifact else fields)
    return frames


def parse_yaml_responses(text: str) -> list[list[str]]:
    frames = []
    for line in text.splitlines():
        match = _RESPONSE_RAW.match(line)
        if match:
            raw = re.sub(r"\\(.)", lambda m: _YAML_ESCAPES.get(m.group(1), m.group(1)), match.group(1))
            frames.append(_terminated(raw.split("\0")))
    return frames


def read_capture(path: Path) -> list[list[str]]:
    """The server->client frames of a capture file, as field lists."""
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        return parse_yaml_responses(text)
    if NAUTILUS_SEPARATOR in text:
        return parse_nautilus(text)
    return parse_rust_lines(text)


def capture_version(path: Path) -> int:
    """The server version whose layouts the capture follows (a client must connect at that version)."""
    named = _VERSION_IN_NAME.search(path.name)
    if named:
        return int(named.group(1))
    if path.suffix in (".yaml", ".yml"):
        header = _VERSION_IN_YAML.search(path.read_text())
        if header:
            return int(header.group(1))
    return NAUTILUS_VERSION


def is_frame_capture(path: Path) -> bool:
    """Whether the file holds TWS frames (not JSON snapshots or documentation)."""
    return path.suffix in (".txt", ".yaml", ".yml") and path.name.lower() != "readme.md"
