"""onnxgate's serving gateway: Open Inference Protocol over gRPC for registered ONNX models."""

__version__ = "0.1.0"
