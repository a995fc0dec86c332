"""The live page's server without a browser: SSE framing, what a page gets on connect, the
slow-page policy (a real socket that stops reading), addresses, and the static files."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from edged.errors import ConfigError
from edged.events import AsrFinal, AsrPartial, Event, MtFinal, MtInterim, Status
from edged.publish.web import ClientQueue, WebServer, parse_listen, sse_frame

DEVICE = "pi-web"


def partial(utt: int, text: str) -> AsrPartial:
    return AsrPartial(
        device=DEVICE, utt=utt, seq=0, src="es", text=text, stable="", t0=0, t1=1, lat_ms=5
    )


def final(utt: int, text: str) -> AsrFinal:
    return AsrFinal(device=DEVICE, utt=utt, seq=0, src="es", text=text, t0=0, t1=1, lat_ms=5)


def mt_final(utt: int, text: str) -> MtFinal:
    return MtFinal(
        device=DEVICE,
        utt=utt,
        seq=0,
        src="es",
        tgt="en",
        text=text,
        engine="apertium",
        t0=0,
        t1=1,
        lat_ms=5,
    )


@pytest.fixture
def web() -> Iterator[WebServer]:
    server = WebServer("127.0.0.1:0", device=DEVICE)
    server.start()
    yield server
    server.close()


@dataclass
class Message:
    event: str = "message"
    data: str = ""
    retry: int | None = None
    comments: list[str] = field(default_factory=list)

    def json(self) -> dict:
        return json.loads(self.data)


class SseReader:
    """A page's side of /events, on a raw socket: parses what a browser would."""

    def __init__(self, address: tuple[str, int], rcvbuf: int | None = None) -> None:
        self.sock = socket.socket()
        if rcvbuf:  # set before connect: a small window fills up quickly
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(30)
        self.sock.connect(address)
        host = f"{address[0]}:{address[1]}"
        self.sock.sendall(f"GET /events HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        self.buffer = b""
        self.status = ""
        self.headers: dict[str, str] = {}

    def read_head(self) -> None:
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        self.status = lines[0]
        self.headers = {k.lower(): v.strip() for k, v in (x.split(":", 1) for x in lines[1:])}

    def _fill(self) -> bool:
        chunk = self.sock.recv(1 << 16)
        self.buffer += chunk
        return bool(chunk)

    def next(self) -> Message | None:
        """The next message (comments and retry hints included); None at the end."""
        while b"\n\n" not in self.buffer:
            if not self._fill():
                return None
        raw, self.buffer = self.buffer.split(b"\n\n", 1)
        message, data = Message(), []
        for line in raw.decode().split("\n"):
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "":
                message.comments.append(value)
            elif name == "event":
                message.event = value
            elif name == "data":
                data.append(value)
            elif name == "retry":
                message.retry = int(value)
        message.data = "\n".join(data)
        return message

    def events(self) -> Iterator[Message]:
        while (message := self.next()) is not None:
            if message.data:
                yield message

    def close(self) -> None:
        self.sock.close()


def connect(web: WebServer, rcvbuf: int | None = None) -> SseReader:
    reader = SseReader(web.address, rcvbuf)
    reader.read_head()
    return reader


# --- framing ------------------------------------------------------------------------------


def test_sse_frame_is_one_data_line_and_an_optional_name() -> None:
    event = final(3, "dos\nlíneas")
    assert sse_frame(event.to_json()) == f"data: {event.to_json()}\n\n".encode()
    assert "\n" not in event.to_json()  # json.dumps escapes the newline in the text
    assert sse_frame('{"a":1}', event="state") == b'event: state\ndata: {"a":1}\n\n'
    with pytest.raises(ValueError, match="newline"):
        sse_frame("a\nb")


def test_connect_gives_retry_then_state_then_recent_finals_then_live(web: WebServer) -> None:
    web.set_state({"state": "degraded", "targets": ["en"], "conversation": None})
    web.publish(partial(1, "encien"))  # an interim: not history
    web.publish(final(1, "Enciende la luz."))
    web.publish(mt_final(1, "Turn on the light."))
    reader = connect(web)
    assert reader.status.split()[1] == "200"
    assert reader.headers["content-type"].startswith("text/event-stream")
    first = reader.next()
    assert first is not None and first.retry is not None and first.retry > 0
    messages = reader.events()
    state = next(messages)
    assert state.event == "state"
    assert state.json() | {"boot": "x"} == {
        "device": DEVICE,
        "boot": "x",
        "state": "degraded",
        "targets": ["en"],
        "conversation": None,
    }
    replay = [next(messages).json() for _ in range(2)]
    assert [(e["type"], e["text"]) for e in replay] == [
        ("asr.final", "Enciende la luz."),
        ("mt.final", "Turn on the light."),
    ]
    web.publish(partial(2, "apa"))
    live = next(messages)
    assert (live.event, live.json()["type"], live.json()["text"]) == (
        "message",
        "asr.partial",
        "apa",
    )
    web.publish(Status(device=DEVICE, utt=0, seq=0, state="online"))
    status = next(messages)
    assert status.event == "state" and status.json()["state"] == "online"
    assert web.state()["state"] == "online" and web.state()["targets"] == ["en"]
    reader.close()


def test_history_keeps_only_the_latest_finals() -> None:
    web = WebServer("127.0.0.1:0", device=DEVICE, history=3)
    web.start()
    try:
        for utt in range(1, 6):
            web.publish(final(utt, f"line {utt}"))
        reader = connect(web)
        messages = reader.events()
        assert next(messages).event == "state"
        assert [next(messages).json()["text"] for _ in range(3)] == ["line 3", "line 4", "line 5"]
        reader.close()
    finally:
        web.close()


def test_close_delivers_what_is_queued_then_ends_every_stream(web: WebServer) -> None:
    reader = connect(web)
    assert next(reader.events()).event == "state"
    web.publish(final(1, "last words"))
    web.set_state({"state": "offline"})
    web.close()
    rest = list(reader.events())  # then the stream ends: a browser reconnects on its own
    assert [(m.event, m.json().get("text") or m.json()["state"]) for m in rest] == [
        ("message", "last words"),
        ("state", "offline"),
    ]
    reader.close()


# --- the slow-page policy -------------------------------------------------------------------


def test_full_queue_drops_the_oldest_interim_first() -> None:
    queue = ClientQueue(3)
    assert queue.offer(b"i1", interim=True)
    assert queue.offer(b"f1")
    assert queue.offer(b"i2", interim=True)
    assert queue.offer(b"f2")  # full: i1 goes
    assert queue.offer(b"f3")  # full: i2 goes
    assert queue.offer(b"i3", interim=True) is True  # full of finals: the interim is dropped
    assert queue.interims_dropped == 3
    assert queue.take(0) == [b"f1", b"f2", b"f3"]
    assert not queue.overflowed


def test_queue_full_of_finals_overflows_and_closes() -> None:
    queue = ClientQueue(2)
    assert queue.offer(b"f1") and queue.offer(b"f2")
    assert queue.offer(b"f3") is False  # this page is not keeping up
    assert queue.overflowed
    assert queue.take(0) is None  # the writer stops; the page reconnects and replays
    assert queue.offer(b"f4") is True  # reported once


def test_take_waits_for_a_frame_and_returns_empty_on_timeout() -> None:
    queue = ClientQueue(4)
    assert queue.take(0.01) == []  # the writer then sends a keep-alive comment
    queue.offer(b"f")
    assert queue.take(10) == [b"f"]
    queue.offer(b"g")
    queue.close()
    assert queue.take(10) == [b"g"]  # a closing page still gets what was queued
    assert queue.take(10) is None


class FakeDisplay:
    """A Publisher-side view of one page: what it received, in order."""

    def __init__(self, reader: SseReader) -> None:
        self.finals: list[str] = []
        self.interims = 0
        for message in reader.events():
            event = message.json() if message.event == "message" else {}
            if event.get("type") == "asr.partial":
                self.interims += 1
            elif event.get("type") == "asr.final":
                self.finals.append(event["text"])
                if event["text"] == "end":
                    break


def test_a_page_that_stops_reading_loses_interims_not_finals() -> None:
    web = WebServer("127.0.0.1:0", device=DEVICE, history=0, client_queue=64)
    web.start()
    try:
        reader = connect(web, rcvbuf=4096)
        assert next(reader.events()).event == "state"
        # 40 MB of partials against a page that reads nothing meanwhile: the socket buffers
        # fill, the writer blocks, the queue fills. publish() must still return at once.
        bulky = "x" * 20_000
        expected = []
        for n in range(2000):
            web.publish(partial(n, bulky))
            if n % 50 == 0:
                expected.append(f"final {n}")
                web.publish(final(n, expected[-1]))
        web.publish(final(9999, "end"))
        page = FakeDisplay(reader)  # now it reads everything
        assert page.finals == [*expected, "end"]  # every final, in order
        stats = web.stats()
        assert stats["interims_dropped"] > 0
        assert page.interims + stats["interims_dropped"] == 2000  # each one counted
        assert stats["clients_overflowed"] == 0
        reader.close()
    finally:
        web.close()


def test_a_page_that_cannot_keep_up_with_finals_is_dropped_and_counted() -> None:
    web = WebServer("127.0.0.1:0", device=DEVICE, history=4, client_queue=8)
    web.start()
    try:
        stuck = connect(web, rcvbuf=4096)
        bulky = "y" * 50_000
        for n in range(400):  # 20 MB of finals, none read
            web.publish(final(n, f"{n} {bulky}"))
        assert web.stats()["clients_overflowed"] == 1
        list(stuck.events())  # its stream was ended (after what its buffers held)
        stuck.close()
        # It reconnects and gets the recent finals back.
        again = connect(web)
        messages = again.events()
        assert next(messages).event == "state"
        replay = [next(messages).json()["text"].split()[0] for _ in range(4)]
        assert replay == ["396", "397", "398", "399"]
        again.close()
    finally:
        web.close()


# --- addresses, routes, files ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        ("0.0.0.0:0", ("0.0.0.0", 0)),
        ("[::1]:8080", ("::1", 8080)),
        ("localhost:65535", ("localhost", 65535)),
    ],
)
def test_parse_listen(value: str, parsed: tuple[str, int]) -> None:
    assert parse_listen(value) == parsed


