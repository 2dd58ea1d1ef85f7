"""/metrics, the dashboard's login and events, and `top --once`, against two real daemons on
127.0.0.1 moving real blocks between them."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemons import Daemon, connect, finish, run, start_daemon, start_fetch

pytestmark = pytest.mark.slow

TRANSFER = 12 << 20


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, Daemon]]:
    base = tmp_path_factory.mktemp("observe")
    a = start_daemon(base / "a")
    try:
        b = start_daemon(base / "b")
    except BaseException:
        a.stop()
        raise
    try:
        connect(a, b)
        yield a, b
    finally:
        b.stop()
        a.stop()


def test_counters_move_during_a_transfer_and_the_exposition_parses(pair) -> None:
    a, b = pair
    before_a, before_b = a.scrape(), b.scrape()
    _, fetch = start_fetch(a, b, TRANSFER, "metrics.bin")
    during = []
    while fetch.poll() is None and len(during) < 50:
        during.append(b.scrape())  # every scrape while blocks move must parse
    finish(fetch)
    after_a, after_b = a.scrape(), b.scrape()
    assert during

    def grew(before: dict, after: dict, name: str, by: float = 1) -> None:
        assert after[name] - before.get(name, 0) >= by, (name, before.get(name), after[name])

    grew(before_b, after_b, "blockmesh_bitswap_blocks_received_total")
    grew(before_b, after_b, "blockmesh_bitswap_received_bytes_total", TRANSFER)
    grew(before_b, after_b, "blockmesh_bitswap_messages_received_total")
    grew(before_a, after_a, "blockmesh_bitswap_blocks_sent_total")
    grew(before_a, after_a, "blockmesh_bitswap_sent_bytes_total", TRANSFER)
    grew(before_b, after_b, 'blockmesh_blockstore_operations_total{op="put"}')
    grew(before_b, after_b, 'blockmesh_libp2p_bandwidth_bytes_total{direction="in"}', TRANSFER)
    grew(before_a, after_a, 'blockmesh_libp2p_bandwidth_bytes_total{direction="out"}', TRANSFER)
    bitswap_out = [name for name in after_a if name.startswith(
        'blockmesh_libp2p_protocol_bandwidth_bytes_total{direction="out",protocol="/ipfs/bitswap')]
    assert bitswap_out and sum(after_a[name] for name in bitswap_out) >= TRANSFER
    grew(before_a, after_a, 'blockmesh_blockstore_operation_bytes_total{op="get"}', TRANSFER)
    # Neither daemon is a cluster member: its peer is in the "other" group. The ledgers are
    # sampled once a second, so wait for the sample after the transfer.
    deadline = time.monotonic() + 5
    while (b.scrape()['blockmesh_bitswap_peer_group_received_bytes_total{peer_group="other"}']
           < TRANSFER and time.monotonic() < deadline):
        time.sleep(0.2)
    final = b.scrape()
    assert final['blockmesh_bitswap_peer_group_received_bytes_total{peer_group="other"}'] \
        >= TRANSFER
    assert final['blockmesh_bitswap_peer_group_received_bytes_total{peer_group="cluster"}'] == 0
    assert final["blockmesh_libp2p_peers"] == 1
    assert final['blockmesh_libp2p_connections{direction="outbound"}'] == 1
    assert any(name.startswith('blockmesh_libp2p_streams{protocol="/ipfs/bitswap/')
               for name in final)
    for scrape in during:  # counters never go backwards
        assert scrape["blockmesh_bitswap_blocks_received_total"] <= \
            after_b["blockmesh_bitswap_blocks_received_total"]


def test_metrics_and_pages_need_the_token(pair) -> None:
    _, b = pair
    for path in ("/metrics", "/dashboard", "/events", "/dashboard/app.js"):
        status, _, body = b.get(path)
        assert status == 403, path
        assert "token" in json.loads(body)["error"]
        assert b.get(path, {"Authorization": "Bearer nope"})[0] == 403
    assert b.get("/dashboard?login=made-up")[0] == 403
    assert b.get("/nothing", token=True)[0] == 404


def test_one_time_login_sets_a_session_cookie(pair) -> None:
    _, b = pair
    url = json.loads(run(b.repo, "dashboard", "--json").stdout)["url"]
    path = url[url.index("/dashboard"):]
    status, headers, _ = b.get(path)
    assert status == 303 and headers["location"] == "/dashboard"
    cookie = headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    name_value = cookie.split(";", 1)[0]
    assert name_value.startswith(f"blockmesh_session_{b.api.port}=")
    assert b.get(path)[0] == 403  # the login token is dead now

    status, headers, page = b.get("/dashboard", {"Cookie": name_value})
    assert status == 200 and b'id="peers"' in page
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert b.get("/dashboard/app.js", {"Cookie": name_value})[0] == 200
    assert b.get("/metrics", {"Cookie": name_value})[0] == 200
    # Another page of this host (the gateway's, on another port) cannot ride on the cookie.
    assert b.get("/dashboard", {"Cookie": name_value, "Sec-Fetch-Site": "same-site"})[0] == 403
    # The cookie opens the read-only pages only, never the control API.
    api = b.api
    import http.client

    conn = http.client.HTTPConnection(api.host, api.port, timeout=10)
    conn.request("POST", "/api/v0/id", body=b"{}", headers={"Cookie": name_value})
    assert conn.getresponse().status == 403
    conn.close()


def test_events_stream_snapshots(pair) -> None:
    a, b = pair
    api = b.api
    import http.client

    conn = http.client.HTTPConnection(api.host, api.port, timeout=10)
    try:
        conn.request("GET", "/events", headers={"Authorization": f"Bearer {api.token}"})
        response = conn.getresponse()
        assert response.status == 200
        assert response.getheader("content-type") == "text/event-stream"
        data = None
        for _ in range(10):
            line = response.readline(1 << 20)
            if line.startswith(b"data: "):
                data = json.loads(line[6:])
                break
        assert data is not None
        assert [p["id"] for p in data["peers"]] == [a.peer_id]
        assert data["node"]["id"] == b.peer_id and data["cluster"] is None
    finally:
        conn.close()


def test_top_once_prints_the_peers(pair, tmp_path: Path) -> None:
    a, b = pair
    out = run(b.repo, "top", "--once", env={"COLUMNS": "200"}).stdout.decode()
    assert a.peer_id in out and "bitswap and blockstore" in out
    narrow = run(b.repo, "top", "--once", env={"COLUMNS": "80"}).stdout.decode()
    assert a.peer_id[:8] in narrow and all(len(line) <= 80 for line in narrow.splitlines())


def test_without_a_daemon_the_commands_say_so(tmp_path: Path) -> None:
    run(tmp_path / "r", "init")
    for command in ("top", "dashboard"):
        proc = run(tmp_path / "r", command, check=False)
        lines = proc.stderr.decode().strip().splitlines()
        assert proc.returncode == 1 and len(lines) == 1 and "needs a running daemon" in lines[0]


CHROMIUM = Path("/usr/bin/chromium")
# The machine's network is closed: nothing in the browser may try to reach out.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
BROWSER_TIMEOUT_MS = 30_000


def test_dashboard_in_a_real_browser(pair, tmp_path: Path) -> None:
    """Headless Chromium logs in through the one-time URL, sees the peer and a counter that
    moves while a transfer runs; the used URL and a bare visit are refused."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (`make install` installs it)")
    from playwright.sync_api import sync_playwright

    a, b = pair
    url = json.loads(run(b.repo, "dashboard", "--json").stdout)["url"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
            headless=True, viewport={"width": 1280, "height": 900})
        try:
            browser.set_default_timeout(BROWSER_TIMEOUT_MS)
            page = browser.new_page()
            page.goto(url)
            assert page.url.endswith("/dashboard")  # redirected: the token left the address bar
            page.wait_for_selector(f'#peers tr[data-peer="{a.peer_id}"]')
            page.wait_for_selector("#status.live")
            counter = page.locator("#blocks-received")
            start = counter.inner_text()

            _, fetch = start_fetch(a, b, 4 << 20, "browser.bin")
            try:
                page.wait_for_function(
                    "start => document.getElementById('blocks-received').textContent !== start",
                    arg=start)
            finally:
                finish(fetch)
            assert int(counter.inner_text().replace(",", "")) > int(start.replace(",", "") or 0)
            page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
            assert (tmp_path / "dashboard.png").stat().st_size > 0

            again = browser.new_page()
            refused = again.goto(url)  # the one-time token was spent above
            assert refused is not None and refused.status == 403
        finally:
            browser.close()
        fresh = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                           headless=True)
        try:
            bare = fresh.new_page().goto(url.split("?", 1)[0])  # no cookie, no token
            assert bare is not None and bare.status == 403
        finally:
            fresh.close()
