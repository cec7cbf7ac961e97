"""The one mapping of transport failures (refused, DNS, proxy, TLS, timeouts, a cut body) to the user's error.
No `bpy` module use."""

from __future__ import annotations

import os
import ssl
from urllib.parse import urlsplit

import requests

from . import errors
from .settings import Settings
from .streaming import incomplete

__all__ = ["bundle_error", "transport_error"]


def transport_error(
    settings: Settings, verify: str | bool, exc: OSError, url: str, received: int = 0, total: int | None = None
) -> errors.TriverseError:
    """The error for a request to `url` that failed on the way (`received` of `total` bytes of a body read)."""
    host = urlsplit(url).netloc or url
    chain = _causes(exc)
    names = {type(e).__name__ for e in chain}
    if isinstance(
        exc, (requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema, requests.exceptions.InvalidURL)
    ):
        return errors.ConnectionFailed(
            f'The service URL "{settings.base_url}" is not valid: fix it in the add-on preferences.'
        )
    if isinstance(exc, requests.exceptions.TooManyRedirects):
        return errors.UnexpectedResponse(
            f"{host} redirected too many times: check the service URL and any proxy or portal in between."
        )
    if isinstance(exc, requests.exceptions.SSLError):
        if any(_unusable_bundle(e) for e in chain):
            return bundle_error(verify, missing=False)
        return errors.TlsError(
            f"The secure connection to {host} failed (its certificate could not be verified): if your "
            "network uses an inspecting proxy, set its CA bundle in the add-on preferences "
            "(verification is never turned off)."
        )
    if isinstance(exc, requests.exceptions.ProxyError):
        return errors.ConnectionFailed(
            f"The proxy refused or failed the connection to {host}: check the proxy in the add-on "
            "preferences or the HTTPS_PROXY variable."
        )
    if isinstance(exc, requests.exceptions.ConnectTimeout) or "ConnectTimeoutError" in names:
        return errors.TimedOut(
            f"{host} did not accept a connection within {settings.connect_timeout:g} s: check your "
            "network, VPN or proxy, or raise the connect timeout in the add-on preferences."
        )
    if isinstance(exc, requests.exceptions.ReadTimeout) or "ReadTimeoutError" in names or "TimeoutError" in names:
        return errors.TimedOut(
            f"{host} sent nothing for {settings.read_timeout:g} s: try again later, or raise the read "
            "timeout in the add-on preferences."
        )
    if isinstance(exc, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)) or (
        received and isinstance(exc, requests.exceptions.ConnectionError)
    ):
        return incomplete(received, total)
    if "NameResolutionError" in names or "gaierror" in names:
        return errors.ConnectionFailed(
            f"Cannot find {host} (name lookup failed): check your internet connection, DNS, VPN or proxy."
        )
    return errors.ConnectionFailed(
        f"Cannot reach Triverse at {host}: check your internet connection, proxy or VPN, and the service "
        "URL in the add-on preferences."
    )


def bundle_error(verify: str | bool, missing: bool) -> errors.TlsError:
    """The CA bundle in effect (preferences, else REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE) is unusable."""
    what = "does not exist" if missing else "holds no certificate in PEM form"
    pem = "its CA certificate exported as PEM (Base-64 text)"
    if isinstance(verify, str):
        return errors.TlsError(
            f"The CA bundle set in the preferences ({verify}) {what}: choose your proxy's certificate, "
            f"{pem}, or clear the field."
        )
    name = next((n for n in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE") if os.environ.get(n)), "REQUESTS_CA_BUNDLE")
    return errors.TlsError(
        f"The CA bundle in {name} ({os.environ.get(name, '')}) {what}: point it to your proxy's certificate, "
        f"{pem}, or unset it."
    )


def _unusable_bundle(exc: BaseException) -> bool:
    """OpenSSL found no certificate in the CA bundle (a DER file, a key, anything but PEM certificates)."""
    return isinstance(exc, ssl.SSLError) and (
        getattr(exc, "reason", None) == "NO_CERTIFICATE_OR_CRL_FOUND" or getattr(exc, "library", None) == "PEM"
    )


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception and what it wraps (requests and urllib3 nest the root cause in args and reason)."""
    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo and len(seen) < 20:
        current = todo.pop()
        if current in seen:
            continue
        seen.append(current)
        for nxt in (current.__cause__, current.__context__, getattr(current, "reason", None), *current.args):
            if isinstance(nxt, BaseException):
                todo.append(nxt)
    return seen
