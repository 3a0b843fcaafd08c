"""Exceptions for bad input: each carries a one-line message naming the config key or file."""

from __future__ import annotations


class CPTError(Exception):
    """Base class: a problem the user can fix; the message is one line and names its cause."""


class ConfigError(CPTError, ValueError):
    """A config value is invalid. The message starts with the dotted key, e.g. ``replay.ratio: ...``."""


class DataError(CPTError):
    """A data file or corpus is missing, empty, undecodable or inconsistent. The message names the file."""


class CacheError(CPTError):
    """A cache entry (tokens, stage checkpoint) is truncated or corrupted."""


def config_error(key: str, problem: str) -> ConfigError:
    """Build a ConfigError whose message is ``"<key>: <problem>"`` on a single line."""
    return ConfigError(f"{key}: {problem}".replace("\n", " "))
