"""The masker that keeps secrets out of failure bundles, reports and the console (the bundles themselves:
tests/integration/test_diagnostics.py)."""

from __future__ import annotations

from e2e_harness.masking import MASK, SecretMasker


def test_masker_hides_registered_values_and_secret_shapes():
    masker = SecretMasker()
    masker.add("s3cr3t-value")
    text = ("password s3cr3t-value and jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlMTIz\n"
            "-----BEGIN PGP PRIVATE KEY BLOCK-----\nabc\n-----END PGP PRIVATE KEY BLOCK-----\nkeep")
    masked = masker.mask(text)
    assert "s3cr3t-value" not in masked and "eyJhbGciOiJIUzI1NiJ9" not in masked and "abc" not in masked
    assert masked.endswith("keep") and masked.count(MASK) == 3
