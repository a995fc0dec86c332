"""Finals through broker outages and publisher crashes: in order, none lost, none twice;
and the last will: `kill -9` of the publisher leaves a retained `offline`.

The subscriber is a logger with a persistent session (fixed client id, clean_session False,
QoS 1). A killed mosquitto may redeliver to it messages whose PUBACK from the subscriber it
had not saved yet; it flags those with DUP. The publisher's promise is about what it sends:
every final reaches the broker once, so the messages *without* DUP are exactly the finals,
in order.
"""

from __future__ import annotations

import json
import select
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import mqtt_broker
import pytest
import small_disk as disks
from mqtt_broker import Broker, Received, retained_messages
from small_disk import fill_disk

from edged.events import AsrFinal, utc_now
from edged.publish.mqtt import ConnectionState, MqttPublisher

mosquitto = mqtt_broker.mosquitto
subscribers = mqtt_broker.subscribers
small_disk = disks.small_disk

DEV = "pi-test"
FINALS = f"edged/{DEV}/asr/final"
WINDOW = 10  # MqttPublisher's default `inflight`

CHILD = """
import json, sys
from edged.events import AsrFinal, utc_now
from edged.publish.mqtt import MqttPublisher

args = json.loads(sys.argv[1])
publisher = MqttPublisher(
    host="127.0.0.1", port=args["port"], device_id=args["device"], spool_dir=args["spool"],
    reconnect_max=2,
)
publisher.start()
if args["connect"]:
    assert publisher.wait_connected(10), "child did not connect"
for i in range(args["first"], args["first"] + args["count"]):
    publisher.publish(AsrFinal(device=args["device"], utt=i, seq=0, src="en",
                               text=f"final {i}", t0=0.0, t1=1.0, lat_ms=1))
print("ready", publisher.pending(), flush=True)
sys.stdin.read()  # run until killed
"""


def final(i: int, words: int = 1) -> AsrFinal:
    text = " ".join([f"final {i}"] * words)
    return AsrFinal(device=DEV, utt=i, seq=0, src="en", text=text, t0=0.0, t1=1.0, lat_ms=1)


def utts(messages: list[Received]) -> list[int]:
    return [m.json()["utt"] for m in messages]


class Child:
    """A publisher in its own process, to be killed with SIGKILL."""

    def __init__(self, broker: Broker, spool: Path, first: int, count: int, connect: bool):
        args = {"port": broker.port, "device": DEV, "spool": str(spool)}
        args |= {"first": first, "count": count, "connect": connect}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, json.dumps(args)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def wait_ready(self, timeout: float = 30.0) -> int:
        """Wait for the child's "ready <pending>" line; return how many finals it spooled."""
        assert self.proc.stdout is not None
        readable, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline().decode() if readable else ""
        if not line.startswith("ready"):
            self.kill()
            assert self.proc.stderr is not None
            pytest.fail(f"child publisher failed: {line!r} {self.proc.stderr.read().decode()}")
        return int(line.split()[1])

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def children() -> Iterator:
    made: list[Child] = []

    def make(*args, **kwargs) -> Child:
        made.append(Child(*args, **kwargs))
        return made[-1]

    yield make
    for child in made:
        child.kill()


@pytest.fixture
def publisher_factory(tmp_path: Path) -> Iterator:
    made: list[MqttPublisher] = []

    def make(broker: Broker, spool: Path | None = None) -> MqttPublisher:
        publisher = MqttPublisher(
            host=broker.host,
            port=broker.port,
            device_id=DEV,
            spool_dir=spool or tmp_path / "spool",
            reconnect_max=2,
        )
        made.append(publisher)
        publisher.start()
        return publisher

    yield make
    for publisher in made:
        publisher.close(timeout=2)


def logger(subscribers, broker: Broker):
    sub = subscribers(broker, [FINALS], client_id="logger", clean_session=False)
    sub.wait_subscribed()
    return sub


def wait_through_sentinel(sub, publisher: MqttPublisher, sentinel: int) -> list[Received]:
    """Publish one more final and wait for it: anything still on its way arrives before."""
    publisher.publish(final(sentinel))
    assert publisher.flush(20), publisher.stats()
    return sub.wait_for(lambda ms: sentinel in utts(ms), timeout=20)


