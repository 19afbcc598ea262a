"""Reading one YAML file into plain data plus the position of every key and item.

ruamel.yaml's round-trip loader is used because it keeps line and column numbers; its
commented types are converted to plain dicts, lists and scalars at once, so nothing past this
module ever sees a ruamel type. Every failure becomes a :class:`ConfigError` at a position.
"""

from __future__ import annotations

import datetime as dt
import re
import warnings
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.scalarbool import ScalarBoolean
from ruamel.yaml.scalarstring import ScalarString

from .errors import ConfigError, Pos
from .positions import Entry, KeyPath, SourceMap

TAB_HINT = "YAML indents with spaces, not tabs"
SYNTAX_HINT = ("check this line and the one above: keys of one mapping line up in the same column, each "
               "line is `key: value`, quotes and brackets are closed")
UTF8_HINT = "save the file as UTF-8 text"

#: A config is a few dozen values; aliases (``*name``) that repeat their anchor's contents must
#: not expand a small file into millions (a "billion laughs" file), nor nesting exhaust the stack.
MAX_VALUES = 100_000
MAX_DEPTH = 64
_RUNAWAY = re.compile(r"(?:[\[{][ \t\r\n]*){%d,}" % (MAX_DEPTH + 1))  # more openers in a row than any config nests


def read_yaml(path: Path, display: str) -> tuple[dict[str, Any], SourceMap]:
    """Load ``path`` (shown to the user as ``display``); the top level must be a mapping."""
    text = _read_text(path, display)
    runaway = _RUNAWAY.search(text)
    if runaway:  # ruamel takes seconds (quadratic) to find out for itself
        line, col = _line_col(text, runaway.start())
        raise ConfigError(f"the document is nested more than {MAX_DEPTH} levels deep", display, line, col,
                          hint="a config needs a few levels of indentation; look for runaway [ or {")
    yaml = YAML(typ="rt")
    # Quoted scalars come back as their own types, so that `"${PORT}"` can stay a string.
    yaml.preserve_quotes = True
    try:
        with warnings.catch_warnings():
            # ruamel warns on stderr about an anchor defined twice (legal YAML: the later one
            # counts); the terminal gets one error line or none, never a library's warning
            warnings.simplefilter("ignore")
            doc = yaml.load(text)
    except MarkedYAMLError as exc:
        raise _syntax_error(exc, text, display) from None
    except ReaderError as exc:  # a control character: ruamel gives its index in the text
        line, col = _line_col(text, exc.position)
        raise ConfigError(
            f"the file holds a control character (U+{exc.character:04X}), which YAML does not allow", display,
            line, col, hint="remove it (or write it as an escape inside double quotes: \"\\u0007\")",
        ) from None
    except RecursionError:
        raise ConfigError(f"the document is nested too deeply (more than {MAX_DEPTH} levels)", display, 1, 1,
                          hint="a config needs a few levels of indentation; look for runaway [ or {") from None
    except (YAMLError, ValueError, TypeError, OverflowError) as exc:
        # e.g. `!!float x`: the value a tag asks for cannot be built; ruamel gives no position
        line, col = _tag_pos(text)
        raise ConfigError(f"cannot read a value: {exc}", display, line, col,
                          hint="remove the !!tag: config values are plain strings, numbers, true/false, lists "
                               "and mappings") from None

    if doc is None:
        if _has_content(text):
            raise ConfigError("the document is null; expected a mapping of settings (key: value lines)", display,
                              hint=_START_HINT)
        raise ConfigError("the file is empty", display, 1, 1, hint=_START_HINT)
    if not isinstance(doc, CommentedMap):
        line, col = _node_pos(doc)
        raise ConfigError(
            f"the top level of a config must be a mapping of settings (key: value lines), not {_kind(doc)}",
            display,
            line,
            col,
            hint=_START_HINT,
        )
    smap = SourceMap()
    top = Pos(display, 1, 1)
    smap.set((), Entry(top, top))
    try:
        _check_expansion(doc, display)
        data = _plain(doc, (), smap, display, set(), [MAX_VALUES])
    except RecursionError:
        raise ConfigError(f"the document is nested too deeply (more than {MAX_DEPTH} levels)", display, 1, 1,
                          hint="a config needs a few levels of indentation; look for runaway [ or {") from None
    return data, smap


