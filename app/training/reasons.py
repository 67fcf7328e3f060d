"""Churn reason codes: how each feature's pull on the churn score reads to an RM.

Serving picks the features with the largest contributions and renders
`up` (the feature raises risk) or `down` (it lowers risk) with
text.format(value=<formatted value>), where the format is "percent" (abs(value)·100 with
a % sign), "money" ("CNY 35,000"), "integer", "number" (a short number) or "text" (the raw
value, for categories). Texts without {value} read the same whatever the value.
"""

from __future__ import annotations

from collections.abc import Iterable

from app.bundles.manifest import ReasonCode
from app.features.family import OfferText
from app.features.spec import FeatureSpec

# feature → (code, up, down, format)
_TABLE: dict[str, tuple[str, str, str, str]] = {
    "age": ("age", "customers aged {value} leave more often",
            "customers aged {value} tend to stay", "integer"),
    "tenure_months": ("short_tenure", "customer for only {value} months",
                      "long relationship ({value} months)", "integer"),
    "occupation_class": ("occupation", "occupation ({value}) leaves more often",
                         "occupation ({value}) tends to stay", "text"),
    "payroll_customer": ("no_payroll", "salary not paid into an account here",
                         "salary paid into an account here", "text"),
    "monthly_salary": ("salary", "little or no salary credited here",
                       "salary of {value} a month credited here", "money"),
    "vip_card": ("no_vip_card", "no VIP card", "holds a VIP card", "text"),
    "aum_total": ("low_assets", "assets here only {value}", "assets of {value} held here",
                  "money"),
    "current_deposit_balance": ("current_balance", "low current account balance ({value})",
                                "current account balance of {value}", "money"),
    "term_deposit_balance": ("term_deposits", "little in term deposits ({value})",
                             "term deposits of {value} held here", "money"),
    "wealth_product_balance": ("wealth_products", "little in wealth products ({value})",
                               "wealth products of {value} held here", "money"),
    "fund_balance": ("funds", "little in funds ({value})", "funds of {value} held here",
                     "money"),
    "insurance_value": ("insurance_value", "little insurance bought here ({value})",
                        "insurance worth {value} bought here", "money"),
    "balance_trend_90d": ("balance_trend", "balance down {value} in 90 days",
                          "balance up or stable over 90 days", "percent"),
    "outflow_other_banks_90d": ("outflow_other_banks", "{value} moved to other banks in 90 days",
                                "little money moved to other banks", "money"),
    "outflow_trend_90d": ("outflow_trend", "transfers to other banks rising {value}",
                          "transfers to other banks steady or falling", "percent"),
    "mortgage_balance": ("mortgage", "no or small mortgage here",
                         "mortgage of {value} held here", "money"),
    "consumer_loan_balance": ("consumer_loan", "consumer loans here: {value}",
                              "consumer loans here: {value}", "money"),
    "car_loan_balance": ("car_loan", "car loan here: {value}", "car loan here: {value}",
                         "money"),
    "loans_other_banks": ("loans_elsewhere", "{value} loans at other banks",
                          "few loans at other banks ({value})", "integer"),
    "credit_card_limit": ("card_limit", "credit limit here: {value}",
                          "credit limit of {value} here", "money"),
    "card_spend_90d": ("card_spend", "low card spend ({value} in 90 days)",
                       "card spend of {value} in 90 days", "money"),
    "card_txn_count_90d": ("card_use", "few card transactions ({value} in 90 days)",
                           "{value} card transactions in 90 days", "integer"),
    "txn_count_branch_90d": ("branch_visits", "{value} branch transactions in 90 days",
                             "{value} branch transactions in 90 days", "integer"),
    "txn_count_mobile_90d": ("mobile_use", "little mobile banking ({value} in 90 days)",
                             "active in the mobile app ({value} in 90 days)", "integer"),
    "txn_count_online_90d": ("online_use", "little online banking ({value} in 90 days)",
                             "uses online banking ({value} in 90 days)", "integer"),
    "txn_amount_90d": ("txn_amount", "low transaction amount ({value} in 90 days)",
                       "transactions of {value} in 90 days", "money"),
    "digital_logins_30d": ("logins", "only {value} log-ins in 30 days",
                           "{value} log-ins in 30 days", "integer"),
    "days_since_last_txn": ("inactivity", "no transaction for {value} days",
                            "recent transactions (last {value} days ago)", "integer"),
    "complaints_12m": ("complaints", "{value} complaints in the last 12 months",
                       "no recent complaints", "integer"),
    "products_held": ("few_products", "only {value} products held", "holds {value} products",
                      "integer"),
    "has_credit_card": ("no_credit_card", "no credit card here", "holds a credit card here",
                        "text"),
    "has_sip": ("no_sip", "no investment plan running", "systematic investment plan running",
                "text"),
    "has_money_market": ("no_money_market", "no money-market fund",
                         "holds a money-market fund", "text"),
    "has_insurance": ("no_insurance", "no insurance bought through the bank",
                      "holds insurance bought through the bank", "text"),
    "has_structured_deposit": ("no_structured_deposit", "no structured deposit",
                               "holds a structured deposit", "text"),
    "has_installment": ("no_installment", "no installment plan", "installment plan running",
                        "text"),
    "has_pension_product": ("no_pension", "no pension product", "holds a pension product",
                            "text"),
    "risk_profile": ("risk_profile", "risk profile {value}", "risk profile {value}", "text"),
    "risk_assessment_age_days": ("risk_assessment_age", "risk assessment {value} days old",
                                 "risk assessment up to date ({value} days old)", "integer"),
    "days_to_next_maturity": ("maturity_soon", "a product matures in {value} days",
                              "no product maturing soon ({value} days)", "integer"),
    "days_since_last_contact": ("no_contact", "no contact from the bank for {value} days",
                                "contacted {value} days ago", "integer"),
}

