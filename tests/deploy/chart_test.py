#!/usr/bin/python3
"""The Helm chart (charts/flyte-neptune-agent), rendered and linted by a real helm.

- `helm lint --strict` and `helm template` accept every file of values/ (and the defaults) and reject every file of
  bad-values/ with the message its first line expects (`# expect: ...`; `# lint: logs` on the second line: a check
  across values that only `helm template` enforces, since helm lint logs a template's `fail`);
- every rendered manifest passes validate_manifest.py (types, enums and unknown fields), which is shown to bite;
- probes, the token (only Secret files and secretKeyRefs), RBAC verbs equal to the executor's calls (the table of
  docs/kubernetes.md), Service ports equal to container ports, the termination grace above the drain, the security
  context, NOTES.txt;
- the rendered configuration file is accepted by the real agent binary (`--print-config`).

Run by ctest (chart_test) with Debian's /usr/bin/python3 (python3-yaml). FNA_AGENT_BIN: the flyte-neptune-agent
binary. helm: see deploy_testing.py.
"""

import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest

import yaml

from deploy_testing import (BAD_VALUES, CHART, GOOD_VALUES, HELM, REPO, VALIDATOR, agent_config, b64, find, helm,
                            one, render, render_notes, require, unavailable)

# Keys of the operations branch (issue 6), rendered by the chart while metrics.enabled; an agent built without them
# rejects them, so the --print-config check leaves them out while the binary under test does not know them.
SENTINEL_TOKENS = ("sentinel-default-token-6f0c2d", "sentinel-ws-b-token-91aa7e")  # values/created-secrets.yaml


def good_values():
    """(name, values file or None for the defaults) of every accepted configuration."""
    return [("defaults", None)] + [(os.path.basename(p), p) for p in sorted(glob.glob(f"{GOOD_VALUES}/*.yaml"))]


def duration_seconds(text):
    units = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
    parts = re.findall(r"([0-9.]+)(h|ms|us|ns|m|s)", text)
    if text != "0" and "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text}")
    return sum(float(n) * units[u] for n, u in parts)


def executor_rbac():
    """The executor's calls, from the RBAC table of docs/kubernetes.md: {(group, resource): (verbs, optional)}."""
    with open(os.path.join(REPO, "docs", "kubernetes.md"), encoding="utf-8") as f:
        text = f.read()
    section = text[text.index("## RBAC"):]
    calls = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) < 5 or not cells[1].startswith("`"):
            continue
        group = cells[1].strip("`").strip('"')
        resource = cells[2].strip("`")
        calls[(group, resource)] = (set(re.findall(r"`(\w+)`", cells[3])), "optional" in cells[4])
    if not calls:
        raise AssertionError("no RBAC table found in docs/kubernetes.md")
    return calls


def rule_set(rules):
    return {(group, resource, verb) for rule in rules for group in rule["apiGroups"] for resource in rule["resources"]
            for verb in rule["verbs"]}


def container(docs):
    spec = one(docs, "Deployment")["spec"]["template"]["spec"]
    return spec, next(c for c in spec["containers"] if c["name"] == "agent")


def validate(manifests):
    with tempfile.NamedTemporaryFile("w", suffix=".json", encoding="utf-8") as f:
        json.dump(manifests, f)
        f.flush()
        result = subprocess.run(["/usr/bin/python3", VALIDATOR, f.name], capture_output=True, text=True,
                                timeout=180, check=False)
    return result.returncode, result.stdout + result.stderr


class ChartTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.renders = {name: render(path) for name, path in good_values()}

    def test_lint_strict_accepts_good_values(self):
        for name, path in good_values():
            with self.subTest(values=name):
                result = helm("lint", "--strict", CHART, *(["-f", path] if path else []))
                self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
                self.assertNotRegex(result.stdout, r"\[(WARNING|ERROR)\]")

    def test_bad_values_are_rejected(self):
        files = sorted(glob.glob(f"{BAD_VALUES}/*.yaml"))
        self.assertGreaterEqual(len(files), 3)
        for path in files:
            with open(path, encoding="utf-8") as f:
                expected = re.match(r"# expect: (.*)", f.readline()).group(1)
                # A check the schema cannot express is a template's `fail`, which helm lint only logs.
                lint_logs = f.readline().startswith("# lint: logs")
            with self.subTest(values=os.path.basename(path)):
                result = helm("template", "rel", CHART, "-f", path)
                self.assertNotEqual(result.returncode, 0, f"helm template accepted {path}")
                self.assertIn(expected, result.stderr)
                result = helm("lint", "--strict", CHART, "-f", path)
                self.assertEqual(result.returncode == 0, lint_logs, result.stdout + result.stderr)
                self.assertIn(expected, result.stdout + result.stderr)

    def test_every_manifest_is_valid(self):
        kinds = set()
        for name, docs in self.renders.items():
            with self.subTest(values=name):
                code, output = validate(docs)
                self.assertEqual(code, 0, output)
                kinds.update(d["kind"] for d in docs)
        self.assertEqual(kinds, {"Deployment", "Service", "ServiceAccount", "ConfigMap", "Secret", "ClusterRole",
                                 "ClusterRoleBinding", "Role", "RoleBinding", "PodDisruptionBudget",
                                 "HorizontalPodAutoscaler", "ServiceMonitor"})

    def test_validator_bites(self):
        docs = self.renders["hpa-servicemonitor.yaml"]
        by_kind = {d["kind"]: d for d in docs}
        by_kind["Deployment"]["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
        by_kind["Deployment"]["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["grpc"]["prot"] = 1
        by_kind["Deployment"]["spec"]["minReadySeconds"] = "5"
        by_kind["Service"]["spec"]["ports"][0]["targetPortt"] = "grpc"
        by_kind["HorizontalPodAutoscaler"]["spec"]["maxReplicas"] = "5"
        by_kind["ServiceMonitor"]["spec"]["endpoints"][0]["intervall"] = "30s"
        by_kind["ServiceMonitor"]["spec"]["endpoints"][0]["port"] = 9090
        by_kind["ClusterRole"]["rules"][0]["verb"] = ["get"]
        by_kind["PodDisruptionBudget"]["spec"]["maxUnavailable"] = [1]
        code, output = validate(docs)
        self.assertEqual(code, 1, output)
        for problem in ("Deployment/rel-flyte-neptune-agent: spec.template.spec.containers[0].imagePullPolicyy: "
                        "unknown field",
                        "spec.template.spec.containers[0].readinessProbe.grpc.prot: unknown field",
                        'spec.minReadySeconds: "5" became 5 (wrong type)',
                        "Service/rel-flyte-neptune-agent: spec.ports[0].targetPortt: unknown field",
                        "HorizontalPodAutoscaler/rel-flyte-neptune-agent: kubernetes-models: spec.maxReplicas: "
                        "must be integer",
                        "ServiceMonitor/rel-flyte-neptune-agent: spec.endpoints[0].intervall: unknown field",
                        "ServiceMonitor/rel-flyte-neptune-agent: kubernetes-models: spec.endpoints.0.port: must be "
                        "string",
                        "ClusterRole/rel-flyte-neptune-agent: rules[0].verb: unknown field",
                        "PodDisruptionBudget/rel-flyte-neptune-agent: kubernetes-models: spec.maxUnavailable"):
            self.assertIn(problem, output)

    def test_probes(self):
        for name, docs in self.renders.items():
            with self.subTest(values=name):
                _, agent = container(docs)
                ports = {p["name"]: p["containerPort"] for p in agent["ports"]}
                self.assertEqual(agent["readinessProbe"]["grpc"], {"port": ports["grpc"]})
                liveness = agent["livenessProbe"]
                if "metrics" in ports:
                    self.assertEqual(liveness["httpGet"], {"path": "/healthz", "port": "metrics"})
                else:
                    self.assertEqual(liveness["grpc"], {"port": ports["grpc"]})

    def test_token_only_from_secret_files_and_refs(self):
        for name, docs in self.renders.items():
            with self.subTest(values=name):
                spec, agent = container(docs)
                for env in agent.get("env", []):
                    if "TOKEN" in env["name"].upper():
                        self.assertIn("secretKeyRef", env.get("valueFrom", {}), env)
                for arg in agent["args"]:
                    self.assertNotIn("token", arg.lower())
                secret_dirs = {}
                for volume in spec["volumes"]:
                    if "secret" in volume:
                        mount = next(m for m in agent["volumeMounts"] if m["name"] == volume["name"])
                        self.assertTrue(mount.get("readOnly"))
                        secret_dirs[mount["mountPath"]] = volume["secret"]
                config = agent_config(docs)
                files = [r["token_file"] for r in config["tracking"]["routing_rules"] if "token_file" in r]
                if config["tracker"]["kind"] == "neptune":
                    files.append(config["tracker"]["neptune"]["api_token_file"])
                for path in files:
                    directory, base = os.path.split(path)
                    self.assertIn(directory, secret_dirs, f"{path} is not in a mounted Secret")
                    self.assertEqual([i["path"] for i in secret_dirs[directory]["items"]], [base])
                self.assertNotIn("api_token:", one(docs, "ConfigMap")["data"]["config.yaml"])
        docs = self.renders["created-secrets.yaml"]
        notes = render_notes(os.path.join(GOOD_VALUES, "created-secrets.yaml"))
        for token in SENTINEL_TOKENS:
            for doc in docs:
                text = yaml.safe_dump(doc)
                if doc["kind"] == "Secret":
                    continue
                self.assertNotIn(token, text, doc["kind"])
                self.assertNotIn(b64(token), text, doc["kind"])
            self.assertNotIn(token, notes)
            self.assertIn(b64(token), [v for s in find(docs, "Secret") for v in s["data"].values()])

    def test_rbac_verbs_equal_the_executors_calls(self):
        calls = executor_rbac()
        for name, docs in self.renders.items():
            with self.subTest(values=name):
                config = agent_config(docs)
                kubernetes = config["executor"]["kubernetes"]
                roles = find(docs, "ClusterRole") + find(docs, "Role")
                bindings = find(docs, "ClusterRoleBinding") + find(docs, "RoleBinding")
                if config["executor"]["kind"] != "kubernetes":
                    self.assertEqual(roles + bindings, [])
                    continue
                expected = {(g, r, v) for (g, r), (verbs, optional) in calls.items() for v in verbs
                            if (not optional or kubernetes["owner_references"])
                            and (v != "watch" or kubernetes["watch"])}
                namespaces = kubernetes["namespaces"]
                self.assertEqual([r["kind"] for r in roles], ["Role"] * len(namespaces) if namespaces
                                 else ["ClusterRole"])
                self.assertEqual(sorted(r["metadata"].get("namespace", "") for r in roles),
                                 sorted(namespaces) or [""])
                for role in roles:
                    self.assertEqual(rule_set(role["rules"]), expected)
                service_account = one(docs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"]
                for binding in bindings:
                    role = next(r for r in roles if r["metadata"].get("namespace") ==
                                binding["metadata"].get("namespace"))
                    self.assertEqual(binding["roleRef"], {"apiGroup": "rbac.authorization.k8s.io",
                                                          "kind": role["kind"], "name": role["metadata"]["name"]})
                    self.assertEqual(binding["subjects"], [{"kind": "ServiceAccount", "name": service_account,
                                                            "namespace": "flyte"}])
                self.assertEqual(len(bindings), len(roles))
        owners = rule_set(find(self.renders["defaults"], "ClusterRole")[0]["rules"])
        self.assertIn(("flyte.lyft.com", "flyteworkflows", "get"), owners)
        self.assertNotIn(("flyte.lyft.com", "flyteworkflows", "get"),
                         rule_set(find(self.renders["namespaced-rbac.yaml"], "Role")[0]["rules"]))

    def test_service_ports_equal_container_ports(self):
        for name, docs in self.renders.items():
            with self.subTest(values=name):
                _, agent = container(docs)
                container_ports = {p["name"]: p["containerPort"] for p in agent["ports"]}
                service = one(docs, "Service")
                self.assertEqual({p["name"] for p in service["spec"]["ports"]}, set(container_ports))
                for port in service["spec"]["ports"]:
                    self.assertEqual(port["port"], container_ports[port["targetPort"]], port)
                self.assertEqual(container_ports["grpc"], 8000)
                self.assertEqual(service["spec"]["selector"],
                                 one(docs, "Deployment")["spec"]["selector"]["matchLabels"])

    def test_termination_grace_exceeds_drain(self):
        for name, docs in self.renders.items():
            with self.subTest(values=name):
                spec, _ = container(docs)
                drain = agent_config(docs)["server"]["drain_timeout"]
                self.assertGreater(spec["terminationGracePeriodSeconds"], duration_seconds(drain))

    def test_security_and_writable_paths(self):
        for name, docs in self.renders.items():
            with self.subTest(values=name):
                spec, agent = container(docs)
                config = agent_config(docs)
                self.assertEqual(spec["securityContext"]["runAsUser"], 65532)
                self.assertTrue(spec["securityContext"]["runAsNonRoot"])
                self.assertEqual(spec["securityContext"]["seccompProfile"], {"type": "RuntimeDefault"})
                security = agent["securityContext"]
                self.assertTrue(security["readOnlyRootFilesystem"])
                self.assertFalse(security["allowPrivilegeEscalation"])
                self.assertEqual(security["capabilities"], {"drop": ["ALL"]})
                self.assertFalse(spec["enableServiceLinks"])
                process = config["executor"]["kind"] == "process"
                self.assertEqual(spec.get("shareProcessNamespace", False), process)
                self.assertEqual(spec["automountServiceAccountToken"], not process)
                writable = {m["mountPath"] for m in agent["volumeMounts"]
                            if not m.get("readOnly") and "emptyDir" in
                            next(v for v in spec["volumes"] if v["name"] == m["name"])}
                needed = set()
                if config["tracker"]["kind"] == "offline":
                    needed.add(os.path.dirname(config["tracker"]["offline"]["directory"]))
                if process:
                    needed |= {os.path.dirname(config["executor"]["process"]["state_directory"]), "/tmp"}
                self.assertEqual(writable, needed)

    def test_replicas_pdb_hpa_and_service_monitor(self):
        defaults = self.renders["defaults"]
        self.assertEqual(one(defaults, "Deployment")["spec"]["replicas"], 2)
        self.assertEqual(one(defaults, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
                         one(defaults, "Deployment")["spec"]["selector"]["matchLabels"])
        self.assertEqual(find(defaults, "HorizontalPodAutoscaler") + find(defaults, "ServiceMonitor"), [])
        docs = self.renders["hpa-servicemonitor.yaml"]
        deployment = one(docs, "Deployment")
        self.assertNotIn("replicas", deployment["spec"])
        hpa = one(docs, "HorizontalPodAutoscaler")
        self.assertEqual(hpa["spec"]["scaleTargetRef"], {"apiVersion": "apps/v1", "kind": "Deployment",
                                                         "name": deployment["metadata"]["name"]})
        monitor = one(docs, "ServiceMonitor")
        service = one(docs, "Service")
        self.assertEqual(service["spec"]["clusterIP"], "None")
        self.assertEqual(monitor["metadata"]["labels"]["release"], "prometheus")
        for key, value in monitor["spec"]["selector"]["matchLabels"].items():
            self.assertEqual(service["metadata"]["labels"][key], value)
        self.assertIn(monitor["spec"]["endpoints"][0]["port"], [p["name"] for p in service["spec"]["ports"]])

    def test_config_is_accepted_by_the_agent(self):
        agent_bin = os.environ.get("FNA_AGENT_BIN")
        if not agent_bin:
            self.skipTest("FNA_AGENT_BIN is not set (the ctest entry chart_test sets it)")
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLYTE_NEPTUNE_AGENT_")}
        for name, docs in self.renders.items():
            with self.subTest(values=name):
                config = agent_config(docs)
                with tempfile.NamedTemporaryFile("w", suffix=".yaml", encoding="utf-8") as f:
                    yaml.safe_dump(config, f)
                    f.flush()
                    result = subprocess.run([agent_bin, f"--config={f.name}", "--print-config"], capture_output=True,
                                            text=True, env=env, timeout=30, check=False)
                self.assertEqual(result.returncode, 0, result.stderr)
                printed = yaml.safe_load(result.stdout)
                self.assertEqual(printed["server"]["listen_address"], "0.0.0.0:8000")
                self.assertEqual(printed["executor"]["kind"], config["executor"]["kind"])
                self.assertEqual(printed["tracker"]["kind"], config["tracker"]["kind"])
                self.assertEqual(printed["agent"]["task_types"], config["agent"]["task_types"])
                if config["tracker"]["kind"] == "neptune":
                    self.assertEqual(printed["tracker"]["neptune"]["api_token_file"], "/etc/neptune/token/token")
                rules = printed["tracking"]["routing_rules"]
                self.assertEqual([{k: r[k] for k in c} for r, c in zip(rules, config["tracking"]["routing_rules"])],
                                 config["tracking"]["routing_rules"])

    def test_notes_print_the_propeller_configuration(self):
        docs = self.renders["defaults"]
        service = one(docs, "Service")
        port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "grpc")
        notes = render_notes()
        endpoint = f"endpoint: k8s://{service['metadata']['name']}.flyte:{port}"
        self.assertEqual(notes.count(endpoint), 2, notes)
        for section in ("connector-service:", "connectorForTaskTypes:", "agent-service:", "agentForTaskTypes:",
                        "neptune: neptune", "ListConnectors: 3s", "ListAgents: 3s", "resources: [endpoints]"):
            self.assertIn(section, notes)
        self.assertIn("Secret neptune-api-token (key token) in flyte, which you provide", notes)


if __name__ == "__main__":
    require(HELM, "helm")
    code, output = validate([{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "probe"}}])
    if code == 77:
        unavailable(f"validate_manifest.py: {output.strip()}")
    unittest.main(verbosity=2)
