"""systemd notification (sd_notify): READY, STOPPING, WATCHDOG keep-alives, STATUS.

Implements the datagram protocol of sd_notify(3) with the standard library: a message to the
unix socket named by ``$NOTIFY_SOCKET`` (a leading ``@`` is an abstract socket). Without that
variable (not under systemd, or Type=simple) every call does nothing.
"""

from __future__ import annotations

import contextlib
import os
import socket


class Notifier:
    """Tells systemd how the daemon is doing."""

    def __init__(self, address: str | None = None) -> None:
        self.address = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        self._socket: socket.socket | None = None
        if self.address:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        usec = os.environ.get("WATCHDOG_USEC", "")
        pid = os.environ.get("WATCHDOG_PID", "")
        watchdog = usec.isdigit() and (not pid or pid == str(os.getpid()))
        self.watchdog_interval_s: float | None = int(usec) / 2_000_000 if watchdog else None
        """Half the watchdog timeout, as sd_watchdog_enabled(3) recommends; None: no watchdog."""

    @property
    def enabled(self) -> bool:
        """Whether systemd listens."""
        return self._socket is not None

    def notify(self, message: str) -> None:
        """Send one notification; errors are ignored (systemd may be restarting)."""
        if self._socket is None:
            return
        target = self.address
        if target.startswith("@"):
            target = "\0" + target[1:]
        with contextlib.suppress(OSError):
            self._socket.sendto(message.encode(), target)

    def ready(self, status: str = "") -> None:
        """The daemon serves: listeners up, stores reachable."""
        self.notify("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def reloading(self) -> None:
        """A reload started (systemd waits for READY=1 again)."""
        self.notify("RELOADING=1")

    def stopping(self) -> None:
        """Shutdown started."""
        self.notify("STOPPING=1")

    def watchdog(self) -> None:
        """The event loop is alive."""
        self.notify("WATCHDOG=1")

    def status(self, text: str) -> None:
        """A one-line status for ``systemctl status``."""
        self.notify(f"STATUS={text}")

    def close(self) -> None:
        """Close the socket."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None
