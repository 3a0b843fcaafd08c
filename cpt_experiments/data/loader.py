"""The one loader of corpora and fetched files: ``datasets.load_dataset`` behind a one-request Hub check.

Local files and Hugging Face Hub datasets both open through :func:`open_dataset`, so a local JSONL file and a
streamed hub dataset behave the same downstream (:mod:`cpt_experiments.data.documents` reads corpora with it,
``python -m cpt_experiments.data.fetch`` the files it writes). A Hub id is checked with one request first
(:func:`hub_revision`), so no network fails in seconds with the fix instead of after ``datasets``' five retries.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cpt_experiments.errors import DataError

HUB_FIX = (
    "without network, fetch the data where the Hub is reachable (`python -m cpt_experiments.data.fetch "
    "--data-dir DIR`), copy DIR here and train with corpora=fetched paths.data_dir=DIR"
)
"""How to train without reaching the Hub; quoted by every Hub error."""
HUB_TIMEOUT_S = 10.0
"""Seconds to wait for the one reachability request before a Hub dataset is opened."""
_HUB_REVISIONS: dict[tuple[str, str | None], str] = {}  # (path, revision) -> commit: one request per process


def is_hub_id(path: str) -> bool:
    """True if ``datasets.load_dataset(path)`` would go to the Hub: not a local folder/file, not a builder name."""
    from datasets.packaged_modules import _PACKAGED_DATASETS_MODULES

    return path not in _PACKAGED_DATASETS_MODULES and not Path(path).expanduser().exists()


def hub_revision(path: str, revision: str | None = None) -> str | None:
    """The commit a Hub dataset resolves to, asked once per process with one request and no retries.

    Why: ``datasets`` retries an unreachable Hub five times with back-off (~25 s) and then reports a
    misleading file error; this check fails in seconds with the fix instead. Returns None for a local folder,
    a builder name (``json``) or when ``HF_HUB_OFFLINE``/``HF_DATASETS_OFFLINE`` is set (``datasets`` may then
    still serve a non-streamed dataset from its cache, and itself fails fast if it cannot).
    Raises DataError when the Hub is unreachable or does not have the dataset or revision.
    """
    import datasets

    if not is_hub_id(path) or datasets.config.HF_HUB_OFFLINE:
        return None
    if (path, revision) in _HUB_REVISIONS:
        return _HUB_REVISIONS[path, revision]
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    label = f"hub:{path}" + (f"@{revision}" if revision else "")
    try:
        sha = HfApi().dataset_info(path, revision=revision, timeout=HUB_TIMEOUT_S).sha
    except (RepositoryNotFoundError, RevisionNotFoundError) as exc:
        raise DataError(
            f"{label}: no such dataset or revision on the Hub, or it is gated/private "
            f"(check hub.path and hub.revision; for a gated dataset run `hf auth login`): {one_line(exc)}"
        ) from None
    except HfHubHTTPError as exc:
        raise DataError(f"{label}: the Hub refused the request ({one_line(exc)}); {HUB_FIX}") from None
    except Exception as exc:  # DNS, refused connection, timeout, proxy: whatever the HTTP client raises
        raise DataError(f"{label}: cannot reach the Hugging Face Hub ({one_line(exc)}); {HUB_FIX}") from None
    _HUB_REVISIONS[path, revision] = sha or ""
    return sha


def open_dataset(
    path: str,
    name: str | None = None,
    *,
    split: str,
    streaming: bool = True,
    revision: str | None = None,
    data_files: str | list[str] | None = None,
) -> Any:
    """``datasets.load_dataset`` for corpora and fetched files: a local builder (``json`` + ``data_files``), a
    local folder laid out like a Hub repository, or a Hub id (checked first with :func:`hub_revision`)."""
    import datasets

    hub_revision(path, revision)
    kwargs: dict[str, Any] = {"split": split, "streaming": streaming}
    if revision is not None:
        kwargs["revision"] = revision
    if data_files is not None:
        kwargs["data_files"] = data_files
    try:
        return datasets.load_dataset(path, name, **kwargs)
    except ConnectionError as exc:  # offline mode (no request was made) or the Hub went away after the check
        label = f"hub:{path}" + (f"/{name}" if name else "")
        if datasets.config.HF_HUB_OFFLINE:
            raise DataError(
                f"{label}: HF_HUB_OFFLINE or HF_DATASETS_OFFLINE is set and the dataset is not in the local cache; "
                f"unset them where the Hub is reachable, or {HUB_FIX}"
            ) from None
        raise DataError(f"{label}: {one_line(exc)}; {HUB_FIX}") from None


def one_line(exc: BaseException) -> str:
    """An exception's message on one line, at most 300 characters: error messages here are one line each."""
    return " ".join(str(exc).split())[:300]
