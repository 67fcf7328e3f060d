"""YAML sources of the contract, catalogue and policy: read safely, validated, every problem
named by its line (used by the authoring commands and by training's --contract)."""
