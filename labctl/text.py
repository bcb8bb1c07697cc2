"""Text from elsewhere stays text. A student's folder name, what their server answered, a
program's output, a name in a lab file: each may hold terminal controls, bytes that are not
UTF-8, direction overrides, a leading `=`. Every output labctl writes (a terminal, CSV,
Markdown, JUnit XML, HTML, JSON, file names) shows them through one function here, escaped
so that a reader sees something was there and no program reading the output obeys it.

Backslashes are left as they are: reasons already quote bytes as Python does ('HELLO\\n'),
and doubling them would hide more than it shows.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any

# What a terminal, a spreadsheet or an XML parser would act on or refuse: C0 and C1 controls
# (ESC, NUL, CSI...), DEL, lone surrogates (undecodable bytes of a file name), the Unicode
# line and paragraph separators, the direction marks and overrides that reorder what is
# shown, the byte-order mark, and the two non-characters XML 1.0 forbids.
HIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\u200e\u200f\u202a-\u202e"
                    "\u2066-\u2069\ufeff\ufffe\uffff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# A spreadsheet reads a cell starting so as a formula. A leading tab or CR, which some trim
# away before looking, never gets there: `visible` has written it out as \t or \r.
FORMULA_STARTS = ("=", "+", "-", "@")
CUT = "..."


def _shown(char: str) -> str:
    code = ord(char)
    if char in _NAMED:
        return _NAMED[char]
    if 0xDC80 <= code <= 0xDCFF:   # a byte os.fsdecode could not decode: show that byte
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: object, keep: str = "") -> str:
    """`text` with every hidden character (see HIDDEN) written out as an escape (ESC as
    \\x1b, an undecodable byte 0xff as \\xff, U+202E as \\u202e), except those in `keep`."""
    value = text if isinstance(text, str) else str(text)
    return HIDDEN.sub(lambda match: match.group() if match.group() in keep else _shown(match.group()), value)


def cut(text: str, limit: int | None) -> str:
    """`text`, ending in '...' where it was longer than `limit`."""
    if limit is None or len(text) <= limit:
        return text
    return text[:max(0, limit - len(CUT))] + CUT


def one_line(text: object, limit: int | None = None) -> str:
    """`text` on one line of a terminal: everything hidden escaped, cut at `limit`."""
    return cut(visible(text), limit)


def csv_cell(value: object) -> str:
    """A CSV cell that is text to any spreadsheet: one line, and never a formula (a cell
    starting with = + - @, after any spaces, gets a leading apostrophe, as spreadsheets themselves write it)."""
    text = visible(value)
    return "'" + text if text.lstrip(" ").startswith(FORMULA_STARTS) else text


def csv_line(cells: list[object]) -> list[str]:
    return [csv_cell(cell) for cell in cells]


def csv_rows(rows: list[list[object]]) -> str:
    """Rows as CSV text, every cell through `csv_cell`."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerows(csv_line(row) for row in rows)
    return out.getvalue()


# What may start or end Markdown's inline constructs (emphasis, code, links, raw HTML,
# entities, tables, strike-through): escaped with a backslash, as CommonMark allows for any
# ASCII punctuation.
_MARKDOWN = re.compile(r"[`*_\[\]<>|~&!#]|\\(?=[!-/:-@\[-`{-~]|$)")


def markdown(text: object) -> str:
    """`text` as literal inline Markdown on one line."""
    return _MARKDOWN.sub(lambda match: "\\" + match.group(), visible(text))


def xml(text: object, keep: str = "") -> str:
    """`text` holding only characters XML 1.0 allows (the rest escaped visibly); the XML
    writer escapes markup itself. `keep`: "\\n" for an element's text of several lines."""
    return visible(text, keep=keep.replace("\r", ""))


def html(text: object, keep: str = "") -> str:
    """`text` escaped for HTML, controls written out; with `keep="\\n"` newlines become <br>."""
    from html import escape
    escaped = escape(visible(text, keep=keep), quote=True)
    return escaped.replace("\n", "<br>") if "\n" in keep else escaped


def unicode_safe(text: str) -> str:
    """`text` with its lone surrogates (from undecodable file names) escaped, so it encodes
    as UTF-8; everything else kept."""
    return re.sub("[\ud800-\udfff]", lambda match: _shown(match.group()), text)


def json_safe(value: Any) -> Any:
    """`value` (dicts, lists, tuples, strings, numbers) with every string `unicode_safe`:
    json.dumps(..., ensure_ascii=False) of it encodes as UTF-8. JSON escapes controls itself."""
    if isinstance(value, str):
        return unicode_safe(value)
    if isinstance(value, dict):
        return {json_safe(key) if isinstance(key, str) else key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    return value


_FILE_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def file_part(text: object, limit: int = 40) -> str:
    """A piece of a file name from any text: letters, digits, '.', '_' and '-' only (runs of
    anything else become one '_'), no leading dot or dash, at most `limit` characters, never
    empty."""
    name = _FILE_UNSAFE.sub("_", str(text)).lstrip(".-")[:limit].rstrip(".")
    return name or "_"
