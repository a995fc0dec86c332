"""Connection failures explained: each cause against a real mosquitto (TLS with a CA and
certificates made by openssl here), logged once per change of cause, and available as
`MqttPublisher.problem` and in `stats()` for status."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import mqtt_broker
import pytest
from mqtt_broker import Broker, make_certificates

from edged.errors import ConfigError
from edged.publish.mqtt import ConnectionState, MqttPublisher

mosquitto = mqtt_broker.mosquitto

DEV = "pi-tls"


@pytest.fixture
def certs(tmp_path: Path) -> dict[str, Path]:
    return make_certificates(tmp_path / "pki")


def tls_config(certs: dict[str, Path]) -> str:
    return (
        f"cafile {certs['ca.crt']}\ncertfile {certs['server.crt']}\nkeyfile {certs['server.key']}"
    )


@pytest.fixture
def publishers(tmp_path: Path) -> Iterator:
    made: list[MqttPublisher] = []

    def make(port: int, **kwargs) -> MqttPublisher:
        kwargs.setdefault("host", "localhost")
        publisher = MqttPublisher(
            port=port,
            device_id=DEV,
            spool_dir=tmp_path / f"spool-{len(made)}",
            reconnect_min=1,
            reconnect_max=1,
            **kwargs,
        )
        made.append(publisher)
        publisher.start()
        return publisher

    yield make
    for publisher in made:
        publisher.close(timeout=2)


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.ERROR and r.name == "edged.publish.mqtt"
    ]


def explained(publisher: MqttPublisher, caplog: pytest.LogCaptureFixture) -> str:
    """The cause after three failed attempts, checked to be logged exactly once."""
    assert publisher.wait_connect_failures(3, 20), publisher.stats()
    problem = publisher.problem
    assert problem is not None and publisher.stats()["problem"] == problem
    assert not publisher.connected
    logged = errors(caplog)
    assert len(logged) == 1 and problem in logged[0], logged
    return problem


CASES = {
    # case: (broker speaks TLS ("mutual": and wants a client certificate), publisher
    # settings, words of the cause)
    "wrong CA": (True, {"tls": True, "ca_file": "other"}, "not signed by the CA in mqtt.ca_file"),
    "hostname mismatch": (
        True,
        {"tls": True, "ca_file": "ca", "host": "127.0.0.1"},
        "does not name '127.0.0.1'",
    ),
    "TLS to a plaintext port": (
        False,
        {"tls": True, "ca_file": "ca"},
        "speaks plain MQTT, not TLS",
    ),
    "no system CAs": (True, {"tls": True}, "the system has none"),
    "plaintext to a TLS port": (True, {}, "expects TLS but mqtt.tls = false"),
    "no client certificate": ("mutual", {"tls": True, "ca_file": "ca"}, "client certificate"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_connection_failure_names_its_cause_once(
    case: str, monkeypatch, mosquitto, publishers, certs, tmp_path: Path, caplog
) -> None:
    # monkeypatch first: undone last, after the publishers (whose threads read the
    # environment through OpenSSL) are closed; setenv beside a getenv can crash.
    speaks_tls, settings, words = CASES[case]
    extra = tls_config(certs) if speaks_tls else ""
    if speaks_tls == "mutual":
        extra += "\nrequire_certificate true"
    broker = mosquitto(extra_config=extra)
    if settings.get("ca_file") == "ca":
        settings = settings | {"ca_file": certs["ca.crt"]}
    elif settings.get("ca_file") == "other":
        settings = settings | {"ca_file": make_certificates(tmp_path / "other-pki")["ca.crt"]}
    if case == "no system CAs":
        # OpenSSL's default verify paths honour these: a system without ca-certificates.
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "none.pem"))
        monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path / "none"))
    caplog.set_level(logging.INFO, logger="edged.publish.mqtt")
    publisher = publishers(broker.port, **settings)
    assert words in explained(publisher, caplog)


def test_refused_credentials_are_the_problem_until_connected(
    mosquitto, publishers, tmp_path: Path, caplog
) -> None:
    passwd = tmp_path / "passwd"
    passwd.write_text("")  # no users: every CONNECT with a name is refused
    broker = mosquitto(extra_config=f"password_file {passwd}", anonymous=False)
    secret = tmp_path / "secret"
    secret.write_text("guess\n")
    secret.chmod(0o600)
    caplog.set_level(logging.INFO, logger="edged.publish.mqtt")
    publisher = publishers(broker.port, username="edge", password_file=secret)
    assert "refused the connection" in explained(publisher, caplog)
    assert publisher.state is ConnectionState.REFUSED


def test_a_change_of_cause_is_logged_and_a_connection_clears_it(
    publishers, certs, tmp_path: Path, caplog
) -> None:
    broker = Broker(tmp_path / "broker", extra_config=tls_config(certs))  # not started yet
    caplog.set_level(logging.INFO, logger="edged.publish.mqtt")
    publisher = publishers(broker.port)
    assert "nothing listens on" in explained(publisher, caplog)
    broker.start()
    try:
        assert publisher.wait_connect_failures(6, 20)
        assert "expects TLS" in (publisher.problem or "")
        assert len(errors(caplog)) == 2, errors(caplog)
    finally:
        broker.kill()
    fixed = publishers(broker.port, tls=True, ca_file=certs["ca.crt"])
    broker.start()
    try:
        assert fixed.wait_connected(10)
        assert fixed.problem is None and fixed.stats()["problem"] is None
    finally:
        broker.kill()


def test_tls_settings_without_tls_are_a_config_error(tmp_path: Path, certs) -> None:
    # Before: ca_file alone silently turned TLS on.
    for settings in (
        {"ca_file": certs["ca.crt"]},
        {"cert_file": certs["client.crt"], "key_file": certs["client.key"]},
        {"tls_insecure": True},
    ):
        with pytest.raises(ConfigError, match=r"mqtt\.tls = false"):
            MqttPublisher(host="localhost", device_id=DEV, spool_dir=tmp_path / "s", **settings)
