"""The MQTT sink against a real broker (Debian's `mosquitto`) on 127.0.0.1.

Each test starts its own broker on a free port with a one-listener config, subscribes
with the real paho client, and stops the broker by its PID.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

mqtt = pytest.importorskip("paho.mqtt.client", reason="pip install 'avfuse[mqtt]'")

from avfuse.engine.pipeline import Pipeline  # noqa: E402
from avfuse.engine.records import RunInfo, WarningRecord  # noqa: E402
from avfuse.engine.sink_mqtt import MqttSink  # noqa: E402
from avfuse.engine.sinks import make_sink  # noqa: E402
from avfuse.errors import UsageError  # noqa: E402
from tests.engine.pipeline_kit import Collect, ScriptedSource, config  # noqa: E402

MOSQUITTO = shutil.which("mosquitto") or (
    "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
)
pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(MOSQUITTO is None, reason="needs apt-get install -y mosquitto"),
]
INFO = RunInfo(model="m", labels=("a",), streams=())


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Broker:
    """A private mosquitto listening on 127.0.0.1:port."""

    def __init__(self, folder: Path, port: int) -> None:
        self.port = port
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
        self.log = folder / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Broker:
        assert MOSQUITTO is not None
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf)], stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=open(self.log, "wb"),  # noqa: SIM115
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen: {self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


class Subscriber:
    """Collects the messages published to `topic`."""

    def __init__(self, port: int, topic: str) -> None:
        self.messages: list[str] = []
        self.ready = threading.Event()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        c.on_connect = lambda cl, *a: cl.subscribe(topic, qos=1)
        c.on_subscribe = lambda *a: self.ready.set()
        c.on_message = lambda cl, ud, msg: self.messages.append(msg.payload.decode())
        c.connect("127.0.0.1", port)
        c.loop_start()
        assert self.ready.wait(10), "the subscriber did not subscribe"
        self.client = c

    def wait_for(self, n: int, timeout: float = 10.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path, _port()).start()
    yield b
    b.stop()


def test_every_record_of_a_real_run_is_one_message_on_the_topic(backend, broker) -> None:  # noqa: ANN001
    sub = Subscriber(broker.port, "site/avfuse")
    try:
        collect = Collect()
        sink = MqttSink(url=f"mqtt://127.0.0.1:{broker.port}/site/avfuse")
        src = ScriptedSource(duration_s=3.0, card=(1.0, 2.0))
        Pipeline(streams=[src], backend=backend, sinks=[sink, collect], config=config()).run()
        want = [r.json_line() for r in collect.records]
        assert sub.wait_for(len(want)) == want
        assert [json.loads(m)["type"] for m in want] == ["onset", "event", "summary"]
        assert sink.figures()["sent"] == 3
    finally:
        sub.close()


def test_records_made_while_the_broker_is_down_are_delivered_when_it_comes_back(
    tmp_path: Path,
) -> None:
    port = _port()
    b = Broker(tmp_path, port)  # not started yet: the box booted before its broker
    sink = MqttSink(url=f"mqtt://127.0.0.1:{port}/t", backlog=5, timeout=1.0)
    sink.on_start(INFO)
    try:
        for i in range(8):  # 8 records into a backlog of 5: the 3 oldest are dropped
            sink.on_record(WarningRecord(source="s", kind="k", message=f"m{i}"))
        deadline = time.monotonic() + 10
        while sink.figures()["failures"] == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sink.figures()["failures"] >= 1 and sink.figures()["sent"] == 0
        b.start()
        sub = Subscriber(port, "t")
        try:
            got = sub.wait_for(5, timeout=30)  # paho reconnects (1 s, then back-off)
            assert [json.loads(m)["message"] for m in got] == [f"m{i}" for i in range(3, 8)]
            deadline = time.monotonic() + 10  # counted once the broker acknowledged them
            while sink.figures()["sent"] < 5 and time.monotonic() < deadline:
                time.sleep(0.02)
            figures = sink.figures()
            assert (figures["sent"], figures["dropped"], figures["queued"]) == (5, 3, 0)
        finally:
            sub.close()
    finally:
        sink.close()
        b.stop()


def test_mqtt_options_are_parsed_and_checked() -> None:
    s = make_sink("mqtt://u:secret@127.0.0.1:1884/a/b,qos=0,backlog=9,timeout=1.5")
    assert isinstance(s, MqttSink)
    assert (s.host, s.port, s.topic, s.qos, s.timeout) == ("127.0.0.1", 1884, "a/b", 0, 1.5)
    assert "secret" not in s.name
    assert make_sink("mqtts://broker.local/x").port == 8883  # type: ignore[attr-defined]
    for spec, words in [
        ("mqtt://127.0.0.1", "use mqtt://HOST"),
        ("mqtt://127.0.0.1/a/#", "no wildcards"),
        ("mqtt://127.0.0.1/a,qos=2", "qos must be 0 or 1"),
        ("mqtt://127.0.0.1/a,retain=1", "'retain=1' is not an option"),
    ]:
        with pytest.raises(UsageError, match=words):
            make_sink(spec)
