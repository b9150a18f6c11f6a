"""Which hosts are this machine: the one rule the settings (plain http allowed without an
opt-in) and the proxy choice (never a proxy) apply to a base URL on loopback."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """localhost, 127.0.0.0/8 or ::1 (RFC 6890), and names under `.localhost` (RFC 6761,
    6.3): traffic that never leaves this machine. `host` as `urlparse` gives it (no
    brackets around an IPv6 address)."""
    if host.lower() in ("localhost", "localhost.") or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
