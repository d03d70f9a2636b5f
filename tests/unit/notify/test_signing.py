from __future__ import annotations

import hashlib
import hmac

from services.notify.domain.signing import signature, verify

BODY = '{"case_no":"ZQ20261126000001","title":"路灯不亮"}'.encode()


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body_as_documented():
    expected = hmac.new(b"s3cret", b"1764115200." + BODY, hashlib.sha256).hexdigest()
    assert signature("s3cret", 1764115200, BODY) == "sha256=" + expected


def test_a_receiver_accepts_a_fresh_untampered_delivery():
    sig = signature("s3cret", 1000, BODY)
    assert verify("s3cret", 1000, BODY, sig, now=1100)


def test_a_receiver_rejects_a_changed_body_a_wrong_secret_or_a_moved_timestamp():
    sig = signature("s3cret", 1000, BODY)
    assert not verify("s3cret", 1000, BODY + b" ", sig, now=1000)
    assert not verify("other", 1000, BODY, sig, now=1000)
    assert not verify("s3cret", 1001, BODY, sig, now=1001)


def test_a_receiver_rejects_a_replay_older_than_the_tolerance():
    sig = signature("s3cret", 1000, BODY)
    assert not verify("s3cret", 1000, BODY, sig, now=1000 + 301)
