"""MQTT settings refused at config validation, before anything connects: a `$` or wildcard
topic prefix (the broker would drop every final silently), TLS files without `tls = true`; a
password file others can read is accepted with a warning."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edged.config import load_config, topic_prefix
from edged.errors import ConfigError
from edged.publish.mqtt import MqttPublisher, Topics, read_password


def config_with(tmp_path: Path, mqtt: str) -> Path:
    path = tmp_path / "edged.toml"
    path.write_text(f"[mqtt]\n{mqtt}\n")
    return path


@pytest.mark.parametrize(
    "prefix", ["$SYS", "$SYS/edged", "$share/g", "home/+", "home/#", "a//b", "", "/edged", "edged/"]
)
def test_a_prefix_the_broker_would_not_deliver_is_refused(tmp_path: Path, prefix: str) -> None:
    with pytest.raises(ConfigError, match=r"'mqtt\.prefix'"):
        load_config(config_with(tmp_path, f"prefix = {prefix!r}".replace("'", '"')))


@pytest.mark.parametrize("prefix", ["edged", "home/edged", "a-b/c_d/e.f", "dollar$inside"])
def test_ordinary_prefixes_are_accepted(tmp_path: Path, prefix: str) -> None:
    assert load_config(config_with(tmp_path, f'prefix = "{prefix}"')).mqtt.prefix == prefix


def test_tls_files_without_tls_are_refused_at_load(tmp_path: Path) -> None:
    for line in ('ca_file = "/etc/ssl/ca.pem"', 'cert_file = "c.pem"', "tls_insecure = true"):
        with pytest.raises(ConfigError, match=r"mqtt\.tls = false"):
            load_config(config_with(tmp_path, line))
    ok = load_config(config_with(tmp_path, 'tls = true\nca_file = "/etc/ssl/ca.pem"'))
    assert ok.mqtt.tls and ok.mqtt.ca_file == "/etc/ssl/ca.pem"


def test_the_publisher_refuses_a_dollar_prefix_too(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"mqtt\.prefix"):
        MqttPublisher(host="localhost", device_id="d", spool_dir=tmp_path, prefix="$SYS")


@given(prefix=st.text(alphabet="ab$+#/ \0", max_size=12))
def test_every_accepted_prefix_gives_plain_topics(prefix: str) -> None:
    try:
        topic_prefix(prefix)
    except ConfigError:
        return
    topics = Topics(prefix, "dev")
    for topic in (topics.status, topics.cmd, topics.translation("es", final=True)):
        assert not topic.startswith("$") and "+" not in topic and "#" not in topic
        assert "" not in topic.split("/")


@pytest.mark.parametrize(
    ("mode", "readers"),
    [(0o644, "its group and everyone"), (0o604, "everyone"), (0o640, "its group")],
)
def test_a_password_file_others_can_read_is_accepted_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, mode: int, readers: str
) -> None:
    path = tmp_path / "mqtt-password"
    path.write_text("s3cret\n")
    path.chmod(mode)
    assert read_password(path, None) == "s3cret"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert str(path) in warnings[0] and f"chmod 600 {path}" in warnings[0]
    assert f"read by {readers};" in warnings[0]


def test_a_private_password_file_gives_no_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "mqtt-password"
    path.write_text("s3cret\n")
    path.chmod(0o600)
    assert read_password(path, None) == "s3cret"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
