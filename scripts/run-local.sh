#!/usr/bin/env bash
# Builds the agent and runs it on its embedded defaults: gRPC on 127.0.0.1:8000, the offline Neptune tracker
# (runs under ./.neptune/offline/, the layout `neptune sync` uploads) and the process executor (task state under
# ./.flyte-neptune-agent/tasks). Extra arguments go to the agent, e.g. --logging.level=debug.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target flyte-neptune-agent flyte-neptune-runner flyte-agent-client
exec build/bin/flyte-neptune-agent "$@"
