# onnxgate gateway image. Build: docker build -t onnxgate .
# Run:   docker run -p 8000:8000 -p 8001:8001 -p 8002:8002 -v onnxgate-data:/data \
#          -e ONNXGATE_ADMIN_TOKEN=... onnxgate
# The image carries the PostgreSQL driver and the S3 client (extras "postgres" and "s3"), so
# a fleet on a PostgreSQL registry and an artifact bucket runs as shipped (deploy/kubernetes).
# tests/fleet/test_image_install.py runs the two pip commands below in a clean venv.
FROM python:3.11-slim AS build
ARG ONNXGATE_EXTRAS=postgres,s3
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[${ONNXGATE_EXTRAS}]"

FROM python:3.11-slim
ARG ONNXGATE_EXTRAS=postgres,s3
RUN useradd --create-home --uid 10001 --user-group onnxgate \
    && mkdir -p /data && chown onnxgate:onnxgate /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels "onnxgate[${ONNXGATE_EXTRAS}]" \
    && rm -rf /wheels
# Numerical uid: Kubernetes' runAsNonRoot can only verify a number.
USER 10001:10001
WORKDIR /data
ENV ONNXGATE_REGISTRY=sqlite:////data/registry.db \
    ONNXGATE_ARTIFACT_DIR=/data/artifacts \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
EXPOSE 8000 8001 8002
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s \
    CMD python -c "import grpc,sys; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; \
s=g.HealthStub(grpc.insecure_channel('127.0.0.1:8001')); \
sys.exit(0 if s.Check(h.HealthCheckRequest(), timeout=2).status == 1 else 1)"
ENTRYPOINT ["onnxgate"]
CMD ["serve"]
