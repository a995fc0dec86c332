"""MqttPublisher against a real mosquitto: topics, QoS, retain, status, interim drops,
refused credentials, passwords from files and systemd credentials, TLS with client certs."""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import mqtt_broker
import pytest
from mqtt_broker import Broker, free_port, make_certificates, retained_messages

from edged.errors import ConfigError
from edged.events import (
    AsrFinal,
    AsrPartial,
    Error,
    MtFinal,
    MtInterim,
    SpeechStart,
    Status,
    TtsEnd,
    TtsStart,
)
from edged.publish.mqtt import ConnectionState, MqttPublisher

mosquitto = mqtt_broker.mosquitto
subscribers = mqtt_broker.subscribers

DEV = "pi-test"


@pytest.fixture
def publishers(tmp_path: Path) -> Iterator:
    """Factory of started MqttPublishers on a broker, all closed after the test."""
    made: list[MqttPublisher] = []

    def make(broker: Broker | None = None, start: bool = True, **kwargs) -> MqttPublisher:
        kwargs.setdefault("device_id", DEV)
        kwargs.setdefault("spool_dir", tmp_path / f"spool-{len(made)}")
        kwargs.setdefault("reconnect_max", 2)
        host, port = (broker.host, broker.port) if broker else ("127.0.0.1", free_port())
        kwargs.setdefault("host", host)
        kwargs.setdefault("port", port)
        publisher = MqttPublisher(**kwargs)
        made.append(publisher)
        if start:
            publisher.start()
        return publisher

    yield make
    for publisher in made:
        publisher.close(timeout=2)


def one_of_each(device: str = DEV) -> list:
    common = {"device": device, "utt": 1}
    timing = {"t0": 0.5, "t1": 1.5, "lat_ms": 120}
    return [
        SpeechStart(**common, seq=0, t0=0.5),
        AsrPartial(**common, seq=1, src="en", text="hel", stable="", **timing),
        MtInterim(**common, seq=2, src="en", tgt="es", text="ho", engine="ct2", **timing),
        AsrFinal(**common, seq=3, src="en", text="hello", **timing),
        MtFinal(**common, seq=4, src="en", tgt="es", text="hola", engine="ct2", **timing),
        TtsStart(**common, seq=5, lang="es", voice="v", text="hola", lat_ms=300),
        TtsEnd(**common, seq=6, lang="es", duration=0.8),
        Error(**common, seq=7, code="mt.failed", message="boom"),
    ]


EXPECTED = {  # type -> (topic under the device, QoS)
    "speech.start": ("asr/partial", 0),
    "asr.partial": ("asr/partial", 0),
    "mt.interim": ("translation/es/interim", 0),
    "asr.final": ("asr/final", 1),
    "mt.final": ("translation/es/final", 1),
    "tts.start": ("tts", 0),
    "tts.end": ("tts", 0),
    "error": ("error", 1),
}


def test_topics_qos_and_retain(mosquitto, subscribers, publishers) -> None:
    broker = mosquitto()
    sub = subscribers(broker, [f"edged/{DEV}/#"])
    sub.wait_subscribed()
    publisher = publishers(broker)
    assert publisher.wait_connected(10)
    events = one_of_each()
    for event in events:
        publisher.publish(event)
    assert publisher.flush(10)
    got = sub.wait_for(lambda ms: len([m for m in ms if "status" not in m.topic]) >= len(events))
    by_type = {m.json()["type"]: m for m in got}
    for event in events:
        message = by_type[event.type]
        topic, qos = EXPECTED[event.type]
        assert message.topic == f"edged/{DEV}/{topic}", event.type
        assert message.qos == qos, event.type
        assert not message.retain, event.type
        assert message.json() == event.to_dict()
    status = by_type["status"]
    assert (status.topic, status.qos, status.json()["state"]) == (
        f"edged/{DEV}/status",
        1,
        "online",
    )
    # Only the status is retained on the broker: partials and finals are not.
    retained = retained_messages(broker, [f"edged/{DEV}/#"])
    assert [(m.topic, m.retain, m.qos) for m in retained] == [(f"edged/{DEV}/status", True, 1)]
    assert retained[0].json()["state"] == "online"


def test_status_is_device_state_republished_on_every_connect(
    mosquitto, subscribers, publishers
) -> None:
    broker = mosquitto()
    publisher = publishers(broker)
    assert publisher.wait_connected(10)
    degraded = Status(device=DEV, utt=0, seq=0, state="degraded", detail={"mic": "lost"})
    publisher.publish(degraded)
    assert retained_messages(broker, [f"edged/{DEV}/status"])[-1].json()["state"] == ("degraded")
    # A broker that lost everything (new persistence directory) learns the state again.
    broker.kill()
    for path in broker.directory.glob("mosquitto.db*"):
        path.unlink()
    assert publisher.wait_state(ConnectionState.DISCONNECTED, 10)
    broker.start()
    assert publisher.wait_connected(15)
    # The status goes out right after CONNACK, so it may still be on its way: ask again
    # until the broker holds it (or 10 s have passed).
    deadline = time.monotonic() + 10
    status = retained_messages(broker, [f"edged/{DEV}/status"])
    while not status and time.monotonic() < deadline:
        time.sleep(0.1)
        status = retained_messages(broker, [f"edged/{DEV}/status"])
    assert [m.json()["detail"] for m in status] == [{"mic": "lost"}]


