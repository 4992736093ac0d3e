"""Frames/s from 2 remote instances over a 1 Gbit/s link, with and without LZ4 compression.

Two network namespaces joined by a veth pair stand in for a render host and a trainer
host; ``tc`` shapes both ends of the pair (``tbf rate 1gbit burst 256kb latency 50ms``
by default). The render side runs ``btgym serve`` (2 instances, CURVE keys, bound to
its veth address) in a mount namespace of its own with a private ``/dev/shm``, so that
frames cannot travel by reference, exactly as between two hosts. The trainer side runs
a :class:`btgym.data.StreamDataset` on the servers' addresses, once with
``BTGYM_COMPRESSION=off`` and once with the default (``auto``: compressed, as the peer
is not on loopback), alternating the order every round. Per contender it reports
frames/s in a steady-state window, bytes on the wire per frame (the veth's counter),
CPU per frame of the render side (all its processes) and of the trainer process, the
load average, and the compression ratio and LZ4's compress / decompress time measured
on frames that arrived (every 5th, at most 30; per frame the fastest of 5 runs, then
the median over frames). Everything is torn down afterwards, on failure and on SIGTERM.

Needs root (``ip netns``, ``tc``, ``mount``) and the ``lz4`` package::

    python benchmarks/remote_compression.py [--scenes cube,parts] [--rounds 3]
        [--seconds 12] [--rate 1gbit]

``--scenes cube-replay,parts-replay`` serve those scenes' real frames without rendering
(replayed from 16 rendered at start): the transport alone, where the link is the limit.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SCENES = {
    "cube": ("envs.cube:CubeScene", {}),
    "parts": ("envs.parts:PartsScene", {}),
    # The transport alone: Cube-v0's or Parts-v0's real frames, replayed without rendering.
    "cube-replay": ("benchmarks.scenes:ReplayScene", {"scene": "envs.cube:CubeScene"}),
    "parts-replay": ("benchmarks.scenes:ReplayScene", {"scene": "envs.parts:PartsScene"}),
}
SIZE = {"width": 640, "height": 512}
SERVER_IP, TRAINER_IP = "10.77.0.1", "10.77.0.2"
#: Seconds a contender streams before its window opens.
WARM_UP_S = 4.0
MODES = ("off", "auto")


def run(*command: str) -> None:
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


class Link:
    """Two namespaces and a shaped veth pair between them; :meth:`close` removes them."""

    def __init__(self, rate: str) -> None:
        tag = str(os.getpid())[-6:]
        self.server_ns, self.trainer_ns = f"btgym-srv-{tag}", f"btgym-trn-{tag}"
        self.server_dev, self.trainer_dev = f"bzs{tag}", f"bzt{tag}"
        self.created: list[str] = []
        try:
            for ns in (self.server_ns, self.trainer_ns):
                run("ip", "netns", "add", ns)
                self.created.append(ns)
            run("ip", "link", "add", self.server_dev, "type", "veth", "peer", "name",
                self.trainer_dev)  # fmt: skip
            for ns, dev, ip in (
                (self.server_ns, self.server_dev, SERVER_IP),
                (self.trainer_ns, self.trainer_dev, TRAINER_IP),
            ):
                run("ip", "link", "set", dev, "netns", ns)
                run("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", dev)
                run("ip", "-n", ns, "link", "set", dev, "up")
                run("ip", "-n", ns, "link", "set", "lo", "up")
                run("tc", "-n", ns, "qdisc", "add", "dev", dev, "root", "tbf", "rate", rate,
                    "burst", "256kb", "latency", "50ms")  # fmt: skip
        except BaseException:
            self.close()
            raise

    def tx_bytes(self) -> int:
        """Bytes the render side has sent on its end of the pair."""
        out = subprocess.run(
            ["ip", "netns", "exec", self.server_ns, "cat",
             f"/sys/class/net/{self.server_dev}/statistics/tx_bytes"],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        return int(out)

    def close(self) -> None:
        for ns in self.created:  # deleting a namespace deletes the veth pair in it
            subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)
        self.created = []


class RenderHost:
    """``btgym serve`` with 2 instances in the server namespace, private /dev/shm."""

    def __init__(self, link: Link, scene: str, keys: Path, work: Path) -> None:
        spec, kwargs = SCENES[scene]
        self.info = work / f"launch-{scene}.json"
        serve = [
            sys.executable, "-m", "btgym", "serve", spec, "-n", "2", "--kwargs",
            json.dumps({**kwargs, **SIZE}), "--bind", SERVER_IP, "--host", SERVER_IP,
            "--keys", str(keys), "--info", str(self.info), "--log-dir", str(work / "logs"),
        ]  # fmt: skip
        script = "mount -t tmpfs -o size=2g,mode=1777 tmpfs /dev/shm && exec " + " ".join(
            f"'{part}'" for part in serve
        )
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", link.server_ns, "unshare", "--mount", "sh", "-c", script],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        deadline = time.monotonic() + 300
        while not self.info.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                output = self.process.stdout.read() if self.process.stdout else ""
                self.close()
                raise RuntimeError(f"btgym serve did not start: {output[-2000:]}")
            time.sleep(0.2)

    def cpu_seconds(self) -> float:
        """CPU seconds of every process of the render side (serve and its instances)."""
        total = 0.0
        try:
            processes = [psutil.Process(self.process.pid)]
            processes += processes[0].children(recursive=True)
        except psutil.NoSuchProcess:
            return total
        for process in processes:
            try:
                times = process.cpu_times()
                total += times.user + times.system + times.children_user + times.children_system
            except psutil.NoSuchProcess:
                pass
        return total

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # serve stops and reaps its instances
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def contender(link: Link, host: RenderHost, keys: Path, mode: str, seconds: float) -> dict:
    """One measurement: a trainer process in the trainer namespace, window by its clock."""
    child = subprocess.Popen(
        ["ip", "netns", "exec", link.trainer_ns, sys.executable, __file__, "--measure",
         str(host.info), str(keys), str(seconds)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "BTGYM_COMPRESSION": mode},
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert child.stdout is not None
    try:
        assert child.stdout.readline().strip() == "start", "the trainer did not start"
        cpu, sent, load = host.cpu_seconds(), link.tx_bytes(), os.getloadavg()[0]
        assert child.stdout.readline().strip() == "end", "the trainer did not finish"
        cpu, sent = host.cpu_seconds() - cpu, link.tx_bytes() - sent
        result = json.loads(child.stdout.readline())
    finally:
        child.wait(120)
    frames = result["frames"]
    result.update(
        render_cpu_ms=1000 * cpu / frames,
        wire_bytes=sent / frames,
        load=(load + os.getloadavg()[0]) / 2,
    )
    return result


def fastest_ms(work: Any, repeats: int = 5) -> float:
    """The fastest of ``repeats`` runs of ``work()``, in milliseconds."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return 1000 * best


