"""A private descriptor pool for onnxgate's generated protos.

NOTE: tritonclient registers its own ``inference.*`` messages (same names, a different
file) in protobuf's default pool; two definitions of one symbol in one pool fail at import.
Keeping ours in a pool of their own lets the gateway and tritonclient share a process
(tests, tools). Server reflection is given this pool explicitly.
"""

from google.protobuf import descriptor_pool

POOL = descriptor_pool.DescriptorPool()
