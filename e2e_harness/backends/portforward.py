"""``kubectl port-forward`` to a Service on a port the OS picks (never a fixed local port)."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from ..waiting import WaitTimeout, deadline_clock

FORWARDING = re.compile(r"Forwarding from 127\.0\.0\.1:(\d+) ->")


@dataclass
class PortForward:
    kubectl: Path
    kubeconfig: Path
    namespace: str
    service: str
    remote_port: int
    kube_context: str | None = None
    local_port: int | None = None
    _proc: subprocess.Popen | None = field(default=None, repr=False)

    def command(self) -> list[str]:
        cmd = [str(self.kubectl), "--kubeconfig", str(self.kubeconfig), "--namespace", self.namespace,
               "port-forward", "--address", "127.0.0.1", f"service/{self.service}", f":{self.remote_port}"]
        if self.kube_context:
            cmd[1:1] = ["--context", self.kube_context]
        return cmd

    def start(self, timeout: float = 30) -> int:
        """Start the forward and return the local port, once kubectl reports it."""
        self._proc = subprocess.Popen(self.command(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, text=True, start_new_session=True)
        remaining = deadline_clock(timeout)
        seen: list[str] = []
        assert self._proc.stdout is not None
        while remaining() > 0:
            line = self._proc.stdout.readline()  # kubectl prints the line within a second or exits
            if not line:
                break
            seen.append(line.rstrip())
            if m := FORWARDING.search(line):
                self.local_port = int(m.group(1))
                return self.local_port
        self.stop()
        raise WaitTimeout(f"kubectl port-forward to {self.namespace}/{self.service}:{self.remote_port}",
                          timeout, " | ".join(seen[-5:]) or "no output", "is the Service deployed and its pod Running?")

    def stop(self) -> None:
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
