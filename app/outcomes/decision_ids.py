"""Decision ids: self-verifying tokens naming who was offered what, when, and by which versions.

A token is `d1.<base64url(payload)>.<base64url(mac)>`: the payload is compact JSON
{"c": customer id, "a": action id, "d": decision day, "v": {family: version}, "al": alias,
"g": "treatment" | "control", "r": rank, "p": churn probability, "pp": the action's
propensity}; the mac is keyed BLAKE2b (RFC 7693's MAC mode) with a 16-byte digest over "d1." +
the encoded payload: one keyed hash per id, about half the cost of HMAC-SHA256's two.
Nothing is stored per decision: whoever holds the key can check a token and read it back.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PREFIX = "d1"
MAC_BYTES = 16
# The families whose versions a decision id names (what decides a recommendation).
DECIDING_FAMILIES: tuple[str, ...] = ("churn", "products", "catalog", "policy")
GROUPS: tuple[str, ...] = ("treatment", "control")
MAX_TOKEN_CHARS = 1024  # a customer id of 128 characters gives ~400

_b2a = binascii.b2a_base64
_URLSAFE = bytes.maketrans(b"+/", b"-_")
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True).encode


@dataclass(frozen=True, slots=True)
class Decision:
    """What a verified decision id says."""

    customer_id: str
    action_id: str
    as_of: dt.date
    versions: dict[str, int]
    alias: str
    group: str
    rank: int
    churn_probability: float | None
    propensity: float | None

    def payload(self) -> dict[str, Any]:
        """The token's payload, as JSON-ready values (short keys, as in the token)."""
        return {"c": self.customer_id, "a": self.action_id, "d": self.as_of.isoformat(),
                "v": dict(self.versions), "al": self.alias, "g": self.group, "r": self.rank,
                "p": self.churn_probability, "pp": self.propensity}


def _number(value: float | None) -> str:
    """A probability for the payload: 4 decimals, null when missing or outside [0, 1]
    (NaN included)."""
    if value is None or not 0.0 <= value <= 1.0:
        return "null"
    return f"{value:.4f}"


class DecisionSigner:
    """Makes and checks decision ids with one secret key (all replicas share it)."""

    __slots__ = ("_keyed",)

    def __init__(self, key: bytes) -> None:
        if not 16 <= len(key) <= 64:
            raise ValueError("a decision key has 16 to 64 bytes")
        # BLAKE2b in its keyed (MAC) mode, the keyed state made once: each id then costs one
        # state copy, one update and one digest.
        self._keyed = hashlib.blake2b(key=key, digest_size=MAC_BYTES)

    @classmethod
    def from_text(cls, secret: str) -> DecisionSigner:
        """A signer from a secret given as text (a setting, or the stored random secret)."""
        return cls(hashlib.sha256(secret.encode("utf-8")).digest())

    @staticmethod
    def new_secret() -> str:
        """A fresh random secret, as text (256 bits)."""
        return secrets.token_urlsafe(32)

    def mac(self, body: bytes) -> bytes:
        """The keyed BLAKE2b-128 of `body` under this key."""
        h = self._keyed.copy()
        h.update(body)
        return h.digest()

    def _sign(self, body: bytes) -> str:
        mac = _b2a(self.mac(body), newline=False).translate(_URLSAFE)
        return (body + b"." + mac[:22]).decode("ascii")  # 16 bytes: 22 characters

    def make(self, *, customer_id: str, action_id: str, as_of: dt.date,
             versions: Mapping[str, int], alias: str, group: str, rank: int,
             churn_probability: float | None, propensity: float | None) -> str:
        """One decision id (the plain form; the scoring path uses `stamp`)."""
        stamp = DecisionStamp(self, versions, alias)
        head = stamp.customer(customer_json(customer_id), as_of.isoformat(),
                              _number(churn_probability))
        return stamp.make(head, action_id, group, rank, propensity)

    def verify(self, token: object) -> Decision | None:
        """What `token` says when it is a decision id made with this key, else None."""
        if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
            return None
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != PREFIX:
            return None
        try:
            body = f"{parts[0]}.{parts[1]}".encode("ascii")
            mac = base64.urlsafe_b64decode(parts[2] + "=" * (-len(parts[2]) % 4))
            if len(mac) != MAC_BYTES or not hmac.compare_digest(mac, self.mac(body)):
                return None
            raw = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
            return _decision(json.loads(raw))
        except (UnicodeError, binascii.Error, ValueError, TypeError, KeyError):
            return None