@pytest.mark.parametrize("value", ["8080", "127.0.0.1", ":8080", "host:70000", "a b:1", "[::1]"])
def test_bad_listen_is_a_config_error_naming_key_and_form(value: str) -> None:
    with pytest.raises(ConfigError, match=r"web\.listen.*HOST:PORT"):
        WebServer(value, device=DEVICE)


def test_ipv6_loopback() -> None:
    web = WebServer("[::1]:0", device=DEVICE)
    web.start()
    try:
        assert web.url == f"http://[::1]:{web.address[1]}/"
        with urllib.request.urlopen(web.url + "state", timeout=30) as response:
            assert json.loads(response.read())["device"] == DEVICE
    finally:
        web.close()


def test_address_in_use_is_a_config_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        web = WebServer(f"127.0.0.1:{port}", device=DEVICE)
        with pytest.raises(ConfigError, match=rf"web\.listen = '127\.0\.0\.1:{port}'.*in use"):
            web.start()
        web.close()


def fetch(web: WebServer, path: str, host: str | None = None) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{web.address[1]}{path}")
    if host:
        request.add_header("Host", host)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def test_state_route_is_json(web: WebServer) -> None:
    web.set_state({"state": "online", "conversation": ["en", "es"], "listening": True})
    code, headers, body = fetch(web, "/state")
    assert code == 200 and headers["Content-Type"] == "application/json"
    state = json.loads(body)
    assert state["device"] == DEVICE and state["conversation"] == ["en", "es"]
    assert state["boot"] == web.boot


