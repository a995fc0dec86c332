"""Why a connection to the MQTT broker failed, in words an operator can act on.

paho reports a failed connect with no exception (`on_connect_fail(client, userdata)`), and a
broker that closes the socket before its CONNACK as a plain disconnect. So after a failure
we try again ourselves, step by step (resolve, TCP, TLS handshake with the publisher's own
context, then what the port speaks), and name the first step that fails.
"""

from __future__ import annotations

import os
import socket
import ssl

# OpenSSL's X509_V_ERR_* codes, as in SSLCertVerificationError.verify_code.
_HOSTNAME_MISMATCH = 62
_IP_ADDRESS_MISMATCH = 64
_EXPIRED = 10
_NOT_YET_VALID = 9


def diagnose(
    host: str,
    port: int,
    context: ssl.SSLContext | None,
    ca_file: str | None,
    timeout: float = 5.0,
) -> str:
    """One sentence naming why a connection to `host:port` fails, and what to check."""
    where = f"{host}:{port}"
    try:
        sock = socket.create_connection((host, port), timeout)
    except socket.gaierror as err:
        return f"cannot resolve the host name {host!r} ({err.strerror}): check mqtt.host"
    except ConnectionRefusedError:
        return (
            f"nothing listens on {where} (connection refused): is the broker running? "
            "check mqtt.host and mqtt.port"
        )
    except TimeoutError:
        return f"no answer from {where} within {timeout:g} s: check the network and mqtt.host"
    except OSError as err:
        return f"cannot connect to {where}: {err.strerror or err}"
    with sock:
        if context is None:
            return _plaintext_closed(sock, host, where, timeout)
        return _tls_failure(sock, host, port, context, ca_file, timeout)


def _tls_failure(
    sock: socket.socket,
    host: str,
    port: int,
    context: ssl.SSLContext,
    ca_file: str | None,
    timeout: float,
) -> str:
    where = f"{host}:{port}"
    try:
        with context.wrap_socket(sock, server_hostname=host):
            pass
    except ssl.SSLCertVerificationError as err:
        return _untrusted(err, host, where, context, ca_file)
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError) as err:
        if _speaks_plain_mqtt(host, port, timeout):
            return (
                f"{where} speaks plain MQTT, not TLS: use the broker's TLS port (often 8883) "
                "or set mqtt.tls = false"
            )
        return f"the TLS handshake with {where} failed ({_reason(err)}): check the broker's log"
    except TimeoutError:
        return f"{where} accepted the connection but did not complete a TLS handshake"
    except OSError as err:
        return f"the TLS handshake with {where} failed: {err.strerror or err}"
    return (
        f"the TLS handshake with {where} succeeds but the broker then closed the connection: "
        "check the broker's log (a client certificate it does not accept: mqtt.cert_file)"
    )


def _untrusted(
    err: ssl.SSLCertVerificationError,
    host: str,
    where: str,
    context: ssl.SSLContext,
    ca_file: str | None,
) -> str:
    message = err.verify_message or str(err)
    if err.verify_code in (_HOSTNAME_MISMATCH, _IP_ADDRESS_MISMATCH):
        return (
            f"the broker's certificate does not name {host!r} ({message}): set mqtt.host to a "
            "name in the certificate (mqtt.tls_insecure = true skips this check: testing only)"
        )
    if err.verify_code in (_EXPIRED, _NOT_YET_VALID):
        return (
            f"the broker's certificate at {where} is not valid now ({message}): check the "
            "certificate dates and this device's clock (a board without a battery clock needs "
            "NTP before TLS works)"
        )
    if not ca_file and context.cert_store_stats().get("x509_ca", 0) == 0:
        return (
            "no CA certificates to check the broker with: mqtt.ca_file is empty and the system "
            "has none (install the ca-certificates package or set mqtt.ca_file)"
        )
    if ca_file:
        return (
            f"the broker's certificate at {where} is not signed by the CA in mqtt.ca_file "
            f"{ca_file} ({message}): set mqtt.ca_file to the CA that signed it"
        )
    return (
        f"the system CAs do not trust the broker's certificate at {where} ({message}): set "
        "mqtt.ca_file to the CA that signed it"
    )


def _plaintext_closed(sock: socket.socket, host: str, where: str, timeout: float) -> str:
    # Plain TCP works, yet the broker hung up before its CONNACK: most often a TLS listener.
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # no CA store to load: nothing is verified
    probe.check_hostname = False
    probe.verify_mode = ssl.CERT_NONE  # only asking whether the port speaks TLS at all
    try:
        with probe.wrap_socket(sock, server_hostname=host):
            pass
    except (OSError, ssl.SSLError):
        return (
            f"{where} closed the connection before answering CONNECT: check the broker's log "
            "(a banned client id, max_connections, a listener for another protocol)"
        )
    return (
        f"{where} expects TLS but mqtt.tls = false: set mqtt.tls = true (and mqtt.ca_file to "
        "the broker's CA)"
    )


def _speaks_plain_mqtt(host: str, port: int, timeout: float) -> bool:
    """Whether `host:port` answers an MQTT 3.1.1 CONNECT in plain text with a CONNACK."""
    client_id = f"edged-probe-{os.getpid()}".encode()
    body = b"\x00\x04MQTT\x04\x02\x00\x05" + len(client_id).to_bytes(2, "big") + client_id
    try:
        with socket.create_connection((host, port), timeout) as sock:
            sock.sendall(bytes([0x10, len(body)]) + body)
            answer = sock.recv(4)
            if answer[:2] == b"\x20\x02":
                sock.sendall(b"\xe0\x00")  # DISCONNECT: leave no trace but a log line
                return True
    except OSError:
        pass
    return False


def _reason(err: OSError) -> str:
    reason = getattr(err, "reason", None)
    return str(reason) if reason else (err.strerror or type(err).__name__)