_START_HINT = "start with lines such as `mode: paper`, `broker: {use: <name>}` and `strategies: [{use: <name>}]`"


def _line_col(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of character ``index``, counting lines as YAML does."""
    index = max(0, min(index, len(text)))
    head = text[:index]
    starts = [m.end() for m in re.finditer(r"\r\n|[\n\r\x85\u2028\u2029]", head)]
    start = starts[-1] if starts else 0
    return len(starts) + 1, index - start + 1


def _tag_pos(text: str) -> tuple[int, int]:
    m = re.search(r"!\S*", text)
    return _line_col(text, m.start()) if m else (1, 1)


def _read_text(path: Path, display: str) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError("no such file", display, 1, 1,
                          hint="check the name; a relative path is relative to the current folder") from None
    except IsADirectoryError:
        raise ConfigError("this is a directory, not a config file", display, 1, 1,
                          hint="name the YAML file inside it") from None
    except OSError as exc:
        raise ConfigError(f"cannot read the file: {exc.strerror or exc}", display, 1, 1,
                          hint="check the file's permissions") from None
    except ValueError as exc:  # e.g. a NUL byte in the file name
        raise ConfigError(f"cannot read the file: {exc}", display, 1, 1, hint="check the file name") from None
    for bom, name in ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"), (b"\xff\xfe", "UTF-16"),
                      (b"\xfe\xff", "UTF-16")):
        if raw.startswith(bom):
            raise ConfigError(f"the file is {name} text, not UTF-8", display, 1, 1,
                              hint=f"{UTF8_HINT} (iconv -f {name} -t UTF-8 FILE)")
    try:
        return raw.decode("utf-8-sig")  # -sig: a BOM written by some editors is not content
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = len(raw[raw.rfind(b"\n", 0, exc.start) + 1: exc.start].decode("utf-8", errors="replace")) + 1
        hint = UTF8_HINT + " (from Latin-1, say: iconv -f LATIN1 -t UTF-8 FILE)"
        if b"\x00" in raw[:64]:
            hint = UTF8_HINT + " (it looks like UTF-16: iconv -f UTF-16 -t UTF-8 FILE)"
        raise ConfigError(
            f"the file is not UTF-8 text (byte 0x{raw[exc.start]:02x})", display, line, col, hint=hint,
        ) from None


def _has_content(text: str) -> bool:
    return any(ln.strip() and not ln.lstrip().startswith("#") for ln in text.splitlines())


def _syntax_error(exc: MarkedYAMLError, text: str, display: str) -> ConfigError:
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    problem = (exc.problem or exc.context or "invalid YAML").strip()
    lines = text.splitlines()
    here = lines[line - 1] if 0 < line <= len(lines) else ""
    indent = here[: len(here) - len(here.lstrip(" \t"))]
    if "\t" in indent or "'\\t'" in problem:
        return ConfigError("a tab character is used for indentation", display, line, col, hint=TAB_HINT)
    if isinstance(exc, DuplicateKeyError):
        # ruamel says 'found duplicate key "a" with value "3" (original value: "1")'.
        key = problem.split('"')[1] if problem.count('"') >= 2 else "?"
        return ConfigError(
            f"duplicate key '{key}' (a key may appear only once in a mapping)", display, line, col,
            hint=f"remove one of the '{key}:' lines, or merge them",
        )
    message = f"invalid YAML: {problem}"
    if exc.context and exc.context_mark and exc.problem:
        message += f" ({exc.context} started at line {exc.context_mark.line + 1})"
    if "${" in here and "flow" in (exc.context or "") + problem:
        # `{use: x, token: ${T}}`: inside [ ] or { } the braces of ${...} are YAML syntax.
        hint = "inside [ ] or { }, quote a value that contains ${...}: '${VAR}'"
    else:
        hint = _syntax_hint(exc, problem)
    return ConfigError(message, display, line, col, hint=hint)


def _syntax_hint(exc: MarkedYAMLError, problem: str) -> str:
    """How to fix the usual YAML mistakes, from ruamel's words for them."""
    context = exc.context or ""
    if "mapping values are not allowed" in problem:
        return ("a ': ' inside a value starts a new mapping: quote the value ('a: b'), or put the key on a line "
                "of its own")
    if "cannot start any token" in problem:
        char = problem.split("'")[1] if problem.count("'") >= 2 else "it"
        return f"quote a value that starts with {char} ('{char}...'); YAML keeps @, ` and % for itself"
    if "undefined alias" in problem:
        return "an alias *name needs an anchor &name written before it; to write a literal *, quote the value"
    if "another document" in problem or "document start" in problem:
        return "a config is one YAML document: remove the '---' or '...' line and the directives (%...) before it"
    if "quoted scalar" in context:
        return "close the quote that starts here (a quoted value ends with the same quote on the same line)"
    if "flow" in context:
        return "close the [ or { opened here, or quote a value that contains [ ] { } or ,"
    if "could not find expected ':'" in problem:
        return "each line of a mapping is `key: value` (with a space after the colon)"
    if "block" in context or "block end" in problem:
        return ("the indentation does not match: keys of one mapping line up in the same column, the items of "
                "a list each start with '- ' at the same column")
    if "base64" in problem or "construct" in problem:
        return "remove the !!tag: config values are plain strings, numbers, true/false, lists and mappings"
    return SYNTAX_HINT


def _node_pos(node: Any) -> tuple[int, int]:
    lc = getattr(node, "lc", None)
    if lc is not None and lc.line is not None:
        return lc.line + 1, lc.col + 1
    return 1, 1


def _brief_key(key: Any) -> str:
    if isinstance(key, (bool, ScalarBoolean)):
        return str(bool(key)).lower()
    if isinstance(key, (tuple, list, dict, CommentedMap, CommentedSeq)):
        return "a list or mapping"
    text = repr(key)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a single string"
    return f"a single value ({value!r})"


def _at(display: str, lc_pair: Any, fallback: Pos) -> Pos:
    if not lc_pair or lc_pair[0] is None:
        return fallback
    return Pos(display, lc_pair[0] + 1, lc_pair[1] + 1)


def _expanded_sizes(node: Any, sizes: dict[int, int], active: set[int]) -> int:
    """How many values ``node`` becomes once its aliases are copied out: counted once per node
    (an alias is the same node again), so a file that would expand to billions costs no more
    than its own length to measure. Recursive aliases count as one (``_plain`` refuses them)."""
    if not isinstance(node, (CommentedMap, CommentedSeq)):
        return 1
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in active:
        return 1
    active.add(key)
    children = node.values() if isinstance(node, CommentedMap) else node
    total = 1 + sum(_expanded_sizes(child, sizes, active) for child in children)
    active.discard(key)
    sizes[key] = total
    return total


def _check_expansion(doc: Any, display: str) -> None:
    """Refuse an alias bomb before copying anything, pointing at the value that grows too big."""
    sizes: dict[int, int] = {}
    if _expanded_sizes(doc, sizes, set()) <= MAX_VALUES:
        return
    node, pos = doc, Pos(display, 1, 1)
    while True:  # down to the smallest value that is still too big
        items = list(node.items()) if isinstance(node, CommentedMap) else list(enumerate(node))
        for key, child in items:
            if sizes.get(id(child), 1) > MAX_VALUES:
                try:
                    lc = node.lc.key(key) if isinstance(node, CommentedMap) else node.lc.item(key)
                    pos = _at(display, lc, pos)
                except (KeyError, TypeError, IndexError, AttributeError):
                    pass
                node = child
                break
        else:
            break
    raise ConfigError.at(pos, f"the document expands to more than {MAX_VALUES:,} values "
                         "(aliases *name repeat what their anchor &name holds)",
                         hint="a config needs a few dozen values; write them out instead of nesting aliases")


def _plain(node: Any, path: KeyPath, smap: SourceMap, display: str, active: set[int], budget: list[int]) -> Any:
    """Convert a ruamel node to plain Python data, recording positions under ``path``.

    ``budget`` is how many more values may be made: aliases copy their anchor's contents, so a
    small file could otherwise expand beyond any memory."""
    budget[0] -= 1
    if budget[0] < 0:
        raise ConfigError.at(smap.where(path), f"the document expands to more than {MAX_VALUES:,} values "
                             "(aliases *name repeat what their anchor &name holds)",
                             hint="a config needs a few dozen values; write them out instead of nesting aliases")
    if len(path) > MAX_DEPTH:
        raise ConfigError.at(smap.where(path), f"the document is nested more than {MAX_DEPTH} levels deep",
                             hint="a config needs a few levels of indentation; look for runaway [ or {")
    if isinstance(node, (CommentedMap, CommentedSeq)):
        if id(node) in active:  # `&a [*a]`: an alias that contains itself
            raise ConfigError.at(smap.where(path), "an alias refers to itself (recursive anchor)",
                                 hint="an alias *name cannot be used inside the value its anchor &name marks")
        active = active | {id(node)}
    here = smap.where(path)
    if isinstance(node, CommentedMap):
        out: dict[Any, Any] = {}
        for key, value in node.items():
            try:
                kpos = _at(display, node.lc.key(key), here)
                vpos = _at(display, node.lc.value(key), kpos)
            except (KeyError, TypeError, IndexError):  # a key that came in through `<<: *anchor`
                kpos = vpos = here
            if isinstance(key, ScalarString):
                key = str(key)
            if isinstance(key, (bool, ScalarBoolean)) or not isinstance(key, (str, int)):
                raise ConfigError.at(kpos, f"a key must be a plain name, not {_brief_key(key)}",
                                     hint="write the key as a word, e.g. `name: value`")
            if not isinstance(key, str):
                key = int(key)  # a ruamel ScalarInt (`0x1F:`) as the plain int it stands for
            sub = path + (key,)
            smap.set(sub, Entry(kpos, vpos, quoted=isinstance(value, ScalarString)))
            out[key] = _plain(value, sub, smap, display, active, budget)
        return out
    if isinstance(node, CommentedSeq):
        items = []
        for index, value in enumerate(node):
            try:
                ipos = _at(display, node.lc.item(index), here)
            except (KeyError, TypeError, IndexError):
                ipos = here
            sub = path + (index,)
            smap.set(sub, Entry(ipos, ipos, quoted=isinstance(value, ScalarString)))
            items.append(_plain(value, sub, smap, display, active, budget))
        return items
    return plain_scalar(node, smap.where_value(path))


def plain_scalar(value: Any, pos: Pos | None) -> Any:
    """A ruamel scalar as the plain Python value it stands for."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, ScalarString):
        return str(value)
    if isinstance(value, (bool, ScalarBoolean)):
        return bool(value)
    if isinstance(value, int):  # ScalarInt, HexInt, ...
        return int(value)
    if isinstance(value, float):  # ScalarFloat
        return float(value)
    if isinstance(value, dt.datetime):
        return dt.datetime.fromisoformat(value.isoformat())  # drops ruamel's TimeStamp subclass
    if isinstance(value, dt.date):
        return value
    tag = getattr(getattr(value, "tag", None), "value", None)
    message = f"unsupported YAML value {value!r}" + (f" (tag {tag})" if tag else "")
    raise ConfigError.at(pos or Pos("?", 1, 1), message, hint="config values are plain strings, numbers, true/false, lists and mappings")


def parse_scalar(text: str) -> Any:
    """``text`` typed as YAML would type it as a plain scalar (``7497`` -> int, ``true`` -> bool).

    Anything that would not be a scalar (``a: b``, a comment, invalid YAML) stays the string
    it was: a value substituted from the environment must never turn into a structure.
    """
    if text == "":
        return None
    try:
        value = YAML(typ="safe", pure=True).load(text)  # a fresh loader: they are not re-entrant
    except (YAMLError, ValueError, TypeError, RecursionError):
        return text
    if not isinstance(value, (str, int, float, bool, dt.date, type(None))):
        return text  # a structure (a: b, [1]) or a tagged oddity (!!binary, !!set): the text it was
    if value is None and text.strip() not in ("~", "null", "Null", "NULL"):
        return text  # e.g. "#abc" is a comment to YAML, but a value here
    return value
