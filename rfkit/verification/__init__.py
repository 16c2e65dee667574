"""Cross-checking the analytic RF graph against the measured gradient support."""

from rfkit.verification.verify import EstimateCheck, UnitCheck, VerifyReport, VerifyResult

__all__ = ["EstimateCheck", "UnitCheck", "VerifyReport", "VerifyResult"]  # the function: rfkit.verify
