"""Which HTTP proxy a URL goes through: the standard environment variables (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY,
NO_PROXY, as upstream's axios honours them), never for loopback addresses (the sandbox, a local approval server)."""

from __future__ import annotations

import ipaddress
import urllib.request
from urllib.parse import urlsplit

import httpx

from kms.http_limits import deadline_aware_transport


def _loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def proxy_for(url: str) -> str | None:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not host or _loopback(host) or urllib.request.proxy_bypass(host):
        return None
    proxies = urllib.request.getproxies()
    return proxies.get(parts.scheme) or proxies.get("all")


def transport_for(url: str, limits: httpx.Limits) -> httpx.HTTPTransport:
    """An httpx transport for requests to ``url``'s host, through the proxy the environment names for it; its socket
    operations end by the request's total deadline (kms.http_limits)."""
    proxy = proxy_for(url)
    return deadline_aware_transport(limits, httpx.Proxy(proxy) if proxy else None)
