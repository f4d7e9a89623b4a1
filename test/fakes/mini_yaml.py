"""A small YAML reader for the block-style documents in ../shared/specs (OpenAPI files).

Standard library only, so the fakes need nothing from PyPI. It reads block mappings and
sequences, plain, quoted and block (| >) scalars, and simple flow collections. It is not a
general YAML parser: anchors, tags and multi-document streams raise ValueError.
"""
import json
import re

_INT = re.compile(r"^[-+]?[0-9]+$")
_FLOAT = re.compile(r"^[-+]?([0-9]+\.[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$")


def _scalar(text):
    text = text.strip()
    if text == "" or text in ("~", "null", "Null", "NULL"):
        return None
    if text[0] == "'":
        if not text.endswith("'") or len(text) < 2:
            raise ValueError("unterminated quoted scalar: " + text)
        return text[1:-1].replace("''", "'")
    if text[0] == '"':
        return json.loads(text)
    if text[0] in "[{":
        return _flow(text)
    if text[0] in "&*!":
        raise ValueError("anchors, aliases and tags are not supported: " + text)
    if text in ("true", "True", "TRUE"):
        return True
    if text in ("false", "False", "FALSE"):
        return False
    if _INT.match(text):
        return int(text)
    if _FLOAT.match(text):
        return float(text)
    return text


def _split_flow(body):
    """Splits the inside of a flow collection at top-level commas."""
    parts, depth, quote, start = [], 0, None, 0
    for i, ch in enumerate(body):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(body[start:i])
            start = i + 1
    if body[start:].strip():
        parts.append(body[start:])
    return parts


def _flow(text):
    body = text[1:-1]
    if text[0] == "[":
        return [_scalar(p) for p in _split_flow(body)]
    out = {}
    for part in _split_flow(body):
        key, _, value = part.partition(":")
        out[_scalar(key)] = _scalar(value)
    return out


def _strip_comment(line):
    """Removes a ' #' comment outside quotes."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"" and (i == 0 or line[i - 1] in " :-[{,"):
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] == " "):
            return line[:i].rstrip()
    return line.rstrip()


def _key_value(content):
    """Splits 'key: value' (key may be quoted); None when the line is not a mapping entry."""
    if content[0] in "'\"":
        quote = content[0]
        end = 1
        while True:
            end = content.find(quote, end)
            if end < 0:
                return None
            if quote == "'" and content[end + 1:end + 2] == "'":
                end += 2
                continue
            break
        key, rest = _scalar(content[:end + 1]), content[end + 1:]
        if not (rest.startswith(":") and (len(rest) == 1 or rest[1] == " ")):
            return None
        return key, rest[1:].strip()
    match = re.match(r"^([^#'\"{\[][^:]*?):( |$)", content)
    if not match:
        return None
    return _scalar(match.group(1)), content[match.end():].strip()


class _Reader:
    def __init__(self, text):
        self.lines = []  # (indent, content, raw)
        for raw in text.splitlines():
            stripped = raw.strip()
            if stripped == "" or stripped.startswith("#"):
                self.lines.append((None, "", raw))
                continue
            if stripped in ("---", "..."):
                continue
            indent = len(raw) - len(raw.lstrip(" "))
            self.lines.append((indent, _strip_comment(raw[indent:]), raw))
        self.pos = 0

    def _skip_blank(self):
        while self.pos < len(self.lines) and self.lines[self.pos][0] is None:
            self.pos += 1

    def _peek(self):
        self._skip_blank()
        return self.lines[self.pos] if self.pos < len(self.lines) else None

    def node(self, indent):
        line = self._peek()
        if line is None or line[0] < indent:
            return None
        if line[1].startswith("- ") or line[1] == "-":
            return self._sequence(line[0])
        return self._mapping(line[0])

    def _block_scalar(self, style, parent_indent):
        folded = style.startswith(">")
        chomp = "-" if "-" in style else ""
        explicit = re.search(r"[0-9]", style)
        collected, block_indent = [], None
        while self.pos < len(self.lines):
            indent, _, raw = self.lines[self.pos]
            if indent is not None:
                if indent <= parent_indent:
                    break
                if block_indent is None:
                    block_indent = parent_indent + int(explicit.group()) if explicit else indent
            collected.append(raw[block_indent:] if block_indent and indent is not None else "")
            self.pos += 1
        while collected and collected[-1] == "":
            collected.pop()
        if folded:
            text, prev_blank = "", True
            for part in collected:
                if part == "":
                    text += "\n"
                    prev_blank = True
                elif part.startswith(" "):
                    text += ("" if prev_blank else "\n") + part + "\n"
                    prev_blank = True
                else:
                    text += ("" if prev_blank else " ") + part
                    prev_blank = False
            text = text.rstrip("\n")
        else:
            text = "\n".join(collected)
        return text if chomp == "-" else text + "\n"

    def _value(self, rest, indent):
        """The value after 'key:' or '- ' at `indent`."""
        if re.match(r"^[|>][-+]?[0-9]?[-+]?$", rest):
            return self._block_scalar(rest, indent)
        if rest == "":
            nxt = self._peek()
            if nxt is None or nxt[0] < indent or (nxt[0] == indent and not nxt[1].startswith("-")):
                return None
            if nxt[0] > indent and not nxt[1].startswith("-") and _key_value(nxt[1]) is None:
                self.pos += 1  # a plain scalar that starts on the next line
                return self._value(nxt[1], indent)
            return self.node(nxt[0]) if nxt[0] > indent else self._sequence(indent)
        # A plain scalar may continue on more-indented lines.
        if rest[0] not in "'\"[{":
            while True:
                nxt = self._peek()
                if nxt is None or nxt[0] <= indent or _key_value(nxt[1]) is not None:
                    break
                rest += " " + nxt[1]
                self.pos += 1
        elif rest[0] in "'\"" and (len(rest) == 1 or rest[-1] != rest[0]):
            while True:
                nxt = self._peek()
                if nxt is None:
                    raise ValueError("unterminated quoted scalar")
                rest += " " + nxt[1]
                self.pos += 1
                if nxt[1].endswith(rest[0]):
                    break
        return _scalar(rest)

    def _mapping(self, indent):
        out = {}
        while True:
            line = self._peek()
            if line is None or line[0] < indent:
                return out
            if line[0] > indent:
                raise ValueError("bad indentation: " + line[2])
            kv = _key_value(line[1])
            if kv is None:
                return out
            self.pos += 1
            out[kv[0]] = self._value(kv[1], indent)

    def _sequence(self, indent):
        out = []
        while True:
            line = self._peek()
            if line is None or line[0] != indent or not (line[1].startswith("- ") or line[1] == "-"):
                return out
            rest = line[1][1:].lstrip()
            if rest == "":
                self.pos += 1
                out.append(self._value("", indent))
                continue
            item_indent = indent + (len(line[1]) - len(rest))
            if _key_value(rest) is not None:
                # "- key: value" opens a mapping whose entries sit at item_indent.
                self.lines[self.pos] = (item_indent, rest, line[2])
                out.append(self._mapping(item_indent))
            else:
                self.pos += 1
                out.append(self._value(rest, indent))


def load(text):
    reader = _Reader(text)
    result = reader.node(0)
    if reader._peek() is not None:
        raise ValueError("could not read line: " + reader._peek()[2])
    return result
