"""Experiments of the paper's evaluation, reproduced and extended (python -m experiments --help)."""