def test_interims_are_dropped_and_counted_while_disconnected(publishers) -> None:
    publisher = publishers(None)  # nobody listens on its port
    events = one_of_each()
    started = time.monotonic()
    for _ in range(20):
        for event in events:
            publisher.publish(event)
    assert time.monotonic() - started < 2.0  # finals are fsync'ed, nothing waits for a network
    stats = publisher.stats()
    assert not publisher.connected
    assert stats["interim_dropped"] == 20 * 5  # speech.start, partial, interim, tts x2
    assert stats["finals_pending"] == 20 * 3  # asr.final, mt.final, error
    assert stats["state"] == "connecting"


def write_password_file(directory: Path, user: str, password: str) -> Path:
    path = directory / "passwd"
    subprocess.run(
        ["mosquitto_passwd", "-c", "-b", str(path), user, password], check=True, timeout=30
    )
    return path


def test_refused_connection_is_not_connected_and_says_why(
    mosquitto, subscribers, publishers, tmp_path: Path, caplog, monkeypatch
) -> None:
    passwd = write_password_file(tmp_path, "edge", "s3cret")
    broker = mosquitto(extra_config=f"password_file {passwd}", anonymous=False)
    wrong = tmp_path / "wrong"
    wrong.write_text("guess\n")
    caplog.set_level(logging.INFO, logger="edged.publish.mqtt")
    refused = publishers(broker, username="edge", password_file=wrong, client_id="wrong")
    assert refused.wait_state(ConnectionState.REFUSED, 10)
    assert not refused.connected
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("refused the connection" in m and "authoriz" in m.lower() for m in messages)
    assert not any("connected to mqtt broker" in r.getMessage() for r in caplog.records)
    refused.close(timeout=1)

    # The right password from a systemd credential ($CREDENTIALS_DIRECTORY/<name>).
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "mqtt-password").write_text("s3cret\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    publisher = publishers(broker, username="edge", password_credential="mqtt-password")
    sub = subscribers(broker, [f"edged/{DEV}/asr/final"], username="edge", password="s3cret")
    sub.wait_subscribed()
    assert publisher.wait_connected(10)
    publisher.publish(one_of_each()[3])
    assert sub.wait_count(1)[0].json()["text"] == "hello"


def test_tls_with_a_client_certificate(mosquitto, subscribers, publishers, tmp_path: Path) -> None:
    certs = make_certificates(tmp_path)
    broker = mosquitto(
        extra_config=(
            f"cafile {certs['ca.crt']}\ncertfile {certs['server.crt']}\n"
            f"keyfile {certs['server.key']}\nrequire_certificate true"
        )
    )
    client_tls = {
        "ca_file": certs["ca.crt"],
        "cert_file": certs["client.crt"],
        "key_file": certs["client.key"],
    }
    sub = subscribers(
        broker,
        ["edged/+/asr/final"],
        tls={
            "ca_certs": str(certs["ca.crt"]),
            "certfile": str(certs["client.crt"]),
            "keyfile": str(certs["client.key"]),
        },
        tls_insecure=True,
    )
    sub.wait_subscribed()
    # By name: the certificate says localhost.
    by_name = publishers(broker, host="localhost", tls=True, **client_tls)
    # By address with tls_insecure: the chain is checked, the host name is not.
    by_address = publishers(broker, device_id="pi-2", tls=True, tls_insecure=True, **client_tls)
    assert by_name.wait_connected(10)
    assert by_address.wait_connected(10)
    by_name.publish(one_of_each()[3])
    by_address.publish(one_of_each("pi-2")[3])
    got = sub.wait_count(2)
    assert {m.topic for m in got} == {f"edged/{DEV}/asr/final", "edged/pi-2/asr/final"}


def test_configuration_errors_name_the_key(tmp_path: Path, monkeypatch) -> None:
    def build(**kwargs) -> MqttPublisher:
        base = {"host": "localhost", "device_id": DEV, "spool_dir": tmp_path / "spool"}
        return MqttPublisher(**(base | kwargs))

    cases = [
        ({"device_id": "a/b"}, "device_id"),
        ({"device_id": "dev+"}, "device_id"),
        ({"prefix": "home/#"}, "mqtt.prefix"),
        ({"prefix": "home//x"}, "mqtt.prefix"),
        ({"port": 0}, "mqtt.port"),
        ({"username": "u", "password_file": tmp_path / "missing"}, "mqtt.password_file"),
        (
            {"username": "u", "password_file": tmp_path / "p", "password_credential": "c"},
            "both set",
        ),
        ({"username": "u", "password_credential": "mqtt"}, "CREDENTIALS_DIRECTORY"),
        ({"tls": True, "ca_file": tmp_path / "nope.crt"}, "mqtt.ca_file"),
        ({"tls": True, "key_file": __file__}, "mqtt.key_file"),
    ]
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    for kwargs, words in cases:
        with pytest.raises(ConfigError) as caught:
            build(**kwargs)
        assert words in str(caught.value), kwargs


def test_close_publishes_a_retained_offline(mosquitto, publishers) -> None:
    broker = mosquitto()
    publisher = publishers(broker)
    assert publisher.wait_connected(10)
    publisher.publish(one_of_each()[3])
    assert publisher.flush(10)
    publisher.close(timeout=5)
    assert publisher.state is ConnectionState.CLOSED
    retained = retained_messages(broker, [f"edged/{DEV}/status"])
    assert [(m.json()["state"], m.retain) for m in retained] == [("offline", True)]


def test_finals_left_at_close_stay_spooled_for_the_next_run(publishers, tmp_path: Path) -> None:
    spool = tmp_path / "kept"
    first = publishers(None, spool_dir=spool)  # no broker
    for event in one_of_each():
        first.publish(event)
    first.close(timeout=1)
    second = publishers(None, spool_dir=spool, start=False)
    assert second.pending() == 3
