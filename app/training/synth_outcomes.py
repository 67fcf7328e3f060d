"""Behaviour, churn and product-purchase rules of the synthetic book (see app/training/synth.py).

Every function draws from the chunk's generator in a fixed order, so a book stays
deterministic per seed. Columns are numpy arrays keyed by feature name.
"""

from __future__ import annotations

import numpy as np

Cols = dict[str, np.ndarray]


def sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function."""
    return 1.0 / (1.0 + np.exp(-x))


def behaviour(rng: np.random.Generator, c: Cols, latent: Cols) -> Cols:
    """Channels, activity, contact, balance and outflow trends, driven by a latent drift."""
    n = len(c["age"])
    age, aum, tenure = c["age"], c["aum_total"], c["tenure_months"]
    drift = rng.standard_normal(n)  # disengagement: the root of the churn signs
    latent["drift"] = drift
    out: Cols = {}
    dormant = rng.random(n) < sigmoid(-4.0 + 1.2 * drift - 0.5 * c["payroll_customer"])
    lam = np.exp(2.9 + 0.1 * latent["zw"] + 0.6 * c["payroll_customer"] - 0.35 * drift
                 + 0.4 * rng.standard_normal(n))
    total = np.where(dormant, 0, rng.poisson(lam))
    p_mobile = sigmoid(1.8 - 0.09 * (age - 35))
    mobile = rng.binomial(total, p_mobile)
    online = rng.binomial(total - mobile, 0.3)
    out["txn_count_mobile_90d"] = mobile.astype(float)
    out["txn_count_online_90d"] = online.astype(float)
    out["txn_count_branch_90d"] = (total - mobile - online).astype(float)
    log_lam = (mobile + online) / 6 + 4 * p_mobile * np.exp(-0.3 * drift)
    logins = rng.poisson(np.where(dormant, 0.05, 1.0) * log_lam).astype(float)
    out["digital_logins_30d"] = np.where(rng.random(n) < 0.02, np.nan, logins)  # feed gap
    recent = np.minimum(np.floor(rng.exponential(90 / (total + 1))), 89)
    known_days = tenure * 30 + 29  # nothing is older than the relationship
    idle = 90 + np.floor(rng.exponential(240, n))
    since = np.minimum(np.where(total > 0, recent, idle), known_days)
    out["days_since_last_txn"] = np.where(rng.random(n) < 0.005, np.nan, since)
    ticket = 30 * np.sqrt(aum + 1_000) * rng.lognormal(0, 0.5, n)
    out["txn_amount_90d"] = np.round(total * ticket + c["card_spend_90d"], 2)
    out["complaints_12m"] = rng.poisson(np.exp(-3.0 + 0.6 * drift)).astype(float)

    valued = c["vip_card"] | (aum >= 100_000)
    contact = np.floor(rng.exponential(np.where(c["vip_card"], 60, np.where(valued, 150, 400))))
    never = rng.random(n) < np.where(valued, 0.01, 0.08)
    out["days_since_last_contact"] = np.where(never, np.nan, np.minimum(contact, known_days))

    trend = np.clip(0.02 + 0.09 * rng.standard_normal(n) - 0.07 * drift
                    - 0.15 * np.maximum(drift - 1, 0), -0.98, 5.0)
    out["balance_trend_90d"] = np.where(tenure < 3, np.nan, np.round(trend, 4))
    before = aum / (1 + trend)
    ratio = np.exp(-2.6 + 0.55 * drift + 0.6 * rng.standard_normal(n)
                   + 0.25 * (latent["n_banks"] - 1))
    out["outflow_other_banks_90d"] = np.round(ratio * (before + 1_000), 2)
    o_trend = np.minimum(np.exp(0.35 * drift + 0.35 * rng.standard_normal(n)) - 1, 100)
    no_prior = rng.random(n) < 0.05 + 0.1 * (latent["n_banks"] == 1)
    out["outflow_trend_90d"] = np.where(no_prior, np.nan, np.round(o_trend, 4))
    return out


def churn_logit(c: Cols) -> np.ndarray:
    """Log-odds of churning in the next 90 days from the observed features alone."""
    trend = np.nan_to_num(c["balance_trend_90d"], nan=0.0)
    o_trend = np.clip(np.nan_to_num(c["outflow_trend_90d"], nan=0.0), -1, 4)
    before = c["aum_total"] / (1 + trend) + 1_000
    o_ratio = np.log(c["outflow_other_banks_90d"] / before + 0.01)
    since = np.nan_to_num(c["days_since_last_txn"], nan=365.0)
    logins = np.nan_to_num(c["digital_logins_30d"], nan=5.0)
    contact = np.nan_to_num(c["days_since_last_contact"], nan=730.0)
    return (-2.8 - 4.0 * trend + 1.0 * o_trend + 0.7 * (o_ratio + 2.0)
            + 0.45 * np.log1p(since) + 0.5 * (logins < 2) + 0.5 * np.minimum(c["complaints_12m"], 4)
            - 0.25 * c["products_held"] + 0.4 * (contact > 180)
            - 0.3 * np.log1p(c["tenure_months"] / 12))


def churn_outcome(rng: np.random.Generator, c: Cols) -> np.ndarray:
    """0/1 churn in the next 90 days through a logistic link on churn_logit."""
    return (rng.random(len(c["age"])) < sigmoid(churn_logit(c))).astype(np.int64)


# Chance that a wealth figure reaches the bank's records, by source (docs/synthetic-book.md).
CREDIT_APPLICATION_P = 0.5  # a loan here: the application declared total assets
QUESTIONNAIRE_P = 0.2  # a risk assessment whose questionnaire recorded financial assets
REVIEW_P = np.array([0.03, 0.08, 0.15, 0.3])  # an RM wealth review, per wallet tier
REVIEW_VIP_P = 0.2  # ... and for holders of a VIP card, on top


def disclosed_wealth(rng: np.random.Generator, c: Cols, latent: Cols) -> np.ndarray:
    """Total investable wealth where the bank learnt it, NaN elsewhere; never below aum_total.

    Sources: a credit application here, a risk questionnaire, a relationship manager's wealth
    review (more often for wealthier and VIP customers). The figure is the true one.
    """
    n = len(c["age"])
    u = rng.random((3, n))
    known = ((latent["borrower"] & (u[0] < CREDIT_APPLICATION_P))
             | (latent["assessed"] & (u[1] < QUESTIONNAIRE_P))
             | (u[2] < REVIEW_P[latent["tier"]] + REVIEW_VIP_P * c["vip_card"]))
    return np.where(known, np.maximum(latent["wealth"], c["aum_total"]), np.nan)


NO_OFFER = ""  # offered_product when the customer got no offer in the window
# Log-odds an offer adds to the purchase of the offered product (x2.7 to x5 the odds).
OFFER_UPLIFT: dict[str, float] = {
    "installment_plan": 1.2, "fixed_income_wm": 1.4, "money_market_fund": 1.0, "sip_fund": 1.2,
    "structured_deposit": 1.5, "insurance_protection": 1.3, "credit_card": 1.1,
    "loan_refinance": 1.6, "pension_savings": 1.2, "equity_fund": 1.0,
}
_RISK_RATED = {"fixed_income_wm", "money_market_fund", "sip_fund", "structured_deposit",
               "pension_savings", "equity_fund"}


def _campaign_rules(c: Cols) -> dict[str, np.ndarray]:
    """The bank's loose targeting rule per product, on observed features only."""
    age = c["age"]
    maturity = np.nan_to_num(c["days_to_next_maturity"], nan=9e9)
    return {
        "installment_plan": c["has_credit_card"] & (c["card_spend_90d"] > 20_000),
        "fixed_income_wm": maturity <= 60,
        "money_market_fund": c["current_deposit_balance"] > 50_000,
        "sip_fund": c["payroll_customer"] & (age >= 23) & (age <= 45),
        "structured_deposit": c["aum_total"] >= 50_000,
        "insurance_protection": c["payroll_customer"],
        "credit_card": (age >= 22) & (age <= 40),
        "loan_refinance": np.nan_to_num(c["loans_other_banks"]) >= 1,
        "pension_savings": age >= 50,
        "equity_fund": np.isin(c["risk_profile"], ["C4", "C5"]),
    }