def test_page_and_assets_are_local_and_phone_ready(web: WebServer) -> None:
    code, headers, page = fetch(web, "/")
    assert code == 200 and headers["Content-Type"].startswith("text/html")
    assert b'name="viewport"' in page
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    for path in ("/app.js", "/style.css", "/icon.svg"):
        code, _, body = fetch(web, path)
        assert code == 200 and body
        assert path.encode() in page  # the page loads it from this server
    for path in ("/", "/app.js", "/style.css"):
        body = fetch(web, path)[2]
        assert b"https://" not in body and b"//cdn" not in body  # nothing from the internet
    assert fetch(web, "/nope")[0] == 404


def test_loopback_page_refuses_foreign_host_names(web: WebServer) -> None:
    # DNS rebinding: a web site whose name resolves to 127.0.0.1 must not read the page.
    assert fetch(web, "/state", host="attacker.example:8080")[0] == 403
    assert fetch(web, "/state", host=f"localhost:{web.address[1]}")[0] == 200


def test_publishing_with_no_page_open_keeps_only_history(web: WebServer) -> None:
    events: list[Event] = [
        partial(1, "a"),
        final(1, "b"),
        MtInterim(
            device=DEVICE,
            utt=1,
            seq=0,
            src="es",
            tgt="en",
            text="c",
            engine="x",
            t0=0,
            t1=1,
            lat_ms=1,
        ),
    ]
    for event in events:
        web.publish(event)
    assert web.stats() == {"clients": 0, "interims_dropped": 0, "clients_overflowed": 0}
