"""The live page: a small local web server that shows the event bus as subtitles.

Routes: `/` (the page), its assets (shipped in `edged/web/`, nothing fetched from the
internet), `/events` (Server-Sent Events) and `/state` (JSON).

`/events` sends, on every connection, a `retry:` hint, then the device state as a named
`state` event, then the recent finals (so a phone that joins late sees the last lines),
then every event live: one JSON event per `data:` line, the same JSON as on MQTT.

`publish()` runs on the bus's thread and never waits for a socket: each page has its own
bounded queue, written by that page's own HTTP thread. When a queue is full the oldest
waiting interim (asr.partial, mt.interim) is dropped and counted; a page whose queue is
full of finals is not keeping up and is disconnected (counted, logged): its browser
reconnects and replays the recent finals.
"""

from __future__ import annotations

import contextlib
import http.server
import ipaddress
import json
import logging
import re
import socket
import socketserver
import threading
import time
import uuid
from collections import deque
from importlib import resources
from typing import Any

from edged.errors import ConfigError
from edged.events import Event, Status

log = logging.getLogger(__name__)

INTERIM_TYPES = frozenset({"asr.partial", "mt.interim"})
HISTORY_TYPES = frozenset({"asr.final", "mt.final", "error"})
RETRY_MS = 1000  # a restarted daemon is back within seconds: reconnect quickly

# path -> (file in edged/web, content type)
ASSETS: dict[str, tuple[str, str]] = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
    "/icon.svg": ("icon.svg", "image/svg+xml"),
}

# The page may load only what this server serves: it is offline, and a transcript is
# never markup (the page sets textContent only; the policy is the second guard).
_SECURITY_HEADERS = (
    ("Content-Security-Policy", "default-src 'self'; base-uri 'none'; frame-ancestors 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
)

_LISTEN = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9.-]+)):(?P<port>\d{1,5})$")


def parse_listen(value: str, key: str = "web.listen") -> tuple[str, int]:
    """`HOST:PORT` (IPv6 as `[::1]:8080`) to (host, port); port 0 picks a free one."""
    match = _LISTEN.match(value)
    port = int(match["port"]) if match else -1
    if not match or port > 65535:
        raise ConfigError(
            f"{key} = {value!r}: must be HOST:PORT with a port 0-65535, "
            "e.g. 127.0.0.1:8080 or [::1]:8080"
        )
    return match["v6"] or match["host"], port


def sse_frame(data: str, event: str | None = None) -> bytes:
    """One Server-Sent Events message: an optional `event:` name and one `data:` line."""
    if "\n" in data or "\r" in data:
        # json.dumps escapes newlines inside strings, so a JSON event is always one line.
        raise ValueError("an SSE data line cannot contain a newline")
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {data}\n\n".encode()


class ClientQueue:
    """Frames waiting for one page: bounded; full, it drops the oldest interim first.

    `offer()` returns False when the queue is full of finals: the page is not keeping up
    and must be disconnected (finals are never dropped from a page that stays connected).
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 2:
            raise ValueError("a client queue needs room for at least 2 frames")
        self.capacity = capacity
        self.interims_dropped = 0
        self.overflowed = False
        self._frames: deque[tuple[bool, bytes]] = deque()  # (droppable, frame)
        self._interims = 0
        self._closed = False
        self._ready = threading.Condition()

    def offer(self, frame: bytes, interim: bool = False) -> bool:
        """Queue a frame without waiting; False if the page must be dropped."""
        with self._ready:
            if self._closed:
                return True  # already dropped: nothing more to report
            if len(self._frames) >= self.capacity and not self._drop_oldest_interim():
                if interim:
                    self.interims_dropped += 1
                    return True
                self.overflowed = True
                self._closed = True
                self._frames.clear()  # it will replay the recent finals on reconnect
                self._ready.notify_all()
                return False
            self._frames.append((interim, frame))
            self._interims += interim
            self._ready.notify_all()
            return True

    def _drop_oldest_interim(self) -> bool:
        if not self._interims:
            return False
        for index, (interim, _) in enumerate(self._frames):
            if interim:
                del self._frames[index]
                self._interims -= 1
                self.interims_dropped += 1
                return True
        return False  # unreachable while _interims counts right

    def take(self, timeout: float) -> list[bytes] | None:
        """Every waiting frame ([] after `timeout` with none); None once closed and empty."""
        with self._ready:
            if not self._frames and not self._closed:
                self._ready.wait(timeout)
            if not self._frames:
                return None if self._closed else []
            frames = [frame for _, frame in self._frames]
            self._frames.clear()
            self._interims = 0
            return frames

    def close(self) -> None:
        """No more frames: the writer sends what is queued, then stops."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()

    def __len__(self) -> int:
        with self._ready:
            return len(self._frames)