@pytest.mark.parametrize("outage", ["stop", "kill"])
def test_finals_before_during_and_after_a_broker_outage_arrive_in_order_once(
    outage: str, mosquitto, subscribers, publisher_factory
) -> None:
    broker = mosquitto()
    sub = logger(subscribers, broker)
    publisher = publisher_factory(broker)
    assert publisher.wait_connected(10)
    for i in range(0, 10):
        publisher.publish(final(i))
    assert publisher.flush(10)
    sub.wait_count(10)
    sub.settle()  # the broker saw the logger's acks: nothing of 0-9 is in flight to it

    broker.kill() if outage == "kill" else broker.stop()
    for i in range(10, 20):  # the publisher may not have noticed yet: sent into a dead socket
        publisher.publish(final(i))
    assert publisher.wait_state(ConnectionState.DISCONNECTED, 10)
    for i in range(20, 30):  # known to be down: spooled
        publisher.publish(final(i))
    assert publisher.pending() >= 10
    broker.start()
    for i in range(30, 40):  # racing the reconnect
        publisher.publish(final(i))
    assert publisher.wait_connected(15)
    for i in range(40, 50):
        publisher.publish(final(i))

    got = wait_through_sentinel(sub, publisher, 50)
    first_copies = [m for m in got if not m.dup]
    assert utts(first_copies) == list(range(51))
    redelivered = [m for m in got if m.dup]
    if outage == "stop":  # a broker that saved its state on the way down: exactly once
        assert redelivered == []
    else:  # a crashed broker may lose the logger's last acks and resend, flagged DUP
        assert set(utts(redelivered)) <= set(range(10))
    assert publisher.stats()["finals_dropped"] == 0


def test_broker_killed_at_any_moment_of_a_stream_loses_no_final(
    mosquitto, subscribers, publisher_factory
) -> None:
    """The broker dies while finals are in flight. QoS 1 is at-least-once: a final the broker
    got but whose PUBACK died with it is sent again, so the publisher may repeat at most
    one window of finals; none is lost and the first copies stay in order."""
    total = 400
    broker = mosquitto()
    sub = logger(subscribers, broker)
    publisher = publisher_factory(broker)
    assert publisher.wait_connected(10)
    produced = threading.Condition()
    count = [0]
    stop = threading.Event()

    def pipeline() -> None:
        for i in range(total):
            publisher.publish(final(i))
            with produced:
                count[0] += 1
                produced.notify_all()
            # A real-time source: about 500 finals a second, so the kill lands mid-stream.
            if stop.wait(0.002):
                return

    thread = threading.Thread(target=pipeline, name="test-pipeline")
    thread.start()
    try:
        sub.wait_count(50, timeout=20)
        broker.kill()
        assert publisher.wait_state(ConnectionState.DISCONNECTED, 10)
        with produced:
            at_kill = count[0]
            assert produced.wait_for(lambda: count[0] >= min(total, at_kill + 50), 20)
        broker.start()
        thread.join(30)
    finally:
        stop.set()
        thread.join(10)
    got = wait_through_sentinel(sub, publisher, total)
    firsts: list[int] = []
    for utt in utts(got):
        if utt not in firsts:
            firsts.append(utt)
    assert firsts == list(range(total + 1))
    sent_twice = len([m for m in got if not m.dup]) - (total + 1)
    assert 0 <= sent_twice <= WINDOW


def test_finals_spooled_by_a_killed_publisher_are_delivered_by_its_successor(
    mosquitto, subscribers, publisher_factory, children, tmp_path: Path
) -> None:
    broker = mosquitto()
    sub = logger(subscribers, broker)
    broker.stop()  # the logger's session is saved; the daemon starts while the broker is down
    spool = tmp_path / "daemon-spool"
    daemon = children(broker, spool, first=0, count=15, connect=False)
    assert daemon.wait_ready() == 15
    daemon.kill()  # kill -9 with every final still in the spool

    broker.start()
    successor = publisher_factory(broker, spool)
    assert successor.wait_connected(10)
    for i in range(15, 25):
        successor.publish(final(i))
    got = wait_through_sentinel(sub, successor, 25)
    assert utts(got) == list(range(26))
    assert not any(m.dup for m in got)


