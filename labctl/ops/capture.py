"""Packet captures: the verb `labctl capture` and the captures wire checks run around.

A capture runs tcpdump in a short-lived helper: in a host's namespace for `HOST` (every
interface) or `HOST:NETWORK` (one), or in the engine's own namespace on the network's
bridge for `NETWORK`, which sees every frame that crosses that network. The file comes back
through the engine, so nothing is mounted from this machine. Reading it is
labctl.checks.pcap's work.
"""

from __future__ import annotations

import struct

from ..checks.pcap import Packet, merge_pcaps, read_pcap
from ..engines.base import Engine
from ..model.targets import capture_points
from ..model.topology import Topology
from ..names import program
from .events import publish

CAPTURE_FILE = "/tmp/capture.pcap"
READY_TEXT = "listening on"
LONGEST = 3600.0   # seconds a capture may run when nobody says how long


class Capture:
    """A running capture: `with Capture(...) as capture:` ... then `capture.packets`."""

    def __init__(self, topology: Topology, engine: Engine, image: str, target: str,
                 expression: str | None = None, deadline: float = LONGEST):
        """`deadline`: seconds after which the helper ends the capture itself, so one whose
        owner died (a killed labctl) does not run, with network-admin rights, forever."""
        self.topology, self.engine, self.image = topology, engine, image
        self.deadline = deadline
        self.target = target
        self.points = capture_points(topology, target)
        self.expression = expression.split() if expression else []
        self.helpers: list[str] = []
        self.data = b""
        self.output = ""

    def start(self) -> Capture:
        points = self.points
        if len(points) > 1:
            # A network is watched at every member that answers; one on a stopped machine
            # cannot send anything onto it anyway.
            away = self.engine.unreachable_hosts(self.topology)
            points = [point for point in points if point.host not in away] or points
        try:
            for point in points:
                argv = ["python3", program("netadmin"), "capture", point.where, CAPTURE_FILE,
                        f"{self.deadline:.0f}", *self.expression]
                self.helpers.append(self.engine.start_helper(self.topology, point.host, self.image, argv,
                                                             ["NET_ADMIN", "NET_RAW"], READY_TEXT))
        except BaseException:
            self.stop()
            raise
        publish(self.topology, self.engine, "capture", "started", self.target, target=self.target,
                filter=" ".join(self.expression))
        return self

    def stop(self) -> bytes:
        files, outputs = [], []
        while self.helpers:
            output, data = self.engine.stop_helper(self.helpers.pop(0), CAPTURE_FILE)
            outputs.append(output)
            files.append(data)
        if files:
            self.output = "\n".join(outputs)
            self.data = files[0] if len(files) == 1 else merge_pcaps(files)
            publish(self.topology, self.engine, "capture", "stopped", self.target, target=self.target,
                    packets=records(self.data), bytes=len(self.data))
        return self.data

    def __enter__(self) -> Capture:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def packets(self) -> list[Packet]:
        return list(read_pcap(self.data))


def records(data: bytes) -> int:
    """How many frames a pcap file holds, by its record headers alone (0 for what is not one)."""
    order = {b"\xd4\xc3\xb2\xa1": "<", b"\x4d\x3c\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">",
             b"\xa1\xb2\x3c\x4d": ">"}.get(data[:4])
    count, offset = 0, 24
    while order and offset + 16 <= len(data):
        offset += 16 + struct.unpack_from(order + "I", data, offset + 8)[0]
        count += 1
    return count
