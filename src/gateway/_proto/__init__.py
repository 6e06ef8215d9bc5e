"""Generated protobuf and gRPC stubs (make protos). Never edit by hand."""