def test_kill_9_leaves_a_retained_offline_and_a_restart_says_online(
    mosquitto, subscribers, children, tmp_path: Path
) -> None:
    broker = mosquitto()
    status_topic = f"edged/{DEV}/status"
    watcher = subscribers(broker, [status_topic])
    watcher.wait_subscribed()

    def states(messages: list[Received]) -> list[str]:
        return [m.json()["state"] for m in messages]

    daemon = children(broker, tmp_path / "spool", first=0, count=0, connect=True)
    daemon.wait_ready()
    watcher.wait_for(lambda ms: states(ms)[-1:] == ["online"])
    daemon.kill()
    will = watcher.wait_for(lambda ms: states(ms)[-1:] == ["offline"])[-1]
    assert will.json()["device"] == DEV
    assert will.qos == 1
    retained = retained_messages(broker, [status_topic])
    assert [(states(retained), m.retain) for m in retained] == [(["offline"], True)]

    restarted = children(broker, tmp_path / "spool", first=0, count=0, connect=True)
    restarted.wait_ready()
    watcher.wait_for(lambda ms: states(ms)[-1:] == ["online"])
    retained = retained_messages(broker, [status_topic])
    assert [(m.json()["state"], m.retain) for m in retained] == [("online", True)]


def test_finals_on_a_64k_disk_are_all_delivered_even_when_it_is_full(
    mosquitto, subscribers, publisher_factory, small_disk
) -> None:
    """The red team's repro: spool_dir on a 64 KiB tmpfs, broker up, 38 finals. Then the
    disk is filled by someone else: finals are still sent at QoS 1, and counted."""
    disk = small_disk("64k")
    broker = mosquitto()
    sub = logger(subscribers, broker)
    publisher = publisher_factory(broker, disk / "spool")
    assert publisher.wait_connected(10)
    for i in range(38):
        publisher.publish(final(i, words=30))
    assert publisher.flush(20), publisher.stats()
    assert utts(sub.wait_count(38)) == list(range(38))
    assert publisher.stats()["finals_not_durable"] == 0  # 38 finals fit in 64 KiB

    publisher.close()  # a restart on a disk someone else filled meanwhile
    fill_disk(disk)
    publisher = publisher_factory(broker, disk / "spool")
    assert publisher.wait_connected(10)
    for i in range(38, 76):
        publisher.publish(final(i, words=30))
    got = wait_through_sentinel(sub, publisher, 76)
    assert utts(got) == list(range(77))
    stats = publisher.stats()
    assert stats["finals_not_durable"] >= 1, stats
    assert (stats["finals_sent"], stats["finals_dropped"], stats["finals_in_memory"]) == (39, 0, 0)


def test_a_disk_filled_during_an_outage_then_freed_recovers(
    mosquitto, subscribers, publisher_factory, small_disk
) -> None:
    disk = small_disk("64k")
    broker = mosquitto()
    sub = logger(subscribers, broker)
    broker.stop()
    publisher = publisher_factory(broker, disk / "spool")
    filler = fill_disk(disk)
    for i in range(20):
        publisher.publish(final(i, words=30))
    assert publisher.stats()["finals_in_memory"] >= 10
    filler.unlink()  # space returns: the next final takes the ones held in memory to disk
    publisher.publish(final(20, words=30))
    assert publisher.stats()["finals_in_memory"] == 0
    assert publisher.pending() == 21
    broker.start()
    got = wait_through_sentinel(sub, publisher, 21)
    assert utts(got) == list(range(22))
    assert not any(m.dup for m in got)


def test_the_last_will_says_it_is_one_and_is_dated_by_its_connection(
    mosquitto, subscribers, children, tmp_path: Path
) -> None:
    """The broker publishes the will when it notices the loss and cannot date it; the will was
    stamped when the client was built, hours before on a long-running daemon. Now each
    connection carries its own will, dated when it opened, and says it is the will."""
    broker = mosquitto()
    status_topic = f"edged/{DEV}/status"
    watcher = subscribers(broker, [status_topic])
    watcher.wait_subscribed()
    daemon = children(broker, tmp_path / "spool", first=0, count=0, connect=True)
    daemon.wait_ready()
    watcher.wait_for(lambda ms: any(m.json()["state"] == "online" for m in ms))
    broker.stop()
    reopened_after = utc_now()  # the daemon's next connection opens after this
    broker.start()

    def online_again(messages: list[Received]) -> bool:
        return any(
            m.json()["state"] == "online" and m.json()["ts"] >= reopened_after for m in messages
        )

    watcher.wait_for(online_again, timeout=20)
    daemon.kill()
    will = watcher.wait_for(lambda ms: ms[-1].json()["state"] == "offline")[-1].json()
    assert will["detail"] == {"cause": "connection lost", "will": True}
    assert will["ts"] >= reopened_after