def measure(info_path: str, keys: str, seconds: float) -> None:
    """The trainer: stream from the servers, count frames in the window, time the codec."""
    import numpy as np

    from btgym import LaunchInfo
    from btgym.client import Client
    from btgym.data import StreamDataset
    from btgym.wire import compression
    from btgym.wire.security import ClientKeys

    curve = ClientKeys.load(Path(keys) / "trainer.key_secret", Path(keys) / "server.key")
    info = LaunchInfo.read(info_path)
    probe = Client(info.addresses[0], timeout=60, curve=curve)
    probe.hello()
    codec, by_reference = probe.compression, probe.frame_files is not None
    probe.close()
    items = iter(StreamDataset(addresses=info.addresses, curve=curve, seed=0, timeout=60))
    end = time.monotonic() + WARM_UP_S
    while time.monotonic() < end:
        next(items)
    process = psutil.Process()
    times = process.cpu_times()
    print("start", flush=True)
    frames, kept, started = 0, [], time.monotonic()
    while time.monotonic() < started + seconds:
        obs = next(items)["obs"]
        frames += 1
        if frames % 5 == 0 and len(kept) < 30:
            kept.append(np.array(obs))
    wall = time.monotonic() - started
    after = process.cpu_times()
    print("end", flush=True)
    ratios, compress_ms, decompress_ms = [], [], []
    for frame in kept:  # per frame the fastest of 5 runs: its CPU cost, not preemptions
        compress_ms.append(fastest_ms(lambda f=frame: compression.compress(compression.LZ4, f)))
        data = compression.compress(compression.LZ4, frame)
        ratios.append(frame.nbytes / len(data) if data is not None else 1.0)
        if data is not None:
            decompress_ms.append(
                fastest_ms(lambda d=data, n=frame.nbytes: compression.decompress("lz4", d, n))
            )
    ratio = statistics.median(ratios)
    cpu = (after.user + after.system) - (times.user + times.system)
    print(
        json.dumps(
            {
                "codec": codec,
                "by_reference": by_reference,
                "frames": frames,
                "fps": frames / wall,
                "trainer_cpu_ms": 1000 * cpu / frames,
                "ratio": ratio,
                "compress_ms": statistics.median(compress_ms),
                "decompress_ms": statistics.median(decompress_ms) if decompress_ms else None,
            }
        ),
        flush=True,
    )
    os._exit(0)  # the stream's instances are the servers': nothing of ours to wait for


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", default="cube,parts")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--rate", default="1gbit", help="tc tbf rate of both link ends")
    parser.add_argument("--measure", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(args.measure[0], args.measure[1], float(args.measure[2]))
        return
    if os.geteuid() != 0:
        sys.exit("needs root: ip netns, tc and mount")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # teardown runs in finally
    work = Path(tempfile.mkdtemp(prefix="btgym-remote-"))
    link = Link(args.rate)
    hosts: list[RenderHost] = []
    try:
        subprocess.run(
            [sys.executable, "-m", "btgym", "keys", str(work / "keys"), "--clients", "trainer"],
            check=True, stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        print(f"link: veth pair, tc tbf rate {args.rate} burst 256kb latency 50ms, both ends")
        for name in args.scenes.split(","):
            host = RenderHost(link, name, work / "keys", work)
            hosts.append(host)
            results: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
            for round_ in range(args.rounds):
                order = MODES if round_ % 2 == 0 else MODES[::-1]
                for mode in order:
                    result = contender(link, host, work / "keys", mode, args.seconds)
                    results[mode].append(result)
                    print(f"  {name} round {round_ + 1} {mode}: {json.dumps(result)}", flush=True)
            report(name, results)
            host.close()
    finally:
        for host in hosts:
            host.close()
        link.close()
        shutil.rmtree(work, ignore_errors=True)


def report(name: str, results: dict[str, list[dict[str, Any]]]) -> None:
    def median(mode: str, key: str) -> float:
        return statistics.median(r[key] for r in results[mode] if r[key] is not None)

    print(f"{name} (medians of {len(results['off'])} rounds):")
    for mode in MODES:
        codec = results[mode][0]["codec"]
        print(
            f"  {mode:4} codec={codec}: {median(mode, 'fps'):6.1f} frames/s, "
            f"{median(mode, 'wire_bytes') / 1000:7.1f} kB/frame on the wire, render side "
            f"{median(mode, 'render_cpu_ms'):5.1f} ms CPU/frame, trainer "
            f"{median(mode, 'trainer_cpu_ms'):5.2f} ms CPU/frame, load {median(mode, 'load'):.1f}"
        )
    ratios = [r["fps"] / o["fps"] for r, o in zip(results["auto"], results["off"], strict=True)]
    wire = median("off", "wire_bytes") / median("auto", "wire_bytes")
    print(
        f"  compressed/plain frames/s per round: {', '.join(f'{x:.2f}' for x in ratios)}; "
        f"bytes on the wire plain/compressed {wire:.1f}x; "
        f"LZ4 on these frames: ratio {median('auto', 'ratio'):.1f}x, compress "
        f"{median('auto', 'compress_ms'):.2f} ms, decompress "
        f"{median('auto', 'decompress_ms'):.2f} ms"
    )


if __name__ == "__main__":
    main()
