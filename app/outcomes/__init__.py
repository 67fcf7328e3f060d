"""Decision ids and the control group: pure, so the scoring hot path can use them.

What is stored (outcomes, the decision secret) lives with the registry (app/registry/
outcomes.py), because all SQL lives there.
"""
