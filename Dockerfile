# flyte-neptune-agent container image.
#
#   docker build -t flyte-neptune-agent .
#   docker run --rm --init -p 8000:8000 flyte-neptune-agent
#
# Build stage: Debian 12 with the project's own dependency script; the flyteidl npm package is fetched by
# `npm pack` at configure time (flyteidl/CMakeLists.txt), so the build needs network access.
# Runtime stage: Debian 12 slim with only the shared libraries the two binaries load (from `ldd` on a Release
# build), CA certificates, a non-root user (65532) and the agent as entrypoint.

FROM debian:12 AS build
WORKDIR /src
# The dependency script first, so that the package layer is cached across source changes.
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN scripts/install-deps.sh && rm -rf /var/lib/apt/lists/*
COPY . .
# .git is not in the build context: `docker build --build-arg FNA_COMMIT=$(git rev-parse --short=12 HEAD)`.
ARG FNA_COMMIT=unknown
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DFNA_BUILD_TESTS=OFF -DFNA_COMMIT="${FNA_COMMIT}" \
 && cmake --build /build -j"$(nproc)" --target flyte-neptune-agent flyte-neptune-runner

FROM debian:12-slim
# Exactly the packages of the shared libraries the two binaries load (`ldd` on the Release binaries; checked by
# tests/deploy/image_test.py in both directions), each with the libraries it provides. libc6, libstdc++6 and
# libgcc-s1 are in the base image.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      # libgrpc++.so.1.51, libgrpc++_reflection.so.1.51: the gRPC server and its reflection service.
      libgrpc++1.51 \
      # libgrpc.so.29, libgpr.so.29, libupb.so.29, libaddress_sorting.so.29: gRPC core.
      libgrpc29 \
      # libprotobuf.so.32: flyteidl, resource_meta and error.pb messages.
      libprotobuf32 \
      # libabsl_*.so.20220623: Abseil status, strings, time, synchronization, hashing (agent and runner).
      libabsl20220623 \
      # libyaml-cpp.so.0.7: the configuration file and kubeconfig files.
      libyaml-cpp0.7 \
      # libcpp-httplib.so.0.11: the Neptune, Kubernetes, S3 and STS clients.
      libcpp-httplib0.11 \
      # libssl.so.3, libcrypto.so.3: TLS of those clients and of gRPC, SHA-256, SigV4.
      libssl3 \
      # libbrotlicommon.so.1, libbrotlidec.so.1, libbrotlienc.so.1 and libz.so.1: cpp-httplib's compression.
      libbrotli1 zlib1g \
      # libre2.so.9, libcares.so.2: loaded by gRPC core.
      libre2-9 libc-ares2 \
      # CA certificates for outbound TLS (Neptune, the Kubernetes API, S3).
      ca-certificates \
 && rm -rf /var/lib/apt/lists/*

# The non-root user (uid/gid 65532, as distroless "nonroot"); the Helm chart runs the pod as it.
RUN groupadd --gid 65532 nonroot \
 && useradd --uid 65532 --gid 65532 --home-dir /var/lib/flyte-neptune-agent --create-home \
      --shell /usr/sbin/nologin nonroot

# The runner must sit next to the agent: executor.process.runner_path defaults to the agent's own directory.
COPY --from=build /build/bin/flyte-neptune-agent /build/bin/flyte-neptune-runner /usr/local/bin/
# Fails the build if a shared library is missing from the list above.
RUN ! ldd /usr/local/bin/flyte-neptune-agent /usr/local/bin/flyte-neptune-runner | grep "not found"

# The working directory holds the default state (.flyte-neptune-agent/tasks) and offline runs (.neptune/).
WORKDIR /var/lib/flyte-neptune-agent
USER 65532:65532
EXPOSE 8000 9090
# The agent's process executor double-forks a supervisor per task; as PID 1 the agent would leave them as zombies.
# Run with an init that reaps them: `docker run --init`, or shareProcessNamespace in Kubernetes (the chart sets it
# with the process executor; its default, the Kubernetes executor, starts no process).
ENTRYPOINT ["/usr/local/bin/flyte-neptune-agent"]
# Default arguments: listen on all interfaces of the container so that EXPOSE 8000 works. The process executor
# runs task commands inside this container, which a non-loopback address must allow explicitly. Publish the port
# only to propeller.
CMD ["--server.listen_address=0.0.0.0:8000", "--server.metrics_address=0.0.0.0:9090", \
     "--executor.process.allow_non_loopback=true"]
