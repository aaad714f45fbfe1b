"""Parser discovery through the ``llmbench.parsers`` entry-point group.

Built-in parsers are declared in llmbench's own pyproject exactly as a third
party declares theirs, so there is one mechanism. A plug-in that fails to load
is reported as a warning and skipped. ``LLMBENCH_DISABLE_PLUGIN_AUTOLOAD=1``
loads only llmbench's own parsers.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points

from .errors import UnknownParserError
from .parsing import Parser

GROUP = "llmbench.parsers"
DETECT_THRESHOLD = 0.5


@dataclass(frozen=True)
class ParserInfo:
    name: str
    framework: str
    description: str
    origin: str  # "llmbench 0.1.0 (built-in)" or "<dist> <version>"
    module: str
    parser: Parser


_cache: dict[str, ParserInfo] | None = None


def _load() -> dict[str, ParserInfo]:
    found: dict[str, ParserInfo] = {}
    only_builtin = os.environ.get("LLMBENCH_DISABLE_PLUGIN_AUTOLOAD", "") not in ("", "0")
    for ep in entry_points(group=GROUP):
        dist = getattr(ep, "dist", None)
        dist_name = dist.metadata["Name"] if dist is not None else "?"
        builtin = dist_name == "llmbench"
        if only_builtin and not builtin:
            continue
        try:
            obj = ep.load()
            parser = obj() if isinstance(obj, type) else obj
            if not callable(getattr(parser, "parse", None)) or not callable(
                getattr(parser, "detect", None)
            ):
                raise TypeError("it has no detect() and parse()")
        except Exception as e:  # a broken plug-in must never break the tool
            warnings.warn(
                f"llmbench: parser plug-in {ep.name!r} from {dist_name} could not be loaded "
                f"and is skipped ({type(e).__name__}: {e})",
                stacklevel=2,
            )
            continue
        name = getattr(parser, "name", "") or ep.name
        if name in found and not builtin:
            warnings.warn(
                f"llmbench: parser {name!r} from {dist_name} is ignored: the name is taken",
                stacklevel=2,
            )
            continue
        version = dist.version if dist is not None else ""
        found[name] = ParserInfo(
            name=name,
            framework=getattr(parser, "framework", ""),
            description=getattr(parser, "description", ""),
            origin=f"{dist_name} {version}" + (" (built-in)" if builtin else " (plug-in)"),
            module=ep.value,
            parser=parser,
        )
    return dict(sorted(found.items()))


def available() -> dict[str, ParserInfo]:
    """All loadable parsers by name (loaded once per process)."""
    global _cache
    if _cache is None:
        _cache = _load()
    return _cache


def reset() -> None:
    """Forget the loaded parsers (tests, or after installing a plug-in)."""
    global _cache
    _cache = None


PARSER_VIEW = ["name", "framework", "origin", "description"]


def table(columns: list[str] | None = PARSER_VIEW):
    """The installed parsers as a DataFrame: ``PARSER_VIEW``, or with
    ``columns=None`` also ``produces`` (the step columns each can fill)."""
    import pandas as pd  # start-up: loads with the first table

    rows = [
        {
            "name": i.name,
            "framework": i.framework,
            "origin": i.origin,
            "description": i.description,
            "produces": list(getattr(i.parser, "produces", ())),
        }
        for i in available().values()
    ]
    return pd.DataFrame(rows, columns=columns or [*PARSER_VIEW, "produces"])


def get(name: str) -> Parser:
    """The parser called ``name``; UnknownParserError lists the valid names."""
    parsers = available()
    if name not in parsers:
        valid = ", ".join(parsers) or "none installed"
        raise UnknownParserError(
            f"unknown parser {name!r} (installed: {valid})",
            remedy="run `llmbench parsers` to list them",
        )
    return parsers[name].parser


def detect(head: Sequence[str], extra: Sequence[Parser] = ()) -> tuple[Parser | None, float]:
    """The most confident parser for these first lines, or (None, best score).

    ``extra`` are configured parser instances (the settings file's ``[generic]``)
    that take part beside the installed ones."""
    best, best_score = None, 0.0
    candidates = [(p.name, p) for p in extra] + [(i.name, i.parser) for i in available().values()]
    for name, parser in candidates:
        try:
            score = float(parser.detect(head))
        except Exception as e:
            warnings.warn(f"llmbench: parser {name!r} failed in detect(): {e}", stacklevel=2)
            continue
        if score > best_score:
            best, best_score = parser, score
    if best_score < DETECT_THRESHOLD:
        return None, best_score
    return best, best_score


# a second format in a file must be unmistakable (its own line shape, not a hint)
COMPANION_THRESHOLD = 0.9


def companions(head: Sequence[str], chosen: Parser, extra: Sequence[Parser] = ()) -> list[Parser]:
    """Other parsers that also recognise ``head`` (a file holding two formats, e.g.
    framework lines and MLPerf MLLOG records), one per family, ``chosen``'s excluded."""

    def family(p: Parser) -> str:
        return getattr(p, "family", "") or p.name

    found: dict[str, tuple[float, Parser]] = {}
    candidates = [*extra, *(i.parser for i in available().values())]
    for parser in candidates:
        if family(parser) == family(chosen):
            continue
        try:
            score = float(parser.detect(head))
        except Exception:
            continue  # detect() failures are reported by detect()
        if score >= COMPANION_THRESHOLD and score > found.get(family(parser), (0.0, None))[0]:
            found[family(parser)] = (score, parser)
    return [p for _, p in found.values()]
