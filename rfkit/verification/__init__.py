"""Cross-checking the analytic RF graph against the measured gradient support."""

from rfkit.verification.verify import EstimateCheck, UnitCheck, VerifyReport, verify

__all__ = ["EstimateCheck", "UnitCheck", "VerifyReport", "verify"]