# feature → its value as a reason for an offer: (text, negative, zero, missing); see OfferText
# in app/features/family.py (None: the fallback it describes).
_OFFERS: dict[str, tuple[str, str | None, str | None, str | None]] = {
    "age": ("aged {value}", None, None, None),
    "tenure_months": ("customer for {value} months", None, "customer since this month", None),
    "occupation_class": ("occupation: {value}", None, None, "occupation not recorded"),
    "payroll_customer": ("salary paid into an account here", None,
                         "salary not paid into an account here", None),
    "monthly_salary": ("salary of {value} a month credited here", None,
                       "no salary credited here", None),
    "vip_card": ("holds a VIP card", None, "no VIP card yet", None),
    "aum_total": ("assets of {value} held here", None, "no assets held here", None),
    "current_deposit_balance": ("current account balance of {value}", None,
                                "no current account balance", None),
    "term_deposit_balance": ("term deposits of {value} held here", None,
                             "no term deposits here", None),
    "wealth_product_balance": ("wealth products of {value} held here", None,
                               "no wealth products here yet", None),
    "fund_balance": ("funds of {value} held here", None, "no funds held here yet", None),
    "insurance_value": ("insurance worth {value} bought here", None,
                        "no insurance bought here yet", None),
    "balance_trend_90d": ("balance up {value} in 90 days", "balance down {value} in 90 days",
                          "balance steady over 90 days", "balance trend not known"),
    "outflow_other_banks_90d": ("{value} moved to other banks in 90 days", None,
                                "no money moved to other banks in 90 days", None),
    "outflow_trend_90d": ("transfers to other banks up {value}",
                          "transfers to other banks down {value}",
                          "transfers to other banks steady", "no transfers to other banks"),
    "mortgage_balance": ("mortgage of {value} here", None, "no mortgage here", None),
    "consumer_loan_balance": ("consumer loans of {value} here", None,
                              "no consumer loans here", None),
    "car_loan_balance": ("car loan of {value} here", None, "no car loan here", None),
    "loans_other_banks": ("{value} loans at other banks", None, "no loans at other banks",
                          "loans at other banks not known"),
    "credit_card_limit": ("credit limit of {value} here", None, "no credit limit here", None),
    "card_spend_90d": ("card spend of {value} in 90 days", None,
                       "no card spend in 90 days", None),
    "card_txn_count_90d": ("{value} card transactions in 90 days", None,
                           "no card transactions in 90 days", None),
    "txn_count_branch_90d": ("{value} branch transactions in 90 days", None,
                             "no branch visits in 90 days", None),
    "txn_count_mobile_90d": ("{value} mobile-app transactions in 90 days", None,
                             "does not use the mobile app", None),
    "txn_count_online_90d": ("{value} online-banking transactions in 90 days", None,
                             "does not use online banking", None),
    "txn_amount_90d": ("transactions of {value} in 90 days", None,
                       "no transactions in 90 days", None),
    "digital_logins_30d": ("{value} log-ins in 30 days", None, "no log-ins in 30 days", None),
    "days_since_last_txn": ("last transaction {value} days ago", None, "transacted today",
                            "no transaction on record"),
    "complaints_12m": ("{value} complaints in 12 months", None, "no complaints in 12 months",
                       None),
    "products_held": ("holds {value} products here", None, "holds no products here", None),
    "has_credit_card": ("holds a credit card here", None, "no credit card here yet", None),
    "has_sip": ("investment plan running", None, "no investment plan yet", None),
    "has_money_market": ("holds a money-market fund", None, "no money-market fund yet", None),
    "has_insurance": ("holds insurance bought through the bank", None,
                      "no insurance through the bank yet", None),
    "has_structured_deposit": ("holds a structured deposit", None,
                               "no structured deposit yet", None),
    "has_installment": ("installment plan running", None, "no installment plan yet", None),
    "has_pension_product": ("holds a pension product", None, "no pension product yet", None),
    "risk_profile": ("risk profile {value}", None, None, "risk profile not assessed"),
    "risk_assessment_age_days": ("risk assessment {value} days old", None,
                                 "risk assessment done today", "risk never assessed"),
    "days_to_next_maturity": ("a product matures in {value} days", None,
                              "a product matures today", "nothing maturing"),
    "days_since_last_contact": ("last contacted {value} days ago", None, "contacted today",
                                "never contacted"),
}


def default_offer_texts() -> dict[str, OfferText]:
    """Feature name → how its value reads as a reason for an offer, every default feature."""
    return {name: OfferText(text=t, negative=n, zero=z, missing=m)
            for name, (t, n, z, m) in _OFFERS.items()}


def default_reason_codes() -> dict[str, ReasonCode]:
    """Feature name → reason code, for every default feature (a test checks none is missing)."""
    return {
        name: ReasonCode(code=code, up=up, down=down, format=fmt)  # type: ignore[arg-type]
        for name, (code, up, down, fmt) in _TABLE.items()
    }


def generic_reason_codes(specs: Iterable[FeatureSpec]) -> dict[str, ReasonCode]:
    """Reason codes built from column names, for models trained on a data scientist's file."""
    codes = {}
    for spec in specs:
        words = spec.name.replace("_", " ")
        fmt = "text" if spec.kind in ("category", "boolean") else "number"
        codes[spec.name] = ReasonCode(
            code=spec.name,
            up=f"{words} raises risk ({{value}})",
            down=f"{words} lowers risk ({{value}})",
            format=fmt,  # type: ignore[arg-type]
        )
    return codes
