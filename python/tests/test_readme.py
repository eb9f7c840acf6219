"""The README's Python quick start, run as written (extracted from README.md)."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(os.environ.get("RAGCORE_SOURCE_DIR", Path(__file__).resolve().parents[2]))


def _python_blocks(md):
    return re.findall(r"```python\n(.*?)```", md.read_text(), re.S)


@pytest.mark.parametrize("md", ["README.md", "python/README.md"])
def test_quick_start_runs(md, tmp_path):
    blocks = _python_blocks(ROOT / md)
    assert blocks, f"{md} has no Python example"
    code = blocks[0].replace('"/tmp/kb"', repr(str(tmp_path / "kb")))
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                       text=True, timeout=300,
                       env=dict(os.environ, TMPDIR=str(tmp_path), HOME=os.environ["HOME"]))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip(), "the example printed nothing"
