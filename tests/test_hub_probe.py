"""The Hub probe goes through huggingface_hub's HTTP session: it honours HF_ENDPOINT and the proxy variables, and
fails fast. A local HTTP server stands in for the Hub and for a proxy (nothing leaves the machine)."""

from __future__ import annotations

import http.server
import threading

import pytest


@pytest.fixture
def local_server():
    requests: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):  # http.server calls it by this name
            requests.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", requests
    server.shutdown()


@pytest.fixture
def online(monkeypatch):
    """Offline mode off for this test (conftest turns it on), a fresh probe and a fresh HTTP session."""
    import huggingface_hub.constants
    from huggingface_hub.utils import close_session

    from finetune.hub import hub_is_reachable

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    hub_is_reachable.cache_clear()
    close_session()
    yield hub_is_reachable
    hub_is_reachable.cache_clear()
    close_session()


def test_the_probe_asks_the_configured_endpoint(online, local_server, monkeypatch):
    url, requests = local_server
    monkeypatch.setenv("HF_ENDPOINT", url)
    assert online() is True and requests == ["/"]


def test_the_probe_goes_through_the_proxy(online, local_server, monkeypatch):
    url, requests = local_server
    monkeypatch.setenv("HF_ENDPOINT", "http://hub.invalid")  # resolvable only by the proxy
    monkeypatch.setenv("HTTP_PROXY", url)
    assert online() is True and requests == ["http://hub.invalid/"]


def test_an_endpoint_that_does_not_answer_is_unreachable(online, monkeypatch):
    import socket

    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    assert online(timeout=2.0) is False


def test_offline_mode_needs_no_probe(monkeypatch):
    from finetune.hub import hub_is_reachable

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub_is_reachable.cache_clear()
    assert hub_is_reachable() is False
    hub_is_reachable.cache_clear()
