#!/usr/bin/python3
"""Offline validation of Kubernetes manifests (kubernetes-executor.md §5, §5.x).

Usage: validate_manifest.py MANIFEST.json

MANIFEST.json holds one object or a list of them; each is checked as the kind its apiVersion and kind name (the
agent's task Pods, and every kind the Helm chart renders). Two checks, both needed:
  1. unknown or misspelled fields, wrong JSON types, missing required fields: a round trip through Debian's
     python3-kubernetes models (Kubernetes 1.22), diffed against the input (§5). Fields newer than 1.22 are
     allowed only at the paths of NEWER_FIELDS. The ServiceMonitor (a CRD, no model) is checked against a closed
     shape of its fields instead, with its metadata and label selector round-tripped;
  2. types, enums and formats against recent OpenAPI schemas: kubernetes-models 4.x from npm (§5.x), and the
     ServiceMonitor against its CRD schema in @kubernetes-models/prometheus-operator 4.x; their validate() accepts
     unknown fields, hence check 1.

Exit status: 0 valid; 1 invalid (one problem per line on stdout, prefixed by the object's kind/name when the file
holds a list, with its JSON path); 77 a checker is not installed (python3-kubernetes importable by /usr/bin/python3,
`node`, and the npm packages under $FNA_KUBERNETES_MODELS or ~/.cache/flyte-neptune-agent/kubernetes-models/
node_modules).
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile

SKIP = 77

# (apiVersion, kind) -> (python3-kubernetes model, kubernetes-models module, path of the PodSpec or None).
# autoscaling/v2 (GA in 1.23) is read with the 1.22 model of autoscaling/v2beta2, whose schema it kept.
KINDS = {
    ("v1", "Pod"): ("V1Pod", "kubernetes-models/v1/Pod", "spec"),
    ("v1", "Service"): ("V1Service", "kubernetes-models/v1/Service", None),
    ("v1", "ServiceAccount"): ("V1ServiceAccount", "kubernetes-models/v1/ServiceAccount", None),
    ("v1", "ConfigMap"): ("V1ConfigMap", "kubernetes-models/v1/ConfigMap", None),
    ("v1", "Secret"): ("V1Secret", "kubernetes-models/v1/Secret", None),
    ("apps/v1", "Deployment"): ("V1Deployment", "kubernetes-models/apps/v1/Deployment", "spec.template.spec"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"):
        ("V1ClusterRole", "kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole", None),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"):
        ("V1ClusterRoleBinding", "kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding", None),
    ("rbac.authorization.k8s.io/v1", "Role"): ("V1Role", "kubernetes-models/rbac.authorization.k8s.io/v1/Role", None),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"):
        ("V1RoleBinding", "kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding", None),
    ("policy/v1", "PodDisruptionBudget"):
        ("V1PodDisruptionBudget", "kubernetes-models/policy/v1/PodDisruptionBudget", None),
    ("autoscaling/v2", "HorizontalPodAutoscaler"):
        ("V2beta2HorizontalPodAutoscaler", "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler", None),
    ("monitoring.coreos.com/v1", "ServiceMonitor"):
        (None, "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor", None),
}

# PodSpec fields newer than the 1.22 models, relative to the PodSpec ([] for any index): None allows any content;
# a set of keys keeps the object closed.
_PROBE_GRPC = {"port", "service"}
NEWER_FIELDS = {
    "os": None,
    "schedulingGates": None,
    "hostUsers": None,
    "resourceClaims": None,
    "containers[].resizePolicy": None,
    "containers[].resources.claims": None,
    "containers[].readinessProbe.grpc": _PROBE_GRPC,
    "containers[].livenessProbe.grpc": _PROBE_GRPC,
    "containers[].startupProbe.grpc": _PROBE_GRPC,
}

# The closed shape of a ServiceMonitor (monitoring.coreos.com/v1, the fields of the prometheus-operator CRD a chart
# sets): a dict is an object with these keys only, [x] a list of x, a str a python3-kubernetes model to round-trip,
# a type a JSON scalar.
_RELABEL = {"action": str, "modulus": int, "regex": str, "replacement": str, "separator": str,
            "sourceLabels": [str], "targetLabel": str}
SERVICE_MONITOR = {
    "apiVersion": str,
    "kind": str,
    "metadata": "V1ObjectMeta",
    "spec": {
        "selector": "V1LabelSelector",
        "namespaceSelector": {"any": bool, "matchNames": [str]},
        "jobLabel": str,
        "targetLabels": [str],
        "podTargetLabels": [str],
        "sampleLimit": int,
        "endpoints": [{
            "port": str, "targetPort": str, "path": str, "scheme": str, "interval": str, "scrapeTimeout": str,
            "honorLabels": bool, "honorTimestamps": bool, "params": dict,
            "relabelings": [_RELABEL], "metricRelabelings": [_RELABEL],
        }],
    },
}


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


def newer_field(path, pod_spec):
    """NEWER_FIELDS' entry for `path` (generic), or False when the path is not one of them."""
    if pod_spec is None or not path.startswith(pod_spec + "."):
        return False
    return NEWER_FIELDS.get(path[len(pod_spec) + 1:], False)


