"""Installing fake plugin distributions for tests: real dist-info folders on sys.path."""
import uuid
from pathlib import Path

import pytest

def fake_distribution(root: Path, entry: str, source: str) -> str:
    """Install a distribution the way pip does (a dist-info with entry_points.txt) under root."""
    module = f"mh_fake_{entry}_{uuid.uuid4().hex[:8]}"
    info = root / f"{module}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[myhibachi.plugins]\n{entry} = {module}:plugin\n")
    (root / f"{module}.py").write_text(source)
    return module

@pytest.fixture
def site(tmp_path, monkeypatch):
    """A folder on sys.path that fake distributions are installed into."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    for var in ("MYHIBACHI_PLUGINS", "MYHIBACHI_DISABLED_PLUGINS", "MYHIBACHI_STRICT_PLUGINS",
                "MYHIBACHI_TRACE_HOOKS"):
        monkeypatch.delenv(var, raising=False)
    return root
