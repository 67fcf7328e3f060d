"""The default models' customer features, one by one, in the bank's words.

Money is in the bank's reporting currency (CNY in the default book); counts and amounts
cover the window their name says. A feature marked nullable may be sent as null or left
out, and the models read it as missing.
"""

from __future__ import annotations

from app.features.spec import FeatureSpec

MONEY_MAX = 1e10
OCCUPATIONS = (
    "salaried",
    "civil_servant",
    "professional",
    "self_employed",
    "business_owner",
    "retired",
    "student",
    "unemployed",
    "other",
)
RISK_PROFILES = ("C1", "C2", "C3", "C4", "C5")


def _money(name: str, description: str, example: float, *, nullable: bool = True) -> FeatureSpec:
    return FeatureSpec(
        name=name,
        kind="number",
        unit="CNY",
        minimum=0,
        maximum=MONEY_MAX,
        nullable=nullable,
        description=description,
        example=example,
    )


def _count(name: str, description: str, example: int, maximum: float = 100_000) -> FeatureSpec:
    return FeatureSpec(
        name=name,
        kind="integer",
        unit="count",
        minimum=0,
        maximum=maximum,
        description=description,
        example=example,
    )


def _flag(name: str, description: str, example: bool = False) -> FeatureSpec:
    return FeatureSpec(
        name=name, kind="boolean", nullable=False, description=description, example=example
    )


DEFAULT_FEATURES: tuple[FeatureSpec, ...] = (
    # --- who the customer is
    FeatureSpec(
        name="age", kind="integer", unit="years", minimum=18, maximum=120, nullable=False,
        description="Age of the customer in whole years.", example=42,
    ),
    FeatureSpec(
        name="tenure_months", kind="integer", unit="months", minimum=0, maximum=1200,
        nullable=False, description="Months since the customer opened their first account here.",
        example=86,
    ),
    FeatureSpec(
        name="occupation_class", kind="category", categories=OCCUPATIONS,
        description="Occupation class from the customer record.", example="salaried",
    ),
    _flag("payroll_customer", "Salary is paid into an account here (代发工资).", True),
    _money("monthly_salary", "Monthly salary credited here; null when not a payroll customer.",
           18_000),
    _flag("vip_card", "Holds a VIP / debit gold card.", False),
    # --- assets under management at this bank and their parts
    _money("aum_total", "Assets under management at this bank today (all parts below).",
           420_000, nullable=False),
    _money("current_deposit_balance", "Balance of current (demand) accounts.", 60_000),
    _money("term_deposit_balance", "Balance of term deposits.", 200_000),
    _money("wealth_product_balance", "Balance of wealth-management products.", 100_000),
    _money("fund_balance", "Market value of mutual funds held here.", 40_000),
    _money("insurance_value", "Cash value of insurance bought through the bank.", 20_000),
    FeatureSpec(
        name="balance_trend_90d", kind="number", unit="ratio", minimum=-1, maximum=100,
        description="Change of AUM over the last 90 days as a ratio (-0.45 = down 45%).",
        example=-0.05,
    ),
    _money("outflow_other_banks_90d", "Transfers out to other banks in the last 90 days.",
           35_000),
    FeatureSpec(
        name="outflow_trend_90d", kind="number", unit="ratio", minimum=-1, maximum=100,
        description="Change of transfers to other banks against the 90 days before "
        "(0.8 = up 80%).",
        example=0.1,
    ),
    # --- loans (large ones reveal pledged wealth)
    _money("mortgage_balance", "Outstanding mortgage here (0 when none).", 0),
    _money("consumer_loan_balance", "Outstanding consumer loans here (0 when none).", 0),
    _money("car_loan_balance", "Outstanding car loan here (0 when none).", 0),
    _count("loans_other_banks", "Loans the credit bureau shows at other banks.", 1, 50),
    # --- cards
    _money("credit_card_limit", "Credit limit of the customer's cards here (0 when none).",
           50_000),
    _money("card_spend_90d", "Credit-card spend in the last 90 days.", 24_000),
    _count("card_txn_count_90d", "Credit-card transactions in the last 90 days.", 45),
    # --- behaviour by channel
    _count("txn_count_branch_90d", "Transactions at a branch counter in the last 90 days.", 2),
    _count("txn_count_mobile_90d", "Transactions in the mobile app in the last 90 days.", 60),
    _count("txn_count_online_90d", "Transactions in online banking in the last 90 days.", 5),
    _money("txn_amount_90d", "Total amount of all transactions in the last 90 days.", 150_000),
    _count("digital_logins_30d", "Mobile and online log-ins in the last 30 days.", 18, 10_000),
    FeatureSpec(
        name="days_since_last_txn", kind="integer", unit="days", minimum=0, maximum=36_500,
        description="Days since the customer's last own transaction.", example=3,
    ),
    _count("complaints_12m", "Complaints filed in the last 12 months.", 0, 1_000),
    # --- holdings (eligibility: not already held)
    _count("products_held", "Number of distinct products held here.", 4, 100),
    _flag("has_credit_card", "Holds a credit card here.", True),
    _flag("has_sip", "Has a systematic investment plan (定投) running.", False),
    _flag("has_money_market", "Holds a money-market fund.", False),
    _flag("has_insurance", "Holds an insurance policy bought through the bank.", False),
    _flag("has_structured_deposit", "Holds a structured deposit.", False),
    _flag("has_installment", "Has an installment plan running.", False),
    _flag("has_pension_product", "Holds a pension / retirement savings product.", False),
    # --- suitability
    FeatureSpec(
        name="risk_profile", kind="category", categories=RISK_PROFILES,
        description="Risk type from the suitability questionnaire: C1 conservative, C2 steady, "
        "C3 balanced, C4 growth, C5 aggressive; null when never assessed.",
        example="C3",
    ),
    FeatureSpec(
        name="risk_assessment_age_days", kind="integer", unit="days", minimum=0, maximum=36_500,
        description="Days since the risk assessment; older than 365 counts as expired.",
        example=120,
    ),
    # --- moments that matter
    FeatureSpec(
        name="days_to_next_maturity", kind="integer", unit="days", minimum=0, maximum=3_650,
        description="Days until the next term deposit or wealth product matures; null when "
        "none is held.",
        example=21,
    ),
    FeatureSpec(
        name="days_since_last_contact", kind="integer", unit="days", minimum=0, maximum=36_500,
        description="Days since a relationship manager or the call centre last spoke with "
        "the customer.",
        example=45,
    ),
)

DEFAULT_FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in DEFAULT_FEATURES)

# Features the arbitration reads directly (eligibility and suitability), by role.
ARBITRATION_FEATURES = (
    "age",
    "aum_total",
    "risk_profile",
    "risk_assessment_age_days",
)


def default_example() -> dict[str, object]:
    """A complete, valid feature set built from each feature's example."""
    return {f.name: f.example for f in DEFAULT_FEATURES}
