"""Where data files live, and how a missing one is fetched from its public source.

A file found in place is checked by its *contents* (a ``validate`` callable: keys, shapes, dtypes,
value ranges), not by its sha256: offline copies may hold the same arrays written by another
compressor. A file that has to be downloaded is checked by its sha256 before it is moved into place,
so a truncated or tampered download never lands under its final name.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

ENV_VAR = "VAE_LAB_DATA_DIR"

_CHUNK = 1 << 20


class DataError(RuntimeError):
    """A data file is missing, cannot be downloaded, or has the wrong contents.

    The message is always a single line: the command line prints it without a traceback.
    """

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


def default_data_dir() -> Path:
    """``$VAE_LAB_DATA_DIR`` if set, else ``$XDG_CACHE_HOME/vae-lab``, else ``~/.cache/vae-lab``."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME")
    base = Path(cache).expanduser() if cache else Path.home() / ".cache"
    return base / "vae-lab"


def resolve_data_dir(data_dir: str | os.PathLike[str] | None) -> Path:
    """``data_dir`` as a Path, or :func:`default_data_dir` when it is None or empty."""
    if data_dir is None or str(data_dir) == "":
        return default_data_dir()
    return Path(data_dir).expanduser()


def sha256_of(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _validate(path: Path, validate: Callable[[Path], object] | None, *, hint: str) -> None:
    if validate is None:
        return
    try:
        validate(path)
    except DataError as err:
        raise DataError(f"{err} ({hint})") from err
    except Exception as err:  # a reader that fails on garbage in its own way: still one line
        raise DataError(f"{path} is unreadable: {type(err).__name__}: {err} ({hint})") from err


def _progress(total: int | None, desc: str, enabled: bool):
    """A tqdm bar on stderr (tqdm comes with Lightning); a no-op when disabled or tqdm is missing."""
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a Lightning dependency
        enabled = False
    if not enabled:

        class _Null:
            def update(self, n: int) -> None: ...

            def close(self) -> None: ...

        return _Null()
    return tqdm(
        total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr, leave=False
    )


def fetch(
    filename: str,
    folder: str | os.PathLike[str],
    url: str,
    sha256: str | None,
    validate: Callable[[Path], object] | None = None,
    *,
    timeout: float = 60.0,
    progress: bool = True,
) -> Path:
    """Return ``folder/filename``, downloading it from ``url`` first if it is not there.

    A file in place is checked with ``validate(path)`` only (its sha256 may legitimately differ from
    upstream's). A download streams into a temporary file in ``folder``, must match ``sha256``, and is
    then renamed into place atomically (so concurrent runs never see half a file) and validated.
    ``sha256=None`` means no trusted checksum is known: such a file is never downloaded.

    Raises:
        DataError: one line naming the file, the folder and the URL when the download fails, the
            expected and actual hash on a mismatch (the partial file is removed), or the reason
            ``validate`` gave for wrong contents.
    """
    folder = Path(folder)
    path = folder / filename
    if path.is_file():
        _validate(path, validate, hint=f"delete it to download it again from {url}")
        return path

    where = f"{filename} is not in {folder}"
    if not sha256:
        raise DataError(
            f"{where} and no trusted sha256 is known for {url}, so it is not downloaded; "
            f"put the file there yourself or set {ENV_VAR} to a folder that has it"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(
            f"{where} and the folder cannot be created ({err.strerror or err}); "
            f"set {ENV_VAR} to a writable folder"
        ) from err

    fd, tmp_name = tempfile.mkstemp(prefix=f".{filename}.", suffix=".part", dir=folder)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            try:
                request = urllib.request.Request(url, headers={"User-Agent": "vae-lab"})
                with urllib.request.urlopen(request, timeout=timeout) as response:
                    length = response.headers.get("Content-Length")
                    bar = _progress(
                        int(length) if length and length.isdigit() else None,
                        f"downloading {filename}",
                        progress,
                    )
                    try:
                        for chunk in iter(lambda: response.read(_CHUNK), b""):
                            out.write(chunk)
                            digest.update(chunk)
                            bar.update(len(chunk))
                    finally:
                        bar.close()
            except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as err:
                if isinstance(err, urllib.error.HTTPError):
                    reason = f"HTTP {err.code} {err.reason}"
                else:
                    reason = getattr(err, "reason", None) or err
                raise DataError(
                    f"{where} and downloading it from {url} failed ({reason}); offline? put "
                    f"the file there yourself or set {ENV_VAR} to a folder that has it"
                ) from err
        actual = digest.hexdigest()
        if actual != sha256.lower():
            raise DataError(
                f"checksum mismatch for {filename} downloaded from {url}: expected sha256 "
                f"{sha256.lower()}, got {actual}; the download was discarded"
            )
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide a shared data folder from other users
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # a failed or refused download leaves nothing behind
    _validate(path, validate, hint=f"downloaded from {url}")
    return path
