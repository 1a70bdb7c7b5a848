"""What the machine did during a benchmark run (atelier_bench.fleet), beyond each tier's CPU
seconds: the counters that make a figure from one machine readable on another.

* `/proc/stat`: steal (a virtual machine's CPU time taken by its host), softirq, and the
  machine's context switches;
* per process tree: voluntary and involuntary context switches;
* the kernel's TCP counters (`/proc/net/netstat`, `/proc/net/snmp`): accept-queue overflows and
  drops, retransmitted segments, retransmission timeouts, tail-loss probes; and the per-CPU
  input queue's drops and squeezes (`/proc/net/softnet_stat`);
* `Queues`: sampled socket queues (ss) during the run: the listen sockets' accept queues, and
  bytes that arrived on an established connection and wait for the process to read them, on
  the servers' side (the request waits for nginx) and on the clients' side (the answer waits
  for the load generator).
"""
import os
import subprocess
import threading
import time
from pathlib import Path

import psutil

TCP_COUNTERS = {  # name in the report: (file, section, field)
    "listen_overflows": ("netstat", "TcpExt", "ListenOverflows"),
    "listen_drops": ("netstat", "TcpExt", "ListenDrops"),
    "retransmitted_segments": ("snmp", "Tcp", "RetransSegs"),
    "retransmission_timeouts": ("netstat", "TcpExt", "TCPTimeouts"),
    "loss_probes": ("netstat", "TcpExt", "TCPLossProbes"),
}


def _proc_table(name: str) -> dict:
    """{section: {field: value}} of /proc/net/netstat or /proc/net/snmp (header line, value line)."""
    table = {}
    lines = Path(f"/proc/net/{name}").read_text().splitlines()
    for header, values in zip(lines[::2], lines[1::2]):
        section, fields = header.split(":", 1)
        table[section] = dict(zip(fields.split(), (int(v) for v in values.split(":", 1)[1].split())))
    return table


def _cpu_and_switches():
    fields, switches = None, 0
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu "):
            fields = [int(v) for v in line.split()[1:]]
        elif line.startswith("ctxt "):
            switches = int(line.split()[1])
    return fields, switches


def _softnet():
    dropped = squeezed = 0
    for line in Path("/proc/net/softnet_stat").read_text().splitlines():
        values = [int(v, 16) for v in line.split()]
        dropped += values[1]
        squeezed += values[2]
    return dropped, squeezed


class Counters:
    """Machine counters between start (construction) and stop()."""

    def __init__(self):
        self.before = self._read()

    @staticmethod
    def _read() -> dict:
        cpu, switches = _cpu_and_switches()
        tables = {"netstat": _proc_table("netstat"), "snmp": _proc_table("snmp")}
        tcp = {name: tables[f][section].get(field, 0) for name, (f, section, field) in TCP_COUNTERS.items()}
        return {"cpu": cpu, "switches": switches, "tcp": tcp, "softnet": _softnet(), "at": time.monotonic()}

    def stop(self) -> dict:
        after = self._read()
        before = self.before
        # /proc/stat cpu: user nice system idle iowait irq softirq steal guest guest_nice (jiffies)
        delta = [a - b for a, b in zip(after["cpu"], before["cpu"])]
        total = sum(delta[:8]) or 1
        hz = os.sysconf("SC_CLK_TCK")
        return {"seconds": round(after["at"] - before["at"], 2),
                "steal_share": round(delta[7] / total, 4),
                "steal_seconds": round(delta[7] / hz, 2),
                "softirq_seconds": round(delta[6] / hz, 2),
                "idle_share": round(delta[3] / total, 4),
                "iowait_share": round(delta[4] / total, 4),
                "context_switches": after["switches"] - before["switches"],
                "tcp": {k: after["tcp"][k] - before["tcp"][k] for k in TCP_COUNTERS},
                "softnet_dropped": after["softnet"][0] - before["softnet"][0],
                "softnet_squeezed": after["softnet"][1] - before["softnet"][1]}


def core_speed(seconds: float = 0.3) -> float:
    """A fixed piece of pure-Python work, timed in CPU time (not wall time, so other processes
    sharing the core do not count, their effect on its caches does): millions of loop steps per
    CPU-second. Two machines "of the same kind" whose figures differ show it here."""
    steps, started = 0, time.process_time()
    while time.process_time() - started < seconds:
        total = 0
        for i in range(100_000):
            total += i * i
        steps += 100_000
    return round(steps / (time.process_time() - started) / 1e6, 1)


class Queues(threading.Thread):
    """Samples `ss` every `interval` s while running: per listening port of `ports`, the most
    connections waiting in its accept queue; and the most bytes waiting to be read, summed over
    the established connections on each side (server side: local port in ports; client side:
    peer port in ports)."""

    def __init__(self, ports, interval: float = 0.1):
        super().__init__(daemon=True)
        self.ports = {int(p) for p in ports}
        self.interval = interval
        self.running = True
        self.samples = 0
        self.accept_max = {}
        self.server_unread_max = 0
        self.client_unread_max = 0
        self.client_unread_nonzero = 0

    def run(self):
        while self.running:
            try:
                listen = subprocess.run(["ss", "-Hlnt"], capture_output=True, text=True, timeout=5).stdout
                established = subprocess.run(["ss", "-Hnt", "state", "established"], capture_output=True,
                                             text=True, timeout=5).stdout
            except (OSError, subprocess.TimeoutExpired):
                return
            for line in listen.splitlines():
                parts = line.split()  # State Recv-Q Send-Q Local Peer
                port = int(parts[3].rsplit(":", 1)[1])
                if port in self.ports:
                    self.accept_max[port] = max(self.accept_max.get(port, 0), int(parts[1]))
            server = client = 0
            for line in established.splitlines():
                parts = line.split()  # Recv-Q Send-Q Local Peer (state filtered: no State column)
                if len(parts) < 4:
                    continue
                unread = int(parts[0])
                if int(parts[2].rsplit(":", 1)[1]) in self.ports:
                    server += unread
                elif int(parts[3].rsplit(":", 1)[1]) in self.ports:
                    client += unread
            self.server_unread_max = max(self.server_unread_max, server)
            self.client_unread_max = max(self.client_unread_max, client)
            self.client_unread_nonzero += client > 0
            self.samples += 1
            time.sleep(self.interval)

    def stop(self) -> dict:
        self.running = False
        self.join(10)
        return {"samples": self.samples, "accept_queue_max": {str(p): n for p, n in sorted(self.accept_max.items())},
                "server_unread_bytes_max": self.server_unread_max,
                "client_unread_bytes_max": self.client_unread_max,
                "client_unread_share_of_samples": round(self.client_unread_nonzero / max(self.samples, 1), 3)}


def process_tree(roots):
    """The processes of the trees rooted at the pids in roots (those still running)."""
    for root in roots:
        try:
            process = psutil.Process(root)
            yield from [process, *process.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue


def switches(roots) -> int:
    """Context switches (voluntary + involuntary) so far of the process trees rooted at roots."""
    total = 0
    for each in process_tree(roots):
        try:
            counts = each.num_ctx_switches()
            total += counts.voluntary + counts.involuntary
        except psutil.NoSuchProcess:
            pass
    return total
