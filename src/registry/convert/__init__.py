"""From a trained model to an ONNX version: conversion with parity, and optimisation.

scikit-learn, LightGBM and XGBoost models become ONNX (:mod:`.converters`), are compared
with their original on a sample (:mod:`.parity`) and registered with their lineage
(:mod:`.register`); a registered version can be quantised or graph-optimised into a child
version (:mod:`.optimize`). The converters and training libraries are the optional
``onnxgate[convert]`` extra, imported only when used.

The gateway reaches these through the registry's face (``registry.convert_file`` ...).
"""

from __future__ import annotations

from registry.convert.native import ConversionError, Sample, is_native, read_sample
from registry.convert.optimize import Optimization, optimize_version
from registry.convert.parity import Parity
from registry.convert.register import Conversion, convert_file, convert_model, register_model

__all__ = [
    "Conversion",
    "ConversionError",
    "Optimization",
    "Parity",
    "Sample",
    "convert_file",
    "convert_model",
    "is_native",
    "optimize_version",
    "read_sample",
    "register_model",
]
