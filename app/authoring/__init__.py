"""Authoring tools: the YAML sources of the contract, catalogue and policy, built into bundles.

A bank writes its feature contract, action catalogue and business policy as YAML; the tools
here read those files safely (line-precise errors, hostile YAML refused), build them into
verified bundles, draft a contract from a table, compare two contracts, and publish the
JSON Schema of each source (docs/schemas/).
"""
