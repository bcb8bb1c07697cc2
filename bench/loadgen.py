"""Load on one built-in server, from inside a lab host (standard library only; the bench
pipes it to `python3 -` through `docker exec -i`).

    loadgen.py KIND ADDRESS PORT SERVER_NAME CONNECTIONS ROUNDS

KIND is tcp, tls, http, https or udp. CONNECTIONS clients open their connection (or UDP
socket) at once and all hold it; once every one is open (or has failed), each makes
ROUNDS exchanges on it, one after the other: a 64-byte line echoed (tcp, tls, udp), or
`GET /health` on a keep-alive connection answered `200 ok` (http, https). TLS trusts the
lab CA (/opt/labctl/pki/ca.pem) and verifies SERVER_NAME.

Prints one JSON object: exchanges done and failed, the exchange phase's wall time and
throughput, p50/p99/max of an exchange's latency and of connecting (TCP + TLS handshake),
and the first few distinct errors.
"""

from __future__ import annotations

import asyncio
import json
import resource
import ssl
import sys
import time

CA = "/opt/labctl/pki/ca.pem"
TIMEOUT = 30.0
UDP_TIMEOUT = 2.0


def raise_file_limit(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else need, hard))


def percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


class Run:
    def __init__(self, connections: int) -> None:
        self.connections = connections
        self.arrived = 0
        self.all_open = asyncio.Event()
        self.connect_times: list[float] = []
        self.latencies: list[float] = []
        self.failed = 0
        self.errors: dict[str, int] = {}
        self.started = self.ended = 0.0

    def arrive(self) -> None:
        self.arrived += 1
        if self.arrived == self.connections:
            self.started = time.perf_counter()
            self.all_open.set()

    def error(self, exc: BaseException | str, exchanges: int) -> None:
        self.failed += exchanges
        text = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
        self.errors[text[:160]] = self.errors.get(text[:160], 0) + 1


async def stream_client(run: Run, index: int, kind: str, address: str, port: int, name: str,
                        rounds: int, context: ssl.SSLContext | None) -> None:
    started = time.perf_counter()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(
            address, port, ssl=context, server_hostname=name if context else None), TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - every failure is counted
        run.error(f"connect: {type(exc).__name__}: {exc}", rounds)
        run.arrive()
        return
    run.connect_times.append(time.perf_counter() - started)
    run.arrive()
    await run.all_open.wait()
    done = 0
    try:
        for step in range(rounds):
            began = time.perf_counter()
            if kind in ("tcp", "tls"):
                line = f"{index:05d}-{step:03d}-".encode().ljust(63, b"x") + b"\n"
                writer.write(line)
                got = await asyncio.wait_for(reader.readexactly(len(line)), TIMEOUT)
                if got != line:
                    raise ValueError(f"echo differs: {got[:20]!r}")
            else:
                writer.write(f"GET /health HTTP/1.1\r\nHost: {name}\r\n\r\n".encode())
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
                lines = head.decode("latin-1").split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)}
                body = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", "0"))), TIMEOUT)
                if lines[0].split()[1] != "200" or body != b"ok\n":
                    raise ValueError(f"answer: {lines[0]!r} {body[:20]!r}")
            run.latencies.append(time.perf_counter() - began)
            done += 1
    except Exception as exc:  # noqa: BLE001
        run.error(exc, rounds - done)
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except Exception:  # noqa: BLE001 - closing is not measured
            pass


class Datagrams(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.waiting: asyncio.Future | None = None

    def datagram_received(self, data: bytes, addr) -> None:
        if self.waiting and not self.waiting.done():
            self.waiting.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if self.waiting and not self.waiting.done():
            self.waiting.set_exception(exc)


async def udp_client(run: Run, index: int, address: str, port: int, rounds: int) -> None:
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    try:
        transport, protocol = await loop.create_datagram_endpoint(Datagrams, remote_addr=(address, port))
    except Exception as exc:  # noqa: BLE001
        run.error(f"socket: {type(exc).__name__}: {exc}", rounds)
        run.arrive()
        return
    run.connect_times.append(time.perf_counter() - started)
    run.arrive()
    await run.all_open.wait()
    try:
        for step in range(rounds):
            datagram = f"{index:05d}-{step:03d}-".encode().ljust(64, b"x")
            protocol.waiting = loop.create_future()
            began = time.perf_counter()
            transport.sendto(datagram)
            try:
                got = await asyncio.wait_for(protocol.waiting, UDP_TIMEOUT)
            except asyncio.TimeoutError:
                run.error(f"no echo within {UDP_TIMEOUT:g}s (lost)", 1)
                continue
            except OSError as exc:
                run.error(exc, 1)
                continue
            if got != datagram:
                run.error("echo differs", 1)
                continue
            run.latencies.append(time.perf_counter() - began)
    finally:
        transport.close()


async def main(kind: str, address: str, port: int, name: str, connections: int, rounds: int) -> dict:
    raise_file_limit(connections * 2 + 64)
    run = Run(connections)
    context = None
    if kind in ("tls", "https"):
        context = ssl.create_default_context(cafile=CA)
    if kind == "udp":
        clients = [udp_client(run, index, address, port, rounds) for index in range(connections)]
    else:
        clients = [stream_client(run, index, kind, address, port, name, rounds, context)
                   for index in range(connections)]
    began = time.perf_counter()
    await asyncio.gather(*clients)
    ended = time.perf_counter()
    wall = ended - (run.started or began)
    ms = lambda value: None if value is None else round(value * 1000, 2)  # noqa: E731
    return {
        "kind": kind, "connections": connections, "rounds": rounds,
        "open": len(run.connect_times), "exchanges": len(run.latencies), "failed": run.failed,
        "total_s": round(ended - began, 3), "exchange_wall_s": round(wall, 3),
        "throughput": round(len(run.latencies) / wall, 1) if wall > 0 else None,
        "p50_ms": ms(percentile(run.latencies, 0.50)), "p99_ms": ms(percentile(run.latencies, 0.99)),
        "max_ms": ms(max(run.latencies, default=None)),
        "connect_p50_ms": ms(percentile(run.connect_times, 0.50)),
        "connect_p99_ms": ms(percentile(run.connect_times, 0.99)),
        "errors": dict(sorted(run.errors.items(), key=lambda item: -item[1])[:5]),
    }


if __name__ == "__main__":
    kind, address, port, name, connections, rounds = sys.argv[1:7]
    print(json.dumps(asyncio.run(main(kind, address, int(port), name, int(connections), int(rounds)))))
