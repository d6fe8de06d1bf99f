"""AWS Signature Version 4 for request headers. Pure: the signing time is an argument."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, unquote, urlsplit

ALGORITHM = "AWS4-HMAC-SHA256"


@dataclass(frozen=True, slots=True)
class AwsKey:
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None


def amz_date(now: float | datetime) -> str:
    when = now if isinstance(now, datetime) else datetime.fromtimestamp(now, UTC)
    return when.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    k = _hmac(("AWS4" + secret).encode(), date)
    k = _hmac(k, region)
    k = _hmac(k, service)
    return _hmac(k, "aws4_request")


def canonical_uri(path: str) -> str:
    """Each segment URI-encoded once more (non-S3 services sign the encoded path)."""
    return "/".join(quote(seg, safe="-_.~") for seg in (path or "/").split("/")) or "/"


def canonical_query(query: str) -> str:
    pairs = []
    for item in query.split("&") if query else []:
        name, _, value = item.partition("=")
        pairs.append((quote(unquote(name), safe="-_.~"), quote(unquote(value), safe="-_.~")))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def _canonical_headers(headers: dict[str, str]) -> tuple[str, str]:
    items = sorted((k.lower().strip(), " ".join(v.strip().split())) for k, v in headers.items())
    return "".join(f"{k}:{v}\n" for k, v in items), ";".join(k for k, _ in items)


def sign(method: str, url: str, headers: dict[str, str], body: bytes, key: AwsKey,
         region: str, service: str, now: float | datetime) -> dict[str, str]:
    """The headers to send: ``headers`` plus host, x-amz-date, (session token) and
    authorization. Every header given is signed."""
    parts = urlsplit(url)
    stamp = amz_date(now)
    out = {k.lower(): v for k, v in headers.items()}
    out.setdefault("host", parts.netloc)
    out["x-amz-date"] = stamp
    if key.session_token:
        out["x-amz-security-token"] = key.session_token
    canon_headers, signed = _canonical_headers(out)
    payload_hash = hashlib.sha256(body or b"").hexdigest()
    request = "\n".join([method.upper(), canonical_uri(parts.path), canonical_query(parts.query),
                         canon_headers, signed, payload_hash])
    scope = f"{stamp[:8]}/{region}/{service}/aws4_request"
    to_sign = "\n".join([ALGORITHM, stamp, scope,
                         hashlib.sha256(request.encode()).hexdigest()])
    signature = hmac.new(signing_key(key.secret_access_key, stamp[:8], region, service),
                         to_sign.encode(), hashlib.sha256).hexdigest()
    out["authorization"] = (f"{ALGORITHM} Credential={key.access_key_id}/{scope}, "
                            f"SignedHeaders={signed}, Signature={signature}")
    return out
