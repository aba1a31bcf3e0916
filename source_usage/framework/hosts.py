"""Where a vendor's credentials may go: one policy for next-page links and redirects of every vendor.

A request carrying a vendor's credentials goes only to the configured base URL's origin (scheme, host and
port). A vendor that documents redirects to its own shard hosts (`api.example.com` answering with
`n149.example.com`) may also declare `shard_redirects`: then any https host under the configured host's
parent domain is allowed too. Anything else is refused before a request is sent.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Optional
from urllib.parse import urlsplit

from source_usage.framework.errors import ForeignHost

DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Origin:
    scheme: str
    host: str
    port: int

    @classmethod
    def of(cls, url: str) -> Optional["Origin"]:
        try:
            parts = urlsplit(url)
            host = (parts.hostname or "").rstrip(".").lower()
            port = parts.port or DEFAULT_PORTS.get(parts.scheme.lower(), 0)
        except ValueError:
            return None
        if not host or parts.scheme.lower() not in DEFAULT_PORTS:
            return None
        return cls(parts.scheme.lower(), host, port)


def parent_domain(host: str) -> Optional[str]:
    """`example.com` for `api.example.com`; None for IP addresses and hosts with fewer than three labels."""
    try:
        ipaddress.ip_address(host.strip("[]"))
        return None
    except ValueError:
        pass
    labels = host.split(".")
    return ".".join(labels[1:]) if len(labels) >= 3 else None


@dataclass(frozen=True)
class HostPolicy:
    base: Origin
    shard_domain: Optional[str] = None

    @classmethod
    def for_base_url(cls, base_url: str, shard_redirects: bool = False) -> "HostPolicy":
        base = Origin.of(base_url)
        if base is None:
            raise ValueError(f"not an http(s) URL with a host: {base_url!r}")
        return cls(base, parent_domain(base.host) if shard_redirects else None)

    def allows(self, url: str) -> bool:
        origin = Origin.of(url)
        if origin is None:
            return False
        if origin == self.base:
            return True
        return bool(
            self.shard_domain
            and origin.scheme == "https"
            and origin.port == 443
            and origin.host.endswith("." + self.shard_domain)
        )

    def check(self, url: str, what: str) -> None:
        """Raise ForeignHost (before anything is sent) unless `url` may receive the credentials."""
        if not self.allows(url):
            raise ForeignHost(url, what)
