#!/usr/bin/python3
"""The Flyte configuration files of docs/flyte/: propeller's keys, routing maps, and the agent's Service.

Each file is values for the flyte-binary or flyte-core chart carrying propeller configuration. The test checks that
every key is one propeller 1.16 reads, per ../shared/docs/flyte-agent-protocol.md §1 (connector-service; agent-service
"identical modulo renames", §0) and the chart keys of §1's examples and §7; that the routing entries are maps to a
configured deployment covering the agent's task types; that the endpoint names the chart's Service, in its namespace,
at its gRPC port (the container port); that flyte-binary gets the endpoints permission the k8s:// resolver needs; and
that the flytekit example declares a task type the agent serves.

Run by ctest (flyte_config_test) with Debian's /usr/bin/python3 (python3-yaml); helm: see deploy_testing.py.
"""

import ast
import os
import re
import unittest

import yaml

from deploy_testing import HELM, REPO, agent_config, one, render, require

FLYTE_DOCS = os.path.join(REPO, "docs", "flyte")
FILES = {  # file -> (chart, propeller plugin)
    "flyte-binary-connector-service.yaml": ("flyte-binary", "connector-service"),
    "flyte-binary-agent-service.yaml": ("flyte-binary", "agent-service"),
    "flyte-core-connector-service.yaml": ("flyte-core", "connector-service"),
    "flyte-core-agent-service.yaml": ("flyte-core", "agent-service"),
}
# §0/§1: the agent plugin's names for the connector plugin's keys.
NAMES = {
    "connector-service": {"default": "defaultConnector", "map": "connectors", "routing": "connectorForTaskTypes",
                          "list": "ListConnectors"},
    "agent-service": {"default": "defaultAgent", "map": "agents", "routing": "agentForTaskTypes", "list": "ListAgents"},
}
DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$")


def allowed_paths(plugin):
    """Propeller's key paths under `plugins.<plugin>` and `tasks` (§1 tables), `*` for any map key."""
    n = NAMES[plugin]
    deployment = ["endpoint", "insecure", "defaultServiceConfig", "defaultTimeout"] + [
        f"timeouts.{op}" for op in ("CreateTask", "GetTask", "DeleteTask", "ExecuteTaskSync", n["list"])]
    web_api = ["resourceQuotas.*", "readRateLimiter.qps", "readRateLimiter.burst", "writeRateLimiter.qps",
               "writeRateLimiter.burst", "caching.size", "caching.resyncInterval", "caching.workers",
               "caching.maxSystemFailures", "resourceMeta"]
    section = (
        [f"webApi.{k}" for k in web_api]
        + ["resourceConstraints.ProjectScopeResourceConstraint.Value",
           "resourceConstraints.NamespaceScopeResourceConstraint.Value"]
        + [f"{n['default']}.{k}" for k in deployment]
        + [f"{n['map']}.*.{k}" for k in deployment]
        + [f"{n['routing']}.*", "supportedTaskTypes", "pollInterval"])
    return [f"plugins.{plugin}.{k}" for k in section] + [
        "tasks.task-plugins.enabled-plugins", "tasks.task-plugins.default-for-task-types.*"]


def leaves(value, path=""):
    if isinstance(value, dict):
        for key, child in value.items():
            yield from leaves(child, f"{path}.{key}" if path else key)
    else:
        yield path, value


def matches(path, pattern):
    parts, wanted = path.split("."), pattern.split(".")
    return len(parts) == len(wanted) and all(w in ("*", p) for p, w in zip(parts, wanted))


def merge(*maps):
    out = {}
    for m in maps:
        for key, value in (m or {}).items():
            out[key] = merge(out.get(key), value) if isinstance(value, dict) else value
    return out


class FlyteConfigTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.docs = render(release="flyte-neptune-agent", namespace="flyte")
        cls.service = one(cls.docs, "Service")
        cls.task_types = agent_config(cls.docs)["agent"]["task_types"]

    def load(self, name):
        with open(os.path.join(FLYTE_DOCS, name), encoding="utf-8") as f:
            return yaml.safe_load(f)

    def propeller(self, chart, values):
        """The propeller configuration inside the chart's values, and the chart keys around it."""
        if chart == "flyte-binary":
            config = merge(values["configuration"]["inline"], values.get("enabled_plugins"))
            outer = {k: v for k, v in values.items() if k not in ("configuration", "enabled_plugins")}
        else:
            config = merge(values["configmap"]["k8s"], values["configmap"].get("enabled_plugins"))
            outer = {k: v for k, v in values.items() if k != "configmap"}
        return config, outer

    def test_every_file_is_there(self):
        self.assertEqual(sorted(f for f in os.listdir(FLYTE_DOCS) if f.endswith(".yaml")), sorted(FILES))

    def test_keys_exist_in_propellers_schema(self):
        for name, (chart, plugin) in FILES.items():
            with self.subTest(file=name):
                config, outer = self.propeller(chart, self.load(name))
                allowed = allowed_paths(plugin)
                for path, value in leaves(config):
                    self.assertTrue(any(matches(path, p) for p in allowed), f"{path}: not a propeller key")
                    if re.search(r"(timeouts\.\w+|defaultTimeout|pollInterval|resyncInterval)$", path):
                        self.assertRegex(str(value), DURATION, path)
                self.assertIn(plugin, config["tasks"]["task-plugins"]["enabled-plugins"])
                if chart == "flyte-binary":
                    subchart = "flyteconnector" if plugin == "connector-service" else "flyteagent"
                    self.assertEqual(set(outer), {subchart, "rbac"})
                    self.assertEqual(outer[subchart], {"enabled": False})
                else:
                    self.assertEqual(outer, {})
                    self.assertEqual(set(self.load(name)["configmap"]), {"k8s", "enabled_plugins"})

    def test_routing_entries_are_maps_to_a_deployment(self):
        for name, (chart, plugin) in FILES.items():
            with self.subTest(file=name):
                config, _ = self.propeller(chart, self.load(name))
                section = config["plugins"][plugin]
                n = NAMES[plugin]
                routing = section[n["routing"]]
                self.assertIsInstance(routing, dict)
                self.assertIsInstance(section[n["map"]], dict)
                for task_type in self.task_types:
                    self.assertIn(routing.get(task_type), section[n["map"]], task_type)

    def test_endpoint_is_the_charts_service(self):
        ports = {p["name"]: p["port"] for p in self.service["spec"]["ports"]}
        container = one(self.docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
        container_ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        for name, (chart, plugin) in FILES.items():
            with self.subTest(file=name):
                values = self.load(name)
                config, outer = self.propeller(chart, values)
                for deployment in config["plugins"][plugin][NAMES[plugin]["map"]].values():
                    match = re.fullmatch(r"k8s://([^.]+)\.([^.:]+):(\d+)", deployment["endpoint"])
                    self.assertIsNotNone(match, deployment["endpoint"])
                    service, namespace, port = match.group(1), match.group(2), int(match.group(3))
                    self.assertEqual(service, self.service["metadata"]["name"])
                    self.assertEqual(namespace, "flyte")
                    self.assertEqual(port, ports["grpc"])
                    self.assertEqual(port, container_ports["grpc"])  # k8s:// dials the pod IP at this port
                if chart == "flyte-binary":
                    self.assertIn({"apiGroups": [""], "resources": ["endpoints"], "verbs": ["get", "list", "watch"]},
                                  outer["rbac"]["extraRules"])

    def test_flytekit_example_uses_a_served_task_type(self):
        with open(os.path.join(FLYTE_DOCS, "neptune_task.py"), encoding="utf-8") as f:
            tree = ast.parse(f.read())
        task_types = [node.value.value for node in ast.walk(tree) if isinstance(node, ast.Assign)
                      and any(getattr(t, "id", "") == "_TASK_TYPE" for t in node.targets)]
        self.assertEqual(task_types, ["neptune"])
        self.assertIn("neptune", self.task_types)
        calls = [ast.unparse(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)]
        self.assertIn("TaskPlugins.register_pythontask_plugin", calls)


if __name__ == "__main__":
    require(HELM, "helm")
    unittest.main(verbosity=2)