def offers(rng: np.random.Generator, c: Cols, products: tuple[str, ...],
           holding_flags: dict[str, str]) -> np.ndarray:
    """The product offered to each customer in the window (NO_OFFER for none).

    Contact depends on value; the product is drawn among those not held (risk-rated ones
    only with a risk profile on file), 4x as likely where the campaign rule matches. Only
    observed features decide, so given the features an offer is random.
    """
    n = len(c["age"])
    rules = _campaign_rules(c)
    profiled = np.array([v is not None for v in c["risk_profile"]], dtype=bool)
    weights = np.empty((n, len(products)))
    for j, product in enumerate(products):
        w = 0.25 + 0.75 * rules[product]
        if (flag := holding_flags.get(product)) is not None:
            w = w * ~c[flag]
        if product in _RISK_RATED:
            w = w * profiled
        weights[:, j] = w
    valued = c["vip_card"] | (c["aum_total"] >= 100_000)
    contacted = rng.random(n) < sigmoid(-0.65 + 0.6 * valued + 0.3 * c["payroll_customer"])
    cum = np.cumsum(weights, axis=1)
    pick = np.minimum((rng.random(n)[:, None] * cum[:, -1:] >= cum).sum(axis=1),
                      len(products) - 1)
    out = np.array(products, dtype=object)[pick]
    out[~contacted | (cum[:, -1] <= 0)] = NO_OFFER
    return out


