"""A session fixture: localstripe, a local Stripe API the real ``stripe`` SDK talks to."""
from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.fixture(scope="session")
def localstripe_url():
    from tests.conftest import free_port, wait_for_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "localstripe", "--port", str(port), "--from-scratch"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
