"""Settings a log does not contain, with where each value came from.

Precedence, last wins (DESIGN.md): the log itself, then what the file's place tells
(an MLPerf submission tree's layout and system description: ``ingest.LAYER_HOOKS``),
then ``--path-pattern``, then
the settings file (TOML), then ``--set key=value``. A settings file holds
top-level keys that apply to every file, ``[files."<glob>"]`` tables that apply
to matching paths, an optional ``path_pattern``, and ``[models.<name>]`` tables
(model shapes for the metrics layer). It is data only: nothing in it is run.
"""

from __future__ import annotations

import difflib
import fnmatch
import hashlib
import json
import os
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from . import __version__
from .columns import FORMULA_NAMES, INT_SETTINGS, KNOWN_SETTINGS
from .errors import SettingsError
from .parsing import literal
from .shapes import shape_keys
from .specs import find_accelerator, find_model, model_names, similar_accelerators

_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_FIELD_RE = re.compile(r"\{([^{}]*)\}")


def normalise_key(key: str) -> str:
    """``global-batch-size`` -> ``global_batch_size``."""
    return key.strip().replace("-", "_")


def coerce(key: str, value: Any) -> Any:
    """Give a setting the type its column has (``"128"`` -> 128 for num_gpus)."""
    if isinstance(value, str):
        value = literal(value)
    if key in INT_SETTINGS and isinstance(value, float) and value.is_integer():
        return int(value)
    if key == "dtype" and isinstance(value, str):
        return value.lower()
    return value