def product_outcomes(rng: np.random.Generator, c: Cols, latent: Cols,
                     holding_flags: dict[str, str]) -> dict[str, np.ndarray]:
    """0/1 purchase of each product by its own rule, raised by an offer; held at 1/100 odds."""
    age, aum = c["age"], c["aum_total"]
    payroll = c["payroll_customer"]
    risk = latent["risk"]
    assessed = latent["assessed"]
    valid = assessed & (np.nan_to_num(c["risk_assessment_age_days"], nan=9e9) <= 365)
    current = c["current_deposit_balance"]
    maturity = np.nan_to_num(c["days_to_next_maturity"], nan=9e9)
    elsewhere = latent["wealth"] - aum
    high_end = latent["tier"] >= 1
    logits = {
        "installment_plan": -4.9 + 1.2 * high_end + 1.0 * (c["card_spend_90d"] > 50_000)
        + 1.3 * ((c["mortgage_balance"] > 0) | (c["car_loan_balance"] > 0))
        - 1.5 * ~c["has_credit_card"],
        "fixed_income_wm": -5.0 + 1.4 * (assessed & (risk <= 1)) + 2.2 * (maturity <= 30)
        + 1.0 * ((maturity > 30) & (maturity <= 90)),
        "money_market_fund": -5.0 + 0.8 * np.clip(np.log1p(current) - 10.5, -3, 4)
        + 1.5 * current / (aum + 1) + 0.6 * latent["liquid"],
        "sip_fund": -5.2 + 1.8 * payroll + 0.9 * ((age >= 23) & (age <= 45)) + 0.5 * valid,
        "structured_deposit": -5.0 + 0.8 * (latent["n_banks"] - 1)
        + 0.4 * np.clip(np.log1p(np.maximum(elsewhere, 0)) - 12, -3, 4),
        "insurance_protection": -4.8 + 1.6 * (payroll | latent["office"])
        + 0.5 * ((age >= 30) & (age <= 55)),
        "credit_card": -4.4 + 1.5 * ((age >= 22) & (age <= 35)) + 1.0 * latent["office"]
        + 0.5 * payroll,
        "loan_refinance": -5.0 + 0.9 * np.minimum(latent["loans_elsewhere"], 4),
        "pension_savings": -5.4 + 2.0 * (age >= 50) + 0.5 * (age >= 58),
        "equity_fund": -5.6 + 2.2 * (valid & (risk >= 3)) + 1.2 * (c["fund_balance"] > 0)
        - 3.0 * ~valid,
    }
    out: dict[str, np.ndarray] = {}
    for product, logit in logits.items():
        flag = holding_flags.get(product)
        if flag is not None:
            logit = logit - np.log(100.0) * c[flag]
        logit = logit + OFFER_UPLIFT[product] * (c["offered_product"] == product)
        out[product] = (rng.random(len(age)) < sigmoid(logit)).astype(np.int64)
    return out