class _Client:
    def __init__(self, number: int, peer: str, sock: socket.socket, capacity: int) -> None:
        self.number = number
        self.peer = peer
        self.sock = sock
        self.queue = ClientQueue(capacity)
        self.gone = threading.Event()  # its writer has stopped

    def disconnect(self) -> None:
        self.queue.close()
        with contextlib.suppress(OSError):  # OSError: already gone
            # Wakes a writer blocked in send() on a page that stopped reading.
            self.sock.shutdown(socket.SHUT_RDWR)


class _HttpServer(http.server.ThreadingHTTPServer):
    daemon_threads = True  # SSE handlers end through close(); do not wait on a stuck page
    web: WebServer

    def server_bind(self) -> None:
        # HTTPServer.server_bind() looks up the host's FQDN: a reverse DNS query that can
        # stall start-up on an offline device. The name is only used in CGI variables.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]


class _HttpServer6(_HttpServer):
    address_family = socket.AF_INET6


class WebServer:
    """The live page's HTTP server; a Publisher. `start()` binds, `close()` stops."""

    def __init__(
        self,
        listen: str,
        *,
        device: str,
        history: int = 60,
        client_queue: int = 256,
        max_clients: int = 32,
        keepalive: float = 15.0,
        key: str = "web.listen",
    ) -> None:
        self.listen = listen
        self._key = key  # how the user gave the address, for errors: web.listen or --serve
        self.host, self.port = parse_listen(listen, key)
        if client_queue < history + 2:
            raise ConfigError("web: the client queue must hold the history plus the state")
        self.device = device
        self.boot = uuid.uuid4().hex[:12]  # tells the page a restarted daemon from this one
        self.address: tuple[str, int] = (self.host, self.port)
        self._capacity = client_queue
        self._max_clients = max_clients
        self._keepalive = keepalive
        self._assets = {path: (_read_asset(name), kind) for path, (name, kind) in ASSETS.items()}
        self._lock = threading.Lock()
        self._state: dict[str, Any] = {"state": "online"}
        self._history: deque[bytes] = deque(maxlen=history)
        self._clients: dict[int, _Client] = {}
        self._writers: set[threading.Thread] = set()
        self._next_client = 0
        self._interims_dropped = 0  # of pages already gone
        self._overflows = 0
        self._closed = False
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None
        self._loopback = _is_loopback(self.host)

    # --- life cycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Bind and serve in a background thread; an unusable address raises ConfigError."""
        cls = _HttpServer6 if ":" in self.host else _HttpServer
        try:
            httpd = cls((self.host, self.port), _Handler)
        except (OSError, OverflowError) as err:
            reason = getattr(err, "strerror", None) or str(err)
            raise ConfigError(
                f"{self._key} = {self.listen!r}: cannot listen there ({reason}); "
                "choose another address or port"
                + (", or set web.enabled = false" if self._key == "web.listen" else "")
            ) from err
        httpd.web = self
        self._httpd = httpd
        self.address = (str(httpd.server_address[0]), int(httpd.server_address[1]))
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="edged-web",
            daemon=True,  # close() stops and joins it; a daemon that fails to start still exits
        )
        self._thread.start()
        if self._loopback:
            log.info("live page on %s", self.url)
        else:  # the user's choice (web.listen); say what it means once
            log.info(
                "live page on http://%s:%d/ (bound to %s): anyone on that network can read it",
                "<this device's address>" if self.host in ("0.0.0.0", "::") else self.host,
                self.address[1],
                self.host,
            )

    @property
    def url(self) -> str:
        """Where to open the page (the bound port once started)."""
        host, port = self.address[0], self.address[1]
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"

    def close(self, timeout: float = 1.0) -> None:
        """Send every page what is queued for it (the last finals, an "offline" state) within
        `timeout`, end the streams, stop serving."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            clients = list(self._clients.values())
            writers = list(self._writers)
        for client in clients:
            client.queue.close()
        deadline = time.monotonic() + timeout
        for client in clients:
            client.gone.wait(max(0.0, deadline - time.monotonic()))
            client.disconnect()  # one that is still writing is stuck: cut it off
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join()
        for writer in writers:
            writer.join(2.0)

    # --- Publisher ------------------------------------------------------------------------

    def publish(self, event: Event) -> None:
        """Hand an event to every page's queue; never waits for a page."""
        if isinstance(event, Status):
            self.set_state({"state": event.state, "detail": event.detail})
            return
        frame = sse_frame(event.to_json())
        interim = event.type in INTERIM_TYPES
        with self._lock:
            if event.type in HISTORY_TYPES:
                self._history.append(frame)
            lagging = [c for c in self._clients.values() if not c.queue.offer(frame, interim)]
        self._drop(lagging)

    def set_state(self, state: dict[str, Any]) -> None:
        """Merge daemon status into the page's state ("state", "languages", "targets",
        "speak", "listening", "conversation") and send it to every page."""
        with self._lock:
            self._state.update(state)
            frame = sse_frame(self._state_json(), event="state")
            lagging = [c for c in self._clients.values() if not c.queue.offer(frame)]
        self._drop(lagging)

    def state(self) -> dict[str, Any]:
        """What `/state` answers: the merged state with the device name and boot id."""
        with self._lock:
            return json.loads(self._state_json())

    def stats(self) -> dict[str, int]:
        """Pages connected, interims dropped for slow pages, pages dropped for lagging."""
        with self._lock:
            live = sum(c.queue.interims_dropped for c in self._clients.values())
            return {
                "clients": len(self._clients),
                "interims_dropped": self._interims_dropped + live,
                "clients_overflowed": self._overflows,
            }

    # --- used by the handler --------------------------------------------------------------

    def _state_json(self) -> str:
        body = {"device": self.device, "boot": self.boot, **self._state}
        # default=str: a state value the daemon adds later must not break the page.
        return json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=str)

    def _attach(self, peer: str, sock: socket.socket) -> _Client | None:
        """Register a page with the state and recent finals queued first, atomically with
        respect to publish(): nothing missed, nothing twice."""
        with self._lock:
            if self._closed or len(self._clients) >= self._max_clients:
                return None
            self._next_client += 1
            client = _Client(self._next_client, peer, sock, self._capacity)
            client.queue.offer(f"retry: {RETRY_MS}\n\n".encode())
            client.queue.offer(sse_frame(self._state_json(), event="state"))
            for frame in self._history:
                client.queue.offer(frame)
            self._clients[client.number] = client
            self._writers.add(threading.current_thread())
        log.debug("page %d connected from %s", client.number, peer)
        return client

    def _detach(self, client: _Client) -> None:
        with self._lock:
            if self._clients.pop(client.number, None) is not None:
                self._interims_dropped += client.queue.interims_dropped
            self._writers.discard(threading.current_thread())
        client.disconnect()
        log.debug("page %d from %s disconnected", client.number, client.peer)

    def _drop(self, lagging: list[_Client]) -> None:
        for client in lagging:
            with self._lock:
                self._overflows += 1
            log.warning(
                "live page %s is not keeping up (%d finals waiting); disconnected, "
                "it reconnects and replays the recent finals",
                client.peer,
                self._capacity,
            )
            client.disconnect()

    def _host_allowed(self, host_header: str | None) -> bool:
        """On loopback, only loopback names: a web site that rebinds its DNS name to
        127.0.0.1 must not read the conversation through the visitor's browser."""
        if not self._loopback:
            return True
        if not host_header:
            return False
        if host_header.startswith("["):
            host = host_header[1:].split("]", 1)[0]
        else:
            host = host_header.rsplit(":", 1)[0]
        host = host.lower()
        return host == "localhost" or host.endswith(".localhost") or _is_loopback(host)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _read_asset(name: str) -> bytes:
    try:
        return (resources.files("edged") / "web" / name).read_bytes()
    except OSError as err:
        raise ConfigError(
            f"web: the page's file edged/web/{name} is missing ({err}); reinstall edged"
        ) from err


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _HttpServer
    timeout = 30  # seconds a page may stall reading a request or accepting a write
    server_version = "edged"
    sys_version = ""
    error_content_type = "text/plain; charset=utf-8"
    error_message_format = "%(code)d %(message)s\n"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        web = self.server.web
        path = self.path.split("?", 1)[0]
        if not web._host_allowed(self.headers.get("Host")):
            self.send_error(403, "this page answers only to localhost on this address")
        elif path == "/events" and body:
            self._events(web)
        elif path == "/state":
            self._send(200, json.dumps(web.state()).encode(), "application/json", body, "no-store")
        elif path in web._assets:
            content, kind = web._assets[path]
            self._send(200, content, kind, body, "no-cache")
        else:
            self.send_error(404, "not found")

    def _send(self, code: int, content: bytes, kind: str, body: bool, cache: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(content)))
        self.send_header("Cache-Control", cache)
        for name, value in _SECURITY_HEADERS:
            self.send_header(name, value)
        self.end_headers()
        if body:
            self.wfile.write(content)

    def _events(self, web: WebServer) -> None:
        threading.current_thread().name = "edged-web-page"
        client = web._attach(self.address_string(), self.connection)
        if client is None:
            self.send_error(503, "too many live pages open")
            return
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Accel-Buffering", "no")  # a reverse proxy must not buffer
            for name, value in _SECURITY_HEADERS:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.flush()
            while (frames := client.queue.take(web._keepalive)) is not None:
                # An idle stream gets a comment now and then: a page that went away is
                # noticed (the write fails) and proxies keep the connection open.
                self.wfile.write(b"".join(frames) if frames else b": keepalive\n\n")
                self.wfile.flush()
        except OSError as err:  # the page went away (closed tab, phone asleep, shutdown)
            log.debug("page %d from %s: %s", client.number, client.peer, err)
        finally:
            web._detach(client)
            client.gone.set()
            self.close_connection = True
