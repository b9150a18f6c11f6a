"""What the network rules say of a host or URL, one rule each for the settings (the base
URL) and the proxy choice: which hosts are this machine (plain http to them needs no
opt-in), which strings have a URL's shape, and which URLs httpx, which sends our
requests, cannot use."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlparse


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


def unsendable(url: str) -> str | None:
    """Why httpx cannot use `url` (a host that is no valid IDNA name such as `xn--zz.com`,
    a port after an IPv6 address such as `[::1]x`, a control character), or None. urlparse
    accepts these, and each pass then ended in an 'unexpected error'. httpx is imported
    here, when a URL is checked, not with this module."""
    import httpx

    try:
        httpx.URL(url).host  # noqa: B018 (reading the host decodes an IDNA name: it may fail)
    except (httpx.InvalidURL, ValueError) as error:  # idna's IDNAError is a ValueError
        return str(error).splitlines()[0][:120] if str(error) else type(error).__name__
    return None


def has_url_shape(url: str, schemes: tuple[str, ...]) -> bool:
    """Whether `url` reads as a URL of one of `schemes` (lower case) with a host, a port
    (if any) from 1 to 65535 and no white space: what the base URL and a proxy must be
    before `unsendable` asks httpx. urlparse raises on an unclosed `[` and on a port that
    is no number or beyond 65535: False then."""
    try:
        parsed = urlparse(url)
        port_ok = parsed.port is None or parsed.port > 0
    except ValueError:
        return False
    has_host = bool(parsed.hostname)
    return (
        parsed.scheme.lower() in schemes
        and has_host
        and port_ok
        and not any(char.isspace() for char in url)
    )
