"""FOCUS 1.2 vocabulary the collectors write and the checks verify: allowed values of the
categorical columns, and each provider's service names mapped to a FOCUS ServiceCategory."""

from __future__ import annotations

from typing import Final

CHARGE_CATEGORIES: Final = frozenset({"Usage", "Purchase", "Tax", "Credit", "Adjustment"})
# ChargeClass is "Correction" for a charge that corrects an earlier one, else null.
CHARGE_CLASSES: Final = frozenset({"Correction"})
SERVICE_CATEGORIES: Final = frozenset(
    {
        "AI and Machine Learning",
        "Analytics",
        "Business Applications",
        "Compute",
        "Databases",
        "Developer Tools",
        "Multicloud",
        "Identity",
        "Integration",
        "Internet of Things",
        "Management and Governance",
        "Media",
        "Migration",
        "Mobile",
        "Networking",
        "Security",
        "Storage",
        "Web",
        "Other",
    }
)
OTHER: Final = "Other"
