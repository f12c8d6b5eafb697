"""MqttSink: each record published as one JSON message to an MQTT broker.

`--sink mqtt://[user:password@]HOST[:PORT]/TOPIC[,backlog=1000,timeout=2,qos=1]`
(`mqtts://` for TLS with the system's CAs; needs `pip install 'avfuse[mqtt]'`, the
paho-mqtt client). QoS 1 (the default) counts a record as sent once the broker
acknowledged it; QoS 0 once it was written to the socket. paho reconnects by itself;
queueing while the broker is away, back-off and drop counting are the BacklogSink's
(see `avfuse.engine.sink_backlog`), so a broker that is down never blocks the pipeline
and what is lost is counted.
"""

from __future__ import annotations

import threading
import urllib.parse
from typing import Any

from avfuse.engine.sink_backlog import BacklogSink, DeliveryError
from avfuse.errors import BackendUnavailable, UsageError
from avfuse.redact import redact


def _paho() -> Any:
    try:
        import paho.mqtt.client as mqtt
    except ImportError as e:
        raise BackendUnavailable(
            "the mqtt sink needs the paho-mqtt client: pip install 'avfuse[mqtt]'"
        ) from e
    return mqtt


class MqttSink(BacklogSink):
    """Publishes records to an MQTT topic (see the module docstring).

    Args:
        url: mqtt[s]://[user:password@]host[:port]/topic.
        backlog: most records queued while the broker is away.
        timeout: seconds to wait for an acknowledgement, and at the end of the run.
        qos: 0 (at most once) or 1 (at least once).
        spec: the --sink text (for messages; credentials are masked).
    """

    thread_name = "avfuse-mqtt"

    def __init__(
        self,
        *,
        url: str,
        backlog: int = 1000,
        timeout: float = 2.0,
        qos: int = 1,
        spec: str | None = None,
    ) -> None:
        spec = spec or url
        if "+" in url.partition("//")[2].partition("/")[2] or "#" in url:
            raise UsageError(f"--sink {redact(spec)}: a topic to publish to has no wildcards")
        u = urllib.parse.urlsplit(url)
        topic = u.path.lstrip("/")
        if u.scheme not in ("mqtt", "mqtts") or not u.hostname or not topic:
            raise UsageError(
                f"--sink {redact(spec)}: use mqtt://HOST[:PORT]/TOPIC (mqtts:// for TLS)"
            )
        if qos not in (0, 1):
            raise UsageError(f"--sink {redact(spec)}: qos must be 0 or 1")
        super().__init__(spec=spec, backlog=backlog, timeout=timeout, batch=50)
        self._mqtt = _paho()  # checked now: a missing client is a start-up error
        self.host = u.hostname
        self.port = u.port or (8883 if u.scheme == "mqtts" else 1883)
        self.topic = topic
        self.qos = qos
        self._tls = u.scheme == "mqtts"
        self._user = urllib.parse.unquote(u.username) if u.username else None
        self._password = urllib.parse.unquote(u.password) if u.password else None
        self._client: Any = None
        self._connected = threading.Event()

    def _open(self) -> None:
        mqtt = self._mqtt
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="", clean_session=True)
        if self._user is not None:
            c.username_pw_set(self._user, self._password)
        if self._tls:
            c.tls_set()
        c.reconnect_delay_set(min_delay=1, max_delay=30)
        c.on_connect = lambda *a: self._connected.set()
        c.on_disconnect = lambda *a: self._connected.clear()
        self._client = c
        c.connect_async(self.host, self.port, keepalive=30)
        c.loop_start()  # paho's network thread: connects, reconnects, acknowledges

    def _deliver(self, lines: list[str]) -> None:
        c = self._client
        if not self._connected.wait(self.timeout):
            raise DeliveryError(f"not connected to {self.host}:{self.port}")
        infos = [c.publish(self.topic, line, qos=self.qos) for line in lines]
        for info in infos:
            if info.rc != self._mqtt.MQTT_ERR_SUCCESS:
                raise DeliveryError(f"publish failed (rc {info.rc})")
            if self.qos:
                info.wait_for_publish(self.timeout)
                if not info.is_published():
                    raise DeliveryError("the broker did not acknowledge in time")

    def _shut(self) -> None:
        c = self._client
        if c is not None:
            c.disconnect()
            c.loop_stop()


__all__ = ["MqttSink"]
