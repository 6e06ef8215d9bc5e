"""Explanations: per-row feature attributions of a version's output (``Explain`` RPC,
``onnxgate explain``), and per-version global importance from sampled live traffic.

``background`` (weighted summary of the reference sample) and ``outputs`` (what is
explained, in which space) are pure; ``kernel`` wraps shap (the optional extra
``onnxgate[explain]``); ``service`` runs explanations on their own bounded executor.
"""
