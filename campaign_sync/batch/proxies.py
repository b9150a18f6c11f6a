"""Which proxy, if any, carries our requests to Batch: from the standard variables.

`HTTPS_PROXY` / `HTTP_PROXY` (for the base URL's scheme), then `ALL_PROXY`, lower-case
names first, unless `NO_PROXY` covers the host: the rules of curl and of Python's
`urllib.request`, whose functions read them here. httpx would read them too, but it builds
a transport for every variable set, so one unusable `ALL_PROXY` fails the client even when
`NO_PROXY` exempts Batch's host; here only the proxy that applies is built.
"""

from __future__ import annotations

import functools
import os
import ssl
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlparse

import httpx

from campaign_sync.hosts import has_url_shape, is_loopback, unsendable

SCHEMES = ("http", "https", "socks5", "socks5h")  # what httpx can speak to a proxy


class UnusableNetworkSetting(Exception):
    """A standard network variable (a proxy, a CA bundle) holds what no client can use."""


class UnusableProxy(UnusableNetworkSetting):
    """A proxy variable that applies to Batch's host holds a URL no client can use."""


def check_certificates() -> None:
    """Raises `UnusableNetworkSetting` naming SSL_CERT_FILE or SSL_CERT_DIR when the CA
    bundle they name cannot be loaded (every client loads it, https or not)."""
    ssl_context()


def ssl_context() -> ssl.SSLContext:
    """The TLS context every client of this process shares: the CA bundle of SSL_CERT_FILE
    or SSL_CERT_DIR when set (httpx's trust_env rule), else certifi's. Loaded once per
    pair of those variables: a load costs ~20 ms of CPU (cProfile of `sync`, issue 14),
    and a start used to pay it twice (this check, then the client). Raises
    `UnusableNetworkSetting` as `check_certificates` does."""
    return _ssl_context(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


@functools.lru_cache(maxsize=4)
def _ssl_context(cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    try:
        return httpx.create_ssl_context(trust_env=True)
    except (OSError, ssl.SSLError) as error:
        variable = "SSL_CERT_FILE" if os.environ.get("SSL_CERT_FILE") else "SSL_CERT_DIR"
        raise UnusableNetworkSetting(
            f"{variable}={os.environ.get(variable, '')} cannot be used as a CA bundle "
            f"({type(error).__name__}: {error}); fix or unset it"
        ) from None


@dataclass(frozen=True)
class Proxy:
    url: str
    variable: str  # the environment variable it came from, for messages

    def describe(self) -> str:
        return f"the proxy in {self.variable}"


def proxy_for(base_url: str, *, allow_insecure_http: bool = False) -> Proxy | None:
    """The proxy for requests to `base_url`, or None (none set, or `NO_PROXY` covers it).

    Raises `UnusableProxy` naming the variable when its value is not a proxy URL httpx can
    use (`http://`, `https://`, `socks5://`, `socks5h://` with a host), or when `base_url`
    is plain http and the proxy is on another host, unless `allow_insecure_http`
    (CAMPAIGN_SYNC_ALLOW_INSECURE_HTTP) says so.
    """
    target = urlparse(base_url)
    host = target.hostname or ""
    if urllib.request.proxy_bypass_environment(host):  # type: ignore[attr-defined]
        return None
    for name in (f"{target.scheme}_proxy", "all_proxy"):
        for variable in (name, name.upper()):
            value = os.environ.get(variable, "").strip()
            if value:
                proxy = _checked(value, variable)
                if target.scheme == "http" and not allow_insecure_http:
                    _on_this_machine(proxy)
                return proxy
    return None


def _on_this_machine(proxy: Proxy) -> None:
    """Raises `UnusableProxy` unless `proxy` runs on this machine: a plain-http request
    (the REST key in its header) would leave it for a proxy that reads it (and crosses the
    network in clear unless the proxy speaks https), which the settings refuse for the
    base URL itself without CAMPAIGN_SYNC_ALLOW_INSECURE_HTTP."""
    proxy_host = urlparse(proxy.url).hostname or ""
    if not is_loopback(proxy_host):
        raise UnusableProxy(
            f"the base URL is plain http and {proxy.variable} names a proxy on another host "
            f"({proxy_host}): the REST key would leave this machine in a plain-http request "
            "that proxy reads. Use https, exempt the base URL's host with NO_PROXY, or set "
            "CAMPAIGN_SYNC_ALLOW_INSECURE_HTTP=true if that is what you want"
        )


def _checked(value: str, variable: str) -> Proxy:
    url = value if "://" in value else f"http://{value}"
    if not has_url_shape(url, SCHEMES) or unsendable(url) is not None:
        raise UnusableProxy(
            f"{variable} is not a proxy URL campaign-sync can use (expected "
            f"{', '.join(s + '://HOST:PORT' for s in SCHEMES)}); fix it, or exempt Batch's "
            "host with NO_PROXY"
        )
    return Proxy(url, variable)
