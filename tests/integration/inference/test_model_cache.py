"""The packaged model's conversion cache when several processes start at once on an
empty cache (API and inference nodes sharing a volume, parallel test workers): one
converts, the others wait for it and use its result, and nobody reads a folder that
another is replacing."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.model

CONVERT = """
import json, os, sys
from pathlib import Path
from inference.loader import ensure_default_cache
folder, marker = ensure_default_cache(Path(sys.argv[1]))
print(json.dumps({"inode": os.stat(folder).st_ino, "marker": marker}))
"""


def test_processes_starting_at_once_convert_the_model_once(tmp_path: Path) -> None:
    cache = tmp_path / "models"
    starts = [
        subprocess.Popen(
            [sys.executable, "-c", CONVERT, str(cache)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    results = []
    for process in starts:
        out, _ = process.communicate(timeout=600)
        assert process.returncode == 0
        results.append(json.loads(out.strip().splitlines()[-1]))
    # Both use the same folder: the second did not convert again and swap it in.
    assert results[0] == results[1]
    left = sorted(p.name for p in cache.iterdir())
    assert left == [".smollm2-135m-instruct.lock", "smollm2-135m-instruct"]  # no staging left