def parse_set(items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Parse ``--set key=value`` items; SettingsError names the bad item."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = normalise_key(key)
        if not sep or not key or not _KEY_RE.match(key):
            raise SettingsError(
                f"malformed --set {item!r}", remedy="write --set key=value, e.g. --set num_gpus=128"
            )
        out[key] = coerce(key, value)
    return out


def check_setting(key: str, value: Any, origin: str, models: dict | None = None) -> None:
    """SettingsError when ``key`` looks like a misspelt setting, or ``value`` names an
    accelerator the catalog lacks or a model a letter away from a catalogued one."""
    if key not in KNOWN_SETTINGS:
        close = difflib.get_close_matches(key, sorted(KNOWN_SETTINGS), n=1, cutoff=0.8)
        if close:
            raise SettingsError(
                f"{origin}: unknown setting {key!r}",
                remedy=f"did you mean {close[0]}? (names no setting is close to are kept as "
                "free-form settings)",
            )
    if value is None or not isinstance(value, str):
        return
    if key == "flops_formula" and value not in FORMULA_NAMES:
        close = difflib.get_close_matches(value, FORMULA_NAMES, n=1, cutoff=0.6)
        raise SettingsError(
            f"{origin}: flops_formula {value!r} is not a formula",
            remedy=(f"did you mean {close[0]}? " if close else "")
            + f"({', '.join(FORMULA_NAMES)})",
        )
    if key == "accelerator" and find_accelerator(value) is None:
        close = similar_accelerators(value)
        known = "`llmbench hardware` lists the names known"
        hint = f"did you mean {' or '.join(close)}? ({known})" if close else known
        raise SettingsError(f"{origin}: accelerator {value!r} is not in the catalog", remedy=hint)
    if key == "model" and find_model(value, None, models) is None:
        close = difflib.get_close_matches(value.lower(), model_names(), n=1, cutoff=0.85)
        if close:
            raise SettingsError(
                f"{origin}: model {value!r} is not in the catalog",
                remedy=f"did you mean {close[0]}? (`llmbench models` lists the catalog; another "
                "name needs its shape: num_layers, ...)",
            )


#: the file a Hugging Face model's shape is in, looked for beside each log
MODEL_CONFIG = "config.json"


class Fill(dict):
    """A settings layer's values that fill only what the log leaves unset (a file found
    beside the log is a hint, not the user's word; ``frames.run_rows`` reads ``fill``)."""

    fill = True


def read_model_config(path: str) -> dict[str, Any]:
    """The shape keys of a Hugging Face ``config.json`` (``shapes.shape_keys``);
    SettingsError naming the file when it is not JSON or holds no model shape."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise SettingsError("model config not found", path=path) from None
    except (OSError, UnicodeDecodeError) as e:
        raise SettingsError(f"cannot read model config: {e}", path=path) from None
    except json.JSONDecodeError as e:
        raise SettingsError(f"not JSON: {e.msg}", path=path, line=e.lineno) from None
    values = shape_keys(data) if isinstance(data, dict) else {}
    if "num_layers" not in values or "hidden_size" not in values:
        raise SettingsError(
            "no model shape in this file (no num_hidden_layers and hidden_size)",
            path=path,
            remedy="give a Hugging Face config.json (the model's, not a tokenizer's or a trainer's)",
        )
    return values


def config_beside(
    path: str, cache: dict[str, Any] | None = None
) -> tuple[str, dict[str, Any]] | None:
    """(origin, shape keys) of a Hugging Face ``config.json`` in the log's folder, or None
    (no such file, or one that is no model's): a ``Fill`` layer, below what the log
    prints. ``cache``: folder -> its layer."""
    folder = os.path.dirname(os.path.abspath(path))
    if cache is not None and folder in cache:
        return cache[folder]
    found = None
    candidate = os.path.join(folder, MODEL_CONFIG)
    if os.path.isfile(candidate):
        try:
            found = (f"model config {candidate}", Fill(read_model_config(candidate)))
        except SettingsError:
            found = None
    if cache is not None:
        cache[folder] = found
    return found


class PathPattern:
    """``'{dtype}/{model}/{num_gpus}/'``: settings taken from path components."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        parts: list[str] = []
        pos = 0
        names: list[str] = []
        for m in _FIELD_RE.finditer(pattern):
            parts.append(re.escape(pattern[pos : m.start()]))
            name = normalise_key(m.group(1))
            if not name or not _KEY_RE.match(name) or "." in name or name in names:
                raise SettingsError(
                    f"--path-pattern {pattern!r}: bad or repeated field {{{m.group(1)}}}",
                    remedy="name each field once, e.g. '{dtype}/{model}/{num_gpus}/'",
                )
            names.append(name)
            parts.append(f"(?P<{name}>[^/]+)")
            pos = m.end()
        parts.append(re.escape(pattern[pos:]))
        self.fields = names
        if not names or pattern.count("{") != len(names) or pattern.count("}") != len(names):
            raise SettingsError(
                f"--path-pattern {pattern!r} has no {{field}} or an unbalanced brace",
                remedy="write fields in braces, e.g. '{dtype}/{model}/{num_gpus}/'",
            )
        self.regex = re.compile("".join(parts))

    def match(self, path: str) -> dict[str, Any] | None:
        """Values from the path components nearest the file (the rightmost match)."""
        full = os.path.abspath(path).replace(os.sep, "/")
        starts = [0] + [i + 1 for i, ch in enumerate(full) if ch == "/"]
        for pos in reversed(starts):
            m = self.regex.match(full, pos)
            if m is not None:
                return {k: coerce(k, v) for k, v in m.groupdict().items()}
        return None


def _toml_error(path: str, e: tomllib.TOMLDecodeError) -> SettingsError:
    m = re.search(r"at line (\d+)", str(e))
    return SettingsError(
        f"not valid TOML: {e}",
        path=path,
        line=int(m.group(1)) if m else None,
        remedy='fix the settings file (TOML: key = value, [files."glob"] tables)',
    )


@dataclass
class Settings:
    """Everything the user supplied beside the logs."""

    cli: dict[str, Any] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    files: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    generic: dict[str, Any] = field(default_factory=dict)  # the [generic] parser's patterns
    settings_file: str | None = None
    path_pattern: PathPattern | None = None
    model_config: tuple[str, dict[str, Any]] | None = None  # (path, shape keys)

    @classmethod
    def build(
        cls,
        set_items: list[str] | tuple[str, ...] = (),
        settings_file: str | None = None,
        path_pattern: str | None = None,
        values: dict[str, Any] | None = None,
        model_config: str | None = None,
    ) -> Settings:
        """Settings from CLI-style inputs; ``values`` acts like ``--set`` (notebooks);
        ``model_config``: a Hugging Face config.json giving the model's shape."""
        s = cls(cli=parse_set(list(set_items)))
        for k, v in (values or {}).items():
            s.cli[normalise_key(k)] = coerce(normalise_key(k), v)
        if settings_file:
            s._load_file(settings_file)
        if path_pattern:
            s.path_pattern = PathPattern(path_pattern)
        if model_config:
            s.model_config = (model_config, read_model_config(model_config))
        s.validate()
        return s

    def validate(self) -> None:
        """SettingsError (exit 2) for a typo: a key close to a known setting but not
        one (``num_gpu``), an accelerator not in the catalog, a model name close to a
        catalogued one. Other keys are kept as free-form settings (in ``config``)."""
        where = f"settings file {self.settings_file}" if self.settings_file else "the settings"
        layers = [("--set", self.cli), (where, self.defaults)]
        layers += [(f"{where} [files.{g!r}]", v) for g, v in self.files]
        if self.path_pattern is not None:
            fields = dict.fromkeys(self.path_pattern.fields, None)
            layers.append((f"--path-pattern {self.path_pattern.pattern!r}", fields))
        for origin, values in layers:
            for key, value in values.items():
                check_setting(key, value, origin, self.models)

    def _load_file(self, path: str) -> None:
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except FileNotFoundError:
            raise SettingsError("settings file not found", path=path) from None
        except tomllib.TOMLDecodeError as e:
            raise _toml_error(path, e) from None
        except OSError as e:
            raise SettingsError(f"cannot read settings file: {e}", path=path) from None
        self.settings_file = path
        for key, value in data.items():
            if key == "files":
                if not isinstance(value, dict) or not all(
                    isinstance(v, dict) for v in value.values()
                ):
                    raise SettingsError('[files."<glob>"] must hold tables', path=path)
                for pattern, table in value.items():
                    self.files.append(
                        (
                            pattern,
                            {
                                normalise_key(k): coerce(normalise_key(k), v)
                                for k, v in table.items()
                            },
                        )
                    )
            elif key == "models":
                if not isinstance(value, dict):
                    raise SettingsError("[models.<name>] must hold tables", path=path)
                self.models.update(value)
            elif key == "generic":
                if not isinstance(value, dict):
                    raise SettingsError("[generic] must be a table", path=path)
                self.generic = value
            elif key == "path_pattern":
                if self.path_pattern is None:
                    self.path_pattern = PathPattern(str(value))
            elif isinstance(value, dict):
                raise SettingsError(
                    f"unknown table [{key}]",
                    path=path,
                    remedy='use top-level keys, [files."<glob>"], [models.<name>] or [generic]',
                )
            else:
                k = normalise_key(key)
                self.defaults[k] = coerce(k, value)

    def layers(
        self, path: str, found: Iterable[tuple[str, dict[str, Any]]] = ()
    ) -> list[tuple[str, dict[str, Any]]]:
        """The (origin, values) layers that apply to ``path``, lowest precedence first:
        ``found`` (what the file's place tells, e.g. an MLPerf submission tree: see
        ``ingest.LAYER_HOOKS``), then the path pattern, the settings file and --set."""
        out: list[tuple[str, dict[str, Any]]] = list(found)
        if self.path_pattern is not None:
            found = self.path_pattern.match(path)
            if found:
                out.append((f"path-pattern {self.path_pattern.pattern}", found))
        if self.model_config is not None:
            out.append((f"model config {self.model_config[0]}", self.model_config[1]))
        if self.defaults:
            out.append((f"settings {self.settings_file}", self.defaults))
        full = os.path.abspath(path).replace(os.sep, "/")
        for pattern, values in self.files:
            if (
                fnmatch.fnmatch(full, pattern)
                or fnmatch.fnmatch(full, "*/" + pattern.lstrip("/"))
                or fnmatch.fnmatch(os.path.basename(path), pattern)
            ):
                out.append((f"settings {self.settings_file} [files.{pattern!r}]", values))
        if self.cli:
            out.append(("command line --set", self.cli))
        return out

    @property
    def given(self) -> bool:
        """Whether the user gave anything (a ``--set``, a settings file, a pattern)."""
        return bool(
            self.cli
            or self.defaults
            or self.files
            or self.models
            or self.generic
            or self.settings_file
            or self.path_pattern
            or self.model_config
        )

    def over(self, before: Settings) -> Settings:
        """These settings on top of ``before`` (what was given with a file at an earlier
        ingest): each kind of input given now replaces its own (a settings file the
        earlier file and all it held, ``--path-pattern`` the earlier pattern), and
        ``--set`` items replace those of the same name."""
        base = self if self.settings_file else before
        return Settings(
            cli={**before.cli, **self.cli},
            defaults=base.defaults,
            files=base.files,
            models=base.models,
            generic=base.generic,
            settings_file=base.settings_file,
            path_pattern=self.path_pattern or before.path_pattern,
            model_config=self.model_config or before.model_config,
        )

    def as_dict(self) -> dict[str, Any]:
        """The settings as plain values (``from_dict`` reads them back): what an ingest
        keeps with each file, to read it again the same way."""
        return {
            "cli": self.cli,
            "defaults": self.defaults,
            "files": self.files,
            "models": self.models,
            "generic": self.generic,
            "settings_file": self.settings_file,
            "path_pattern": self.path_pattern.pattern if self.path_pattern else None,
            "model_config": list(self.model_config) if self.model_config else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        """Settings from ``as_dict``'s values (no file is read again)."""
        pattern = data.get("path_pattern")
        return cls(
            cli=data.get("cli") or {},
            defaults=data.get("defaults") or {},
            files=[(g, v) for g, v in data.get("files") or []],
            models=data.get("models") or {},
            generic=data.get("generic") or {},
            settings_file=data.get("settings_file"),
            path_pattern=PathPattern(pattern) if pattern else None,
            model_config=tuple(data["model_config"]) if data.get("model_config") else None,
        )

    def model_shape(self, name: Any, family: str | None = None) -> tuple[str, dict] | None:
        """(origin, shape values) of a ``[models.NAME]`` table matching ``name``, or None."""
        if not self.models or name is None:
            return None

        found = find_model(name, family, self.models)
        if found is None or found[0] not in self.models:
            return None
        key, spec = found
        values = {normalise_key(k): coerce(normalise_key(k), v) for k, v in spec.items()}
        return f"settings {self.settings_file} [models.{key}]", values

    def fingerprint(
        self,
        path: str,
        parser: str | None = None,
        layers: list[tuple[str, dict[str, Any]]] | None = None,
    ) -> str:
        """A hash of what applies to ``path`` (``layers``, when already computed) and
        of the llmbench version: a change means re-ingest."""

        blob = json.dumps(
            [
                self.layers(path) if layers is None else layers,
                self.models,
                self.generic,
                parser,
                __version__,
            ],
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]
