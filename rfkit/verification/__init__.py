"""Cross-checking the analytic RF graph against the measured gradient support."""

from rfkit.verification.verify import UnitCheck, VerifyReport, verify

__all__ = ["UnitCheck", "VerifyReport", "verify"]
