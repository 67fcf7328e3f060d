"""The bank's decision rules, pure: catalogue, policy, eligibility, suitability, contact
policy and arbitration."""
