"""Which hosts are this machine: the one rule the settings (plain http allowed without an
opt-in) and the proxy choice (a proxy elsewhere needs the opt-in) apply to loopback."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """`localhost`, or an address in 127.0.0.0/8 or ::1 (RFC 6890): traffic that never
    leaves this machine. `host` as `urlparse` gives it (no brackets around an IPv6
    address). Names under `.localhost` are not counted, although RFC 6761 (6.3) reserves
    them: the system resolver may ask DNS for them (`hosts: files dns`), which may answer
    with any address."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1 (Python 3.11 says no)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)
