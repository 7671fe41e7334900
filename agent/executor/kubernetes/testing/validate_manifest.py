#!/usr/bin/python3
"""Offline validation of a generated Pod manifest (kubernetes-executor.md §5, §5.x).

Usage: validate_manifest.py MANIFEST.json

Two checks, both needed:
  1. unknown or misspelled fields, wrong JSON types, missing required fields: a round trip through Debian's
     python3-kubernetes models (V1Pod, Kubernetes 1.22), diffed against the input (§5);
  2. types, enums and quantity formats against recent OpenAPI schemas: kubernetes-models 4.x from npm (§5.x),
     whose validate() accepts unknown fields, hence check 1.

Exit status: 0 valid; 1 invalid (one problem per line on stdout, with its JSON path); 77 a checker is not
installed (python3-kubernetes importable by /usr/bin/python3, `node`, and kubernetes-models under
$FNA_KUBERNETES_MODELS or ~/.cache/flyte-neptune-agent/kubernetes-models/node_modules).
"""

import json
import os
import shutil
import subprocess
import sys

# Fields newer than the 1.22 models that a manifest may legitimately carry (JSON paths with [] for any index).
NEWER_FIELDS = {
    "spec.os",
    "spec.schedulingGates",
    "spec.hostUsers",
    "spec.resourceClaims",
    "spec.containers[].resizePolicy",
    "spec.containers[].resources.claims",
}

SKIP = 77


def generic(path):
    out, depth = [], 0
    for char in path:
        if char == "[":
            depth += 1
            out.append("[]")
        elif char == "]":
            depth -= 1
        elif depth == 0:
            out.append(char)
    return "".join(out)


def strip_nulls(value):
    if isinstance(value, dict):
        return {k: strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [strip_nulls(v) for v in value]
    return value


def diff(original, round_tripped, path, problems):
    if isinstance(original, dict):
        if not isinstance(round_tripped, dict):
            problems.append(f"{path or '.'}: an object became {json.dumps(round_tripped)[:80]}")
            return
        for key, value in original.items():
            child = f"{path}.{key}" if path else key
            if key not in round_tripped:
                if generic(child) not in NEWER_FIELDS:
                    problems.append(f"{child}: unknown field")
                continue
            diff(value, round_tripped[key], child, problems)
        return
    if isinstance(original, list):
        if not isinstance(round_tripped, list) or len(round_tripped) != len(original):
            problems.append(f"{path}: a list became {json.dumps(round_tripped)[:80]}")
            return
        for index, (a, b) in enumerate(zip(original, round_tripped)):
            diff(a, b, f"{path}[{index}]", problems)
        return
    if type(original) is not type(round_tripped) or original != round_tripped:
        problems.append(f"{path}: {json.dumps(original)} became {json.dumps(round_tripped)} (wrong type)")


def round_trip_problems(manifest):
    try:
        from kubernetes import client  # Debian python3-kubernetes
    except ImportError:
        return None

    class Response:  # what ApiClient.deserialize reads
        def __init__(self, data):
            self.data = data

    api = client.ApiClient()
    try:
        pod = api.deserialize(Response(json.dumps(manifest)), "V1Pod")
    except (ValueError, TypeError, AttributeError) as error:
        return [f"not a V1Pod: {type(error).__name__}: {error}"]
    problems = []
    diff(strip_nulls(manifest), api.sanitize_for_serialization(pod), "", problems)
    return problems


NODE_CHECK = r"""
const {Pod} = require('kubernetes-models/v1/Pod');
const manifest = JSON.parse(require('fs').readFileSync(process.argv[1], 'utf8'));
try {
  new Pod(manifest).validate();
} catch (error) {
  for (const e of error.errors || [{instancePath: '', message: String(error)}]) {
    console.log(`${e.instancePath.replace(/^\//, '').replace(/\//g, '.')}: ${e.message}`);
  }
  process.exit(1);
}
"""


def models_problems(path):
    node = shutil.which("node")
    modules = os.environ.get("FNA_KUBERNETES_MODELS") or os.path.expanduser(
        "~/.cache/flyte-neptune-agent/kubernetes-models/node_modules")
    if node is None or not os.path.isdir(os.path.join(modules, "kubernetes-models")):
        return None
    result = subprocess.run([node, "-e", NODE_CHECK, path], capture_output=True, text=True,
                            env={**os.environ, "NODE_PATH": modules}, timeout=60, check=False)
    if result.returncode == 0:
        return []
    lines = [line for line in result.stdout.splitlines() if line]
    return [f"kubernetes-models: {line}" for line in lines] or [f"kubernetes-models: {result.stderr.strip()}"]


def main():
    with open(sys.argv[1], encoding="utf-8") as file:
        manifest = json.load(file)
    structural = round_trip_problems(manifest)
    typed = models_problems(sys.argv[1])
    if structural is None or typed is None:
        missing = [name for name, got in (("python3-kubernetes", structural), ("kubernetes-models", typed))
                   if got is None]
        print("not installed: " + ", ".join(missing))
        return SKIP
    problems = structural + typed
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
