"""Cross-checking the analytic RF graph against the measured gradient support."""

from rfkit.verification.verify import EstimateCheck, UnitCheck, VerifyResult

__all__ = ["EstimateCheck", "UnitCheck", "VerifyResult"]  # the function: rfkit.verify
