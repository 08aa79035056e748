"""Robustness classifiers trained on real plus counterfactual data (the classifiers issue)."""
