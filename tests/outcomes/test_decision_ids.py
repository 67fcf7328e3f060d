"""Decision ids: what is made verifies and reads back; anything altered, forged or malformed
does not (hostile tokens kept as cases)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json

import pytest

from app.outcomes.decision_ids import MAC_BYTES, DecisionSigner, DecisionStamp, process_signer

SIGNER = DecisionSigner.from_text("a test secret of enough length")
DAY = dt.date(2026, 12, 1)
VERSIONS = {"features": 1, "tier": 2, "churn": 3, "products": 4, "catalog": 5, "policy": 6}


def _make(signer: DecisionSigner = SIGNER, **over: object) -> str:
    args: dict[str, object] = dict(customer_id="C000123", action_id="credit_card", as_of=DAY,
                                   versions=VERSIONS, alias="production", group="treatment",
                                   rank=1, churn_probability=0.549731, propensity=0.12345)
    return signer.make(**{**args, **over})  # type: ignore[arg-type]


def test_a_decision_id_reads_back_what_decided() -> None:
    token = _make()
    assert token.startswith("d1.") and token.count(".") == 2
    d = SIGNER.verify(token)
    assert d is not None
    assert (d.customer_id, d.action_id, d.as_of, d.alias, d.group, d.rank) == (
        "C000123", "credit_card", DAY, "production", "treatment", 1)
    # The deciding families only (the token stays small), probabilities to 4 decimals.
    assert d.versions == {"churn": 3, "products": 4, "catalog": 5, "policy": 6}
    assert (d.churn_probability, d.propensity) == (0.5497, 0.1235)
    assert set(d.payload()) == {"c", "a", "d", "v", "al", "g", "r", "p", "pp"}


def test_the_mac_is_keyed_blake2b_128() -> None:
    key = b"k" * 32
    signer = DecisionSigner(key)
    body = b"d1.anything"
    assert signer.mac(body) == hashlib.blake2b(body, key=key, digest_size=16).digest()
    assert MAC_BYTES == 16
    token = _make()
    head, payload, mac = token.split(".")
    assert base64.urlsafe_b64decode(mac + "==") == signer_mac_of(f"{head}.{payload}")


def signer_mac_of(body: str) -> bytes:
    return SIGNER.mac(body.encode("ascii"))


@pytest.mark.parametrize("propensity", [None, 0.0, 1.0, 0.12345, float("nan"), 2.0])
def test_the_propensity_reads_back_whatever_its_width(propensity: float | None) -> None:
    d = SIGNER.verify(_make(propensity=propensity))
    assert d is not None
    want = None if propensity is None or not 0 <= propensity <= 1 else round(propensity, 4)
    assert d.propensity == want


@pytest.mark.parametrize("customer_id", ['C"1', "C\\1", "~!@#$%^&*()_+{}|:<>?", "x" * 128])
def test_any_printable_customer_id_survives(customer_id: str) -> None:
    token = _make(customer_id=customer_id)
    d = SIGNER.verify(token)
    assert d is not None and d.customer_id == customer_id
    assert len(token) < 520


def test_missing_or_odd_probabilities_are_null() -> None:
    for value in (None, float("nan"), 1.5, -0.1):
        d = SIGNER.verify(_make(churn_probability=value, propensity=value))
        assert d is not None and d.churn_probability is None and d.propensity is None


def test_another_key_does_not_verify() -> None:
    assert DecisionSigner.from_text("another secret, also long").verify(_make()) is None
    assert process_signer().verify(_make()) is None


def test_every_altered_character_is_refused() -> None:
    token = _make()
    for i in range(len(token)):
        for c in ("A", "_", "."):
            if token[i] != c:
                assert SIGNER.verify(token[:i] + c + token[i + 1:]) is None, i


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _signed(payload: object) -> str:
    body = "d1." + _b64(json.dumps(payload).encode())
    return body + "." + _b64(SIGNER.mac(body.encode()))


GOOD = {"c": "C1", "a": "x", "d": "2026-12-01", "v": {"churn": 1}, "al": "production",
        "g": "treatment", "r": 1, "p": 0.5, "pp": 0.1}


@pytest.mark.parametrize("token", [
    None, 17, "", "d1", "d1..", "d2.e30.AAAA", "d1.e30", "d1.e30.AAAA.AAAA", "d1.!!!.AAAA",
    "d1.e30." + "A" * 5000, "d1.\u00e9.AAAA", "x" * 2000,
    _signed([1, 2]), _signed({**GOOD, "g": "other"}), _signed({**GOOD, "r": "1"}),
    _signed({**GOOD, "v": {"churn": "1"}}), _signed({**GOOD, "p": 2}),
    _signed({**GOOD, "d": "2026-13-01"}), _signed({k: v for k, v in GOOD.items() if k != "c"}),
    _signed({**GOOD, "pp": True}),
])
def test_hostile_tokens_are_unknown(token: object) -> None:
    assert SIGNER.verify(token) is None


def test_a_well_formed_signed_payload_verifies() -> None:  # the hostile cases' control
    d = SIGNER.verify(_signed(GOOD))
    assert d is not None and d.versions == {"churn": 1}


def test_the_stamp_makes_the_same_token_as_make() -> None:
    stamp = DecisionStamp(SIGNER, VERSIONS, "production")
    head = stamp.customer('"C000123"', "2026-12-01", "0.5497")
    assert stamp.make(head, "credit_card", "treatment", 1, 0.12345) == _make()


@pytest.mark.parametrize("n", range(1, 8))
def test_pieces_join_into_one_payload(n: int) -> None:
    """Whatever the lengths of the customer id and the action id, the pieces' encodings
    join into the encoding of one JSON payload (padded with whitespace)."""
    token = _make(customer_id="C" * n, action_id="a" * (n + 2), rank=n * 7)
    body = token.split(".")[1]
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    assert (payload["c"], payload["a"], payload["r"]) == ("C" * n, "a" * (n + 2), n * 7)
    assert SIGNER.verify(token) is not None


def test_short_keys_are_refused() -> None:
    with pytest.raises(ValueError):
        DecisionSigner(b"short")
