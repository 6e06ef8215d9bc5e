"""onnxgate's model registry: versions, artifacts, deployments and the audit log."""