def diff(original, round_tripped, path, problems, pod_spec=None):
    if isinstance(original, dict):
        if not isinstance(round_tripped, dict):
            problems.append(f"{path or '.'}: an object became {json.dumps(round_tripped)[:80]}")
            return
        for key, value in original.items():
            child = f"{path}.{key}" if path else key
            if key not in round_tripped:
                allowed = newer_field(generic(child), pod_spec)
                if allowed is False:
                    problems.append(f"{child}: unknown field")
                elif allowed is not None:
                    if not isinstance(value, dict):
                        problems.append(f"{child}: not an object")
                    else:
                        problems.extend(f"{child}.{k}: unknown field" for k in value if k not in allowed)
                continue
            diff(value, round_tripped[key], child, problems, pod_spec)
        return
    if isinstance(original, list):
        if not isinstance(round_tripped, list) or len(round_tripped) != len(original):
            problems.append(f"{path}: a list became {json.dumps(round_tripped)[:80]}")
            return
        for index, (a, b) in enumerate(zip(original, round_tripped)):
            diff(a, b, f"{path}[{index}]", problems, pod_spec)
        return
    if type(original) is not type(round_tripped) or original != round_tripped:
        problems.append(f"{path}: {json.dumps(original)} became {json.dumps(round_tripped)} (wrong type)")


def round_trip(value, model, path, pod_spec=None):
    """Problems of `value` read as the python3-kubernetes `model`."""
    from kubernetes import client  # Debian python3-kubernetes

    class Response:  # what ApiClient.deserialize reads
        def __init__(self, data):
            self.data = data

    api = client.ApiClient()
    try:
        obj = api.deserialize(Response(json.dumps(value)), model)
    except (ValueError, TypeError, AttributeError) as error:
        return [f"{path or '.'}: not a {model}: {type(error).__name__}: {error}"]
    problems = []
    diff(strip_nulls(value), api.sanitize_for_serialization(obj), path, problems, pod_spec)
    return problems


def shape_problems(value, shape, path):
    """Problems of `value` against a closed shape (see SERVICE_MONITOR)."""
    where = path or "."
    if isinstance(shape, str):
        return round_trip(value, shape, path)
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return [f"{where}: expected an object, got {json.dumps(value)[:80]}"]
        problems = []
        for key, child in value.items():
            sub = f"{path}.{key}" if path else key
            if key not in shape:
                problems.append(f"{sub}: unknown field")
            else:
                problems.extend(shape_problems(child, shape[key], sub))
        return problems
    if isinstance(shape, list):
        if not isinstance(value, list):
            return [f"{where}: expected a list, got {json.dumps(value)[:80]}"]
        return [p for i, item in enumerate(value) for p in shape_problems(item, shape[0], f"{path}[{i}]")]
    if type(value) is not shape:  # bool is not int here, on purpose
        return [f"{where}: expected {shape.__name__}, got {json.dumps(value)[:80]}"]
    return []


def structural_problems(manifest):
    """Check 1 for one object; None when python3-kubernetes is not installed."""
    if importlib.util.find_spec("kubernetes") is None:
        return None
    kind = KINDS.get((manifest.get("apiVersion"), manifest.get("kind")))
    if kind is None:
        return [f"apiVersion {manifest.get('apiVersion')!r} kind {manifest.get('kind')!r}: not a known kind"]
    model, _, pod_spec = kind
    if model is None:
        return shape_problems(strip_nulls(manifest), SERVICE_MONITOR, "")
    return round_trip(manifest, model, "", pod_spec)


NODE_CHECK = r"""
const manifests = JSON.parse(require('fs').readFileSync(process.argv[1], 'utf8'));
let failed = false;
for (const [index, [module, manifest]] of manifests.entries()) {
  const Model = require(module)[module.split('/').pop()];
  try {
    new Model(manifest).validate();
  } catch (error) {
    failed = true;
    for (const e of error.errors || [{instancePath: '', message: String(error)}]) {
      console.log(`${index}\t${e.instancePath.replace(/^\//, '').replace(/\//g, '.')}: ${e.message}`);
    }
  }
}
process.exit(failed ? 1 : 0);
"""


def models_problems(manifests):
    """Check 2 for every object, as {index: [problems]}; None when node or the npm packages are not installed."""
    node = shutil.which("node")
    modules = os.environ.get("FNA_KUBERNETES_MODELS") or os.path.expanduser(
        "~/.cache/flyte-neptune-agent/kubernetes-models/node_modules")
    needed = ("kubernetes-models", "@kubernetes-models/prometheus-operator")
    if node is None or not all(os.path.isdir(os.path.join(modules, n)) for n in needed):
        return None
    jobs = [(i, KINDS[(m.get("apiVersion"), m.get("kind"))][1], m) for i, m in enumerate(manifests)
            if (m.get("apiVersion"), m.get("kind")) in KINDS]
    with tempfile.NamedTemporaryFile("w", suffix=".json", encoding="utf-8") as file:
        json.dump([[module, m] for _, module, m in jobs], file)
        file.flush()
        result = subprocess.run([node, "-e", NODE_CHECK, file.name], capture_output=True, text=True,
                                env={**os.environ, "NODE_PATH": modules}, timeout=120, check=False)
    problems = {}
    for line in result.stdout.splitlines():
        job, _, message = line.partition("\t")
        problems.setdefault(jobs[int(job)][0], []).append(f"kubernetes-models: {message}")
    if result.returncode != 0 and not problems:
        return {0: [f"kubernetes-models: {result.stderr.strip()}"]}
    return problems


def main():
    with open(sys.argv[1], encoding="utf-8") as file:
        loaded = json.load(file)
    manifests = loaded if isinstance(loaded, list) else [loaded]
    structural = [structural_problems(m) for m in manifests]
    typed = models_problems(manifests)
    if any(s is None for s in structural) or typed is None:
        missing = [name for name, absent in (("python3-kubernetes", any(s is None for s in structural)),
                                             ("kubernetes-models", typed is None)) if absent]
        print("not installed: " + ", ".join(missing))
        return SKIP
    failed = False
    for index, manifest in enumerate(manifests):
        prefix = ""
        if isinstance(loaded, list):
            prefix = f"{manifest.get('kind')}/{manifest.get('metadata', {}).get('name')}: "
        for problem in structural[index] + typed.get(index, []):
            failed = True
            print(prefix + problem)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
