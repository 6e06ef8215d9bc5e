# onnxgate gateway image. Build: docker build -t onnxgate .
# Run:   docker run -p 8001:8001 -p 8002:8002 -v onnxgate-data:/data \
#          -e ONNXGATE_ADMIN_TOKEN=... onnxgate
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 onnxgate \
    && mkdir -p /data && chown onnxgate /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER onnxgate
WORKDIR /data
ENV ONNXGATE_REGISTRY=sqlite:////data/registry.db \
    ONNXGATE_ARTIFACT_DIR=/data/artifacts \
    PYTHONUNBUFFERED=1
EXPOSE 8001 8002
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s \
    CMD python -c "import grpc,sys; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; \
s=g.HealthStub(grpc.insecure_channel('127.0.0.1:8001')); \
sys.exit(0 if s.Check(h.HealthCheckRequest(), timeout=2).status == 1 else 1)"
ENTRYPOINT ["onnxgate"]
CMD ["serve"]
