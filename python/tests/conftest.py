"""Shared fixtures of the Python package's tests (run by tests/test_python.sh)."""
import os
import shutil
import signal
import subprocess
import time
import urllib.request

import pytest

import ragcore

ADMIN_KEY = "python-test-admin-key-0123456789"


@pytest.fixture
def db(tmp_path):
    with ragcore.open(tmp_path / "store", embedder="hash") as d:
        yield d


@pytest.fixture
def corpus():
    return [
        {"id": "cats", "text": "Cats sleep most of the day and hunt at night.",
         "metadata": {"lang": "en", "year": 2021, "tags": ["pets"]}},
        {"id": "dogs", "text": "Dogs enjoy long walks and playing fetch in the park.",
         "metadata": {"lang": "en", "year": 2018}},
        {"id": "chats", "text": "Les chats dorment beaucoup pendant la journee.",
         "metadata": {"lang": "fr", "year": 2022}},
        {"id": "guide", "format": "markdown", "title": "Guide",
         "text": "# Install\n\nRun make build.\n\n## Linux\n\nUse tools/setup.sh first.\n"},
    ]


def _bin(name):
    b = os.environ.get("RAGCORE_BIN")
    path = os.path.join(b, name) if b else shutil.which(name)
    return path if path and os.path.exists(path) else None


@pytest.fixture
def server(tmp_path):
    """A ragcore-server on a fresh store (hash embedder), with an admin key."""
    exe = _bin("ragcore-server")
    if exe is None:
        pytest.skip("ragcore-server not built (RAGCORE_BIN)")
    port_file = tmp_path / "port"
    env = dict(os.environ, RAGCORE_ADMIN_KEY=ADMIN_KEY)
    p = subprocess.Popen([exe, "--db", str(tmp_path / "srv"), "--embedder", "hash",
                          "--listen", "127.0.0.1:0", "--port-file", str(port_file)],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = None
        for _ in range(200):
            if port_file.exists() and port_file.read_text().strip():
                url = f"http://127.0.0.1:{port_file.read_text().strip()}"
                try:
                    urllib.request.urlopen(url + "/readyz", timeout=1)
                    break
                except OSError:
                    pass
            time.sleep(0.05)
        else:
            pytest.fail("ragcore-server did not become ready")
        yield url
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)