def _decision(p: Any) -> Decision | None:
    if not isinstance(p, dict):
        return None
    versions = p["v"]
    if not isinstance(versions, dict) or not all(
            isinstance(k, str) and type(v) is int for k, v in versions.items()):
        return None
    if not all(isinstance(p[k], str) for k in ("c", "a", "al", "g")) or type(p["r"]) is not int:
        return None
    if p["g"] not in GROUPS:
        return None
    probs = []
    for k in ("p", "pp"):
        v = p.get(k)
        if v is not None and (type(v) not in (int, float) or not 0 <= v <= 1):
            return None
        probs.append(None if v is None else float(v))
    return Decision(customer_id=p["c"], action_id=p["a"], as_of=dt.date.fromisoformat(p["d"]),
                    versions=versions, alias=p["al"], group=p["g"], rank=p["r"],
                    churn_probability=probs[0], propensity=probs[1])


def customer_json(customer_id: str) -> str:
    """The customer id as a JSON string (ids are printable ASCII: only " and \\ escape)."""
    if '"' in customer_id or "\\" in customer_id or not customer_id.isascii():
        return _dumps(customer_id)
    return f'"{customer_id}"'


def _b64_whole(text: str) -> bytes:
    """base64url of `text` padded with spaces (JSON whitespace) to a multiple of 3 bytes, so
    that its encoding ends on a boundary and pieces encoded apart join into one encoding."""
    raw = text.encode("ascii")
    raw += b"   "[: -len(raw) % 3]
    return _b2a(raw, newline=False).translate(_URLSAFE)


class DecisionStamp:
    """A signer with the versions and alias of one context: the parts of a payload that do
    not change are encoded once (per context, per customer), so an id costs one short
    string, its base64 and one HMAC. Pieces are padded with JSON whitespace to whole base64
    quanta, so their encodings concatenate into the encoding of the whole payload."""

    __slots__ = ("_middles", "_sign", "_tail")

    def __init__(self, signer: DecisionSigner, versions: Mapping[str, int], alias: str) -> None:
        self._sign = signer._sign
        chosen = {f: int(versions[f]) for f in DECIDING_FAMILIES if f in versions}
        tail = f',"v":{_dumps(chosen)},"al":{_dumps(alias)}}}'.encode("ascii")
        self._tail = _b2a(tail, newline=False).translate(_URLSAFE).rstrip(b"=")
        # (action, group, rank) -> the encoded part of the payload before the propensity,
        # padded to whole base64 quanta; bounded by the catalogue's actions x 2 x top_n.
        self._middles: dict[tuple[str, str, int], bytes] = {}

    @staticmethod
    def customer(customer: str, as_of: str, churn: str) -> bytes:
        """The encoded part a customer's ids share: `customer` from customer_json, `churn`
        from number()."""
        return b"d1." + _b64_whole(f'{{"c":{customer},"d":"{as_of}","p":{churn}')

    def make(self, head: bytes, action_id: str, group: str, rank: int,
             propensity: float | None) -> str:
        """The id of one recommendation of the customer whose `head` this is."""
        key = (action_id, group, rank)
        middle = self._middles.get(key)
        if middle is None:
            middle = self._middles[key] = _b64_whole(
                f',"a":{_dumps(action_id)},"g":{_dumps(group)},"r":{int(rank)},"pp":')
        # number() is "0.1234", "1.0000" or "null": padded to 6 characters, 8 in base64.
        pp = _number(propensity).ljust(6).encode("ascii")
        return self._sign(head + middle + _b2a(pp, newline=False).translate(_URLSAFE)
                          + self._tail)


number = _number

_PROCESS_SIGNER: DecisionSigner | None = None


def process_signer() -> DecisionSigner:
    """A signer with a random key made once per process: for in-process scoring that was
    given none (its ids verify only in this process; the service uses the shared secret)."""
    global _PROCESS_SIGNER
    if _PROCESS_SIGNER is None:
        _PROCESS_SIGNER = DecisionSigner(secrets.token_bytes(32))
    return _PROCESS_SIGNER
