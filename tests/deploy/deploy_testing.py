"""Shared helpers of the deployment tests: the repository's paths, helm, and rendering the chart.

helm comes from scripts/install-deps.sh (~/.cache/flyte-neptune-agent/helm/helm, or $FNA_HELM). Without it a test
exits with SKIP (77, ctest's SKIP_RETURN_CODE) and says why, except under CI (CI=true), which runs install-deps, so
there a missing helm fails.
"""

import atexit
import base64
import os
import shutil
import subprocess
import sys
import tempfile

import yaml

SKIP = 77
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CHART = os.path.join(REPO, "charts", "flyte-neptune-agent")
VALIDATOR = os.path.join(REPO, "agent", "executor", "kubernetes", "testing", "validate_manifest.py")
HERE = os.path.dirname(os.path.abspath(__file__))
GOOD_VALUES = os.path.join(HERE, "values")
BAD_VALUES = os.path.join(HERE, "bad-values")
HELM = os.environ.get("FNA_HELM") or os.path.expanduser("~/.cache/flyte-neptune-agent/helm/helm")
_HELM_HOME = tempfile.mkdtemp(prefix="fna-helm-home-")
atexit.register(shutil.rmtree, _HELM_HOME, ignore_errors=True)


def unavailable(message):
    """Exits with SKIP outside CI; fails under CI, which runs install-deps."""
    if os.environ.get("CI"):
        sys.exit(f"FAIL: {message} (CI runs scripts/install-deps.sh, so it must be there)")
    print(f"SKIP: {message}")
    sys.exit(SKIP)


def require(path, what):
    if not os.path.exists(path):
        unavailable(f"{what} not found at {path}: run scripts/install-deps.sh")


def helm(*args):
    """Runs helm with a throwaway HOME; returns the CompletedProcess."""
    return subprocess.run([HELM, *args], capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "HOME": _HELM_HOME})


def value_args(values_file=None, sets=()):
    args = ["-f", values_file] if values_file else []
    for s in sets:
        args += ["--set", s]
    return args


def render(values_file=None, sets=(), release="rel", namespace="flyte"):
    """The chart's manifests for these values, as a list of objects."""
    result = helm("template", release, CHART, "--namespace", namespace, *value_args(values_file, sets))
    if result.returncode != 0:
        raise AssertionError(f"helm template failed for {values_file}: {result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def render_notes(values_file=None, sets=(), release="rel", namespace="flyte"):
    """NOTES.txt as rendered for these values. helm template skips NOTES.txt, so a copy of the chart renders it as
    a named template into a YAML string."""
    with tempfile.TemporaryDirectory() as tmp:
        chart = os.path.join(tmp, "chart")
        shutil.copytree(CHART, chart)
        templates = os.path.join(chart, "templates")
        with open(os.path.join(templates, "NOTES.txt"), encoding="utf-8") as f:
            notes = f.read()
        os.remove(os.path.join(templates, "NOTES.txt"))
        with open(os.path.join(templates, "_notes_test.tpl"), "w", encoding="utf-8") as f:
            f.write('{{- define "notes-test" -}}\n' + notes + "{{- end }}\n")
        with open(os.path.join(templates, "notes_test.yaml"), "w", encoding="utf-8") as f:
            f.write('notes: |\n{{ include "notes-test" . | indent 2 }}\n')
        result = helm("template", release, chart, "--namespace", namespace, "--show-only",
                      "templates/notes_test.yaml", *value_args(values_file, sets))
    if result.returncode != 0:
        raise AssertionError(f"rendering NOTES.txt failed for {values_file}: {result.stderr}")
    return yaml.safe_load(result.stdout)["notes"]


def find(docs, kind):
    return [d for d in docs if d.get("kind") == kind]


def one(docs, kind):
    found = find(docs, kind)
    if len(found) != 1:
        raise AssertionError(f"expected one {kind}, got {len(found)}")
    return found[0]


def agent_config(docs):
    """The agent's configuration file from the rendered ConfigMap, parsed."""
    return yaml.safe_load(one(docs, "ConfigMap")["data"]["config.yaml"])


def b64(text):
    return base64.b64encode(text.encode()).decode()
