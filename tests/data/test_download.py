"""fetch(): files in place are checked by contents, downloads by sha256; failures are one-line DataErrors."""

from __future__ import annotations

import functools
import hashlib
import http.server
import socket
import threading
from pathlib import Path

import pytest

from vae_lab.data.download import DataError, default_data_dir, fetch, resolve_data_dir

PAYLOAD = b"vae-lab test payload\n" * 1000
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - keep pytest output clean
        pass


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A local HTTP server on 127.0.0.1 (free port) serving payload.bin; yields its base URL."""
    root = tmp_path_factory.mktemp("www")
    (root / "payload.bin").write_bytes(PAYLOAD)
    handler = functools.partial(_QuietHandler, directory=root)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def closed_port_url(name: str) -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/{name}"


def test_default_data_dir_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("VAE_LAB_DATA_DIR", str(tmp_path / "data"))
    assert default_data_dir() == tmp_path / "data"
    assert resolve_data_dir(None) == tmp_path / "data"
    assert resolve_data_dir(tmp_path) == tmp_path
    monkeypatch.delenv("VAE_LAB_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_data_dir() == tmp_path / "cache" / "vae-lab"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_data_dir() == Path.home() / ".cache" / "vae-lab"


def test_data_error_is_one_line():
    assert str(DataError("first\nsecond  third\n")) == "first second third"


def test_download_with_matching_checksum(server, tmp_path):
    seen = []
    folder = tmp_path / "new" / "folder"  # created on demand
    path = fetch(
        "payload.bin", folder, f"{server}/payload.bin", PAYLOAD_SHA, validate=seen.append, progress=False
    )
    assert path == folder / "payload.bin"
    assert path.read_bytes() == PAYLOAD
    assert seen == [path]
    assert sorted(p.name for p in folder.iterdir()) == ["payload.bin"]  # no temporary file left
    assert path.stat().st_mode & 0o777 == 0o644


def test_download_with_wrong_checksum_leaves_nothing(server, tmp_path):
    wrong = "0" * 64
    with pytest.raises(DataError) as info:
        fetch("payload.bin", tmp_path, f"{server}/payload.bin", wrong, progress=False)
    message = str(info.value)
    assert "\n" not in message
    assert "payload.bin" in message and wrong in message and PAYLOAD_SHA in message
    assert list(tmp_path.iterdir()) == []


def test_unreachable_url_names_file_folder_and_url(tmp_path):
    url = closed_port_url("mnist.npz")
    with pytest.raises(DataError) as info:
        fetch("mnist.npz", tmp_path, url, PAYLOAD_SHA, timeout=5, progress=False)
    message = str(info.value)
    assert "\n" not in message
    assert "mnist.npz" in message and str(tmp_path) in message and url in message
    assert "VAE_LAB_DATA_DIR" in message
    assert list(tmp_path.iterdir()) == []


def test_http_error_is_a_data_error(server, tmp_path):
    with pytest.raises(DataError, match="404"):
        fetch("missing.bin", tmp_path, f"{server}/missing.bin", PAYLOAD_SHA, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_no_checksum_refuses_to_download(server, tmp_path):
    with pytest.raises(DataError, match="no trusted sha256"):
        fetch("payload.bin", tmp_path, f"{server}/payload.bin", None, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_file_in_place_is_validated_not_hashed(tmp_path):
    # A copy that differs byte-wise from upstream (like the offline mnist.npz) is accepted on its contents;
    # the URL is never contacted.
    (tmp_path / "data.txt").write_text("fine")
    seen = []
    path = fetch("data.txt", tmp_path, closed_port_url("data.txt"), PAYLOAD_SHA, validate=seen.append)
    assert path == tmp_path / "data.txt" and seen == [path]


def test_corrupt_file_in_place_is_a_one_line_data_error(tmp_path):
    (tmp_path / "data.txt").write_text("garbage")

    def validate(p: Path) -> None:
        raise DataError(f"{p}: wrong shape\n(2, 3)")

    with pytest.raises(DataError) as info:
        fetch("data.txt", tmp_path, "http://example.invalid/data.txt", PAYLOAD_SHA, validate=validate)
    message = str(info.value)
    assert "\n" not in message and "wrong shape" in message and "delete it" in message

    def crashing(p: Path) -> None:
        raise ValueError("cannot parse\nline 3")

    with pytest.raises(DataError, match="unreadable: ValueError: cannot parse line 3"):
        fetch("data.txt", tmp_path, "http://example.invalid/data.txt", PAYLOAD_SHA, validate=crashing)
