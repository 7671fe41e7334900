#!/usr/bin/env bash
# Installs every Debian package the project needs to build, test and run.
# Used by .ci/run, the Dockerfile's build stage and developers on a fresh Debian 12 machine.
set -euo pipefail

PACKAGES=(
  # Toolchain.
  build-essential cmake pkg-config ccache git ca-certificates
  # gRPC service and flyteidl code generation.
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  # google/api/{annotations,http}.proto imported by flyteidl's service protos.
  golang-github-gogo-googleapis-dev
  # Status, strings, time, synchronization.
  libabsl-dev
  # HTTP(S) client and server (Neptune client, Neptune emulator); JSON; YAML configuration; SHA-256, TLS.
  libcpp-httplib-dev nlohmann-json3-dev libyaml-cpp-dev libssl-dev
  # Tests.
  libgtest-dev libgmock-dev
  # The Python client test (generated from the npm tarball's protos) and the npm package fetch.
  python3-grpcio python3-protobuf python3-yaml nodejs npm
  # Pod manifest validation in the Kubernetes executor's tests: unknown fields and JSON types.
  python3-kubernetes
  # Formatting checks; the ThreadSanitizer build (scripts/test.sh --sanitize thread) uses clang.
  clang-format clang libclang-rt-14-dev
)

SUDO=""
if [[ "$(id -u)" != 0 ]]; then SUDO="sudo"; fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node and npm may come from outside Debian on developer machines; accept them when present.
if command -v node >/dev/null && command -v npm >/dev/null; then
  filtered=()
  for p in "${missing[@]}"; do [[ "$p" == nodejs || "$p" == npm ]] || filtered+=("$p"); done
  missing=("${filtered[@]}")
fi

if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "install-deps: all packages present"
fi

# Pod manifest validation in tests, types, enums and quantities (kubernetes-executor.md §5.x): the npm package
# kubernetes-models, pinned, in a cache outside the repository.
KUBERNETES_MODELS_DIR="$HOME/.cache/flyte-neptune-agent/kubernetes-models"
if [[ ! -d "$KUBERNETES_MODELS_DIR/node_modules/kubernetes-models" ]]; then
  echo "install-deps: npm install kubernetes-models@4.5.1 into $KUBERNETES_MODELS_DIR"
  npm install --silent --no-audit --no-fund --prefix "$KUBERNETES_MODELS_DIR" kubernetes-models@4.5.1
fi
