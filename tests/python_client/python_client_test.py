#!/usr/bin/python3
"""Drives the real flyte-neptune-agent binary with a Python gRPC client generated independently of the C++ build.

The client is generated here, at test time, from the protos of the flyteidl npm tarball (the same files propeller's
Go client is generated from) with protoc's --python_out and Debian's grpc_python_plugin. Nothing of the C++ build
is reused except the agent and runner binaries, so a wire-level incompatibility between the agent and an
independently generated client fails this test.

Run by ctest (python_client_test) with Debian's /usr/bin/python3, which has python3-grpcio and python3-protobuf:

  FNA_AGENT_BIN        path of the flyte-neptune-agent binary (flyte-neptune-runner must sit next to it)
  FNA_FLYTEIDL_PROTOS  root of the unpacked flyteidl protos (holds flyteidl/service/agent.proto)
  FNA_GOOGLEAPIS_PROTOS  root holding google/api/annotations.proto and google/api/http.proto
  FNA_PROTOC           protoc (default /usr/bin/protoc)
  FNA_GRPC_PYTHON_PLUGIN  grpc_python_plugin (default /usr/bin/grpc_python_plugin)
"""

import collections
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

ROOT_PROTO = "flyteidl/service/agent.proto"
POLL_INTERVAL_S = 0.2
POLL_BOUND_S = 30.0
START_BOUND_S = 30.0
STOP_BOUND_S = 20.0
RPC_TIMEOUT_S = 10.0

IMPORT_RE = re.compile(r'^\s*import\s+(?:public\s+|weak\s+)?"([^"]+)"\s*;', re.MULTILINE)


def _env(name, default=None):
    value = os.environ.get(name, default)
    if not value:
        raise RuntimeError(f"{name} is not set (the ctest entry python_client_test sets it)")
    return value


def proto_closure(roots, start):
    """The import closure of `start`, as paths relative to their root, without google/protobuf (protoc's own)."""
    found = []
    pending = [start]
    while pending:
        name = pending.pop()
        if name in found or name.startswith("google/protobuf/"):
            continue
        path = next((os.path.join(r, name) for r in roots if os.path.isfile(os.path.join(r, name))), None)
        if path is None:
            raise RuntimeError(f"{name} (imported from the closure of {start}) is in none of {roots}")
        found.append(name)
        with open(path, encoding="utf-8") as f:
            pending.extend(IMPORT_RE.findall(f.read()))
    return sorted(found)


def generate_client(out_dir):
    """Generates the Python messages and gRPC stubs of the closure of flyteidl/service/agent.proto into out_dir."""
    flyteidl = _env("FNA_FLYTEIDL_PROTOS")
    googleapis = _env("FNA_GOOGLEAPIS_PROTOS")
    protoc = _env("FNA_PROTOC", "/usr/bin/protoc")
    plugin = _env("FNA_GRPC_PYTHON_PLUGIN", "/usr/bin/grpc_python_plugin")
    protos = proto_closure([flyteidl, googleapis], ROOT_PROTO)
    for required in ("google/api/annotations.proto", "google/api/http.proto"):
        if required not in protos:
            raise RuntimeError(f"{required} missing from the closure of {ROOT_PROTO}: {protos}")
    subprocess.run(
        [protoc, "-I", flyteidl, "-I", googleapis, f"--python_out={out_dir}", f"--grpc_out={out_dir}",
         f"--plugin=protoc-gen-grpc={plugin}"] + protos,
        check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    # Every package directory gets an __init__.py except the top-level "google" one, which stays a namespace
    # package so that google.protobuf keeps coming from python3-protobuf.
    for dirpath, _, _ in os.walk(out_dir):
        rel = os.path.relpath(dirpath, out_dir)
        if rel not in (".", "google"):
            open(os.path.join(dirpath, "__init__.py"), "a").close()
    return protos


class Agent:
    """The agent binary on 127.0.0.1:<free port>, with its stderr read by a thread (so the pipe never fills)."""

    def __init__(self, binary, work_dir):
        self.work_dir = work_dir
        self.offline_dir = os.path.join(work_dir, "neptune")
        self.state_dir = os.path.join(work_dir, "state")
        self.lines = []
        self._serving = None
        self._cond = threading.Condition()
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLYTE_NEPTUNE_AGENT_")}
        self.process = subprocess.Popen(
            [binary, "--server.listen_address=127.0.0.1:0", "--server.metrics_address=127.0.0.1:0",
             f"--tracker.offline.directory={self.offline_dir}",
             f"--executor.process.state_directory={self.state_dir}", "--logging.format=json"],
            cwd=work_dir, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.process.stderr:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                try:
                    record = json.loads(line)
                except ValueError:
                    record = None
                if isinstance(record, dict) and record.get("msg") == "serving" and self._serving is None:
                    self._serving = record
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_serving(self, timeout):
        """The port from the JSON "serving" line."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._serving is None:
                left = deadline - time.monotonic()
                if left <= 0 or self.process.poll() is not None and not self._reader.is_alive():
                    raise AssertionError("the agent logged no \"serving\" line (exit status "
                                         f"{self.process.poll()}); its log:\n" + self.log())
                self._cond.wait(min(left, 0.5))
            return int(self._serving["port"])

    def log(self):
        with self._cond:
            return "\n".join(self.lines)

    def stop(self, timeout):
        """SIGTERM, then the exit status (None when it had to be killed)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            status = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            status = None
        self._reader.join(5)
        return status


class PythonClientTest(unittest.TestCase):
    """Tests run in name order; the agent is shared and test_99 stops it."""

    @classmethod
    def setUpClass(cls):
        binary = _env("FNA_AGENT_BIN")
        if not os.access(binary, os.X_OK):
            raise RuntimeError(f"FNA_AGENT_BIN={binary} is not an executable: build the flyte-neptune-agent target")
        cls.tmp = tempfile.mkdtemp(prefix="fna-python-client-")
        gen_dir = os.path.join(cls.tmp, "gen")
        os.makedirs(gen_dir)
        cls.generated = generate_client(gen_dir)
        sys.path.insert(0, gen_dir)
        global grpc, agent_pb2, tasks_pb2, identifier_pb2, execution_pb2, literals_pb2, agent_pb2_grpc
        import grpc  # noqa: E402 (Debian's python3-grpcio)
        from flyteidl.admin import agent_pb2  # noqa: E402
        from flyteidl.core import execution_pb2, identifier_pb2, literals_pb2, tasks_pb2  # noqa: E402
        from flyteidl.service import agent_pb2_grpc  # noqa: E402

        work_dir = os.path.join(cls.tmp, "agent")
        os.makedirs(work_dir)
        cls.agent = Agent(binary, work_dir)
        try:
            cls.port = cls.agent.wait_serving(START_BOUND_S)
        except BaseException:
            cls.agent.stop(STOP_BOUND_S)
            raise
        cls.channel = grpc.insecure_channel(f"127.0.0.1:{cls.port}")
        grpc.channel_ready_future(cls.channel).result(timeout=RPC_TIMEOUT_S)
        cls.tasks = agent_pb2_grpc.AsyncAgentServiceStub(cls.channel)
        cls.metadata = agent_pb2_grpc.AgentMetadataServiceStub(cls.channel)

    @classmethod
    def tearDownClass(cls):
        channel = getattr(cls, "channel", None)
        if channel is not None:
            channel.close()
        agent = getattr(cls, "agent", None)
        if agent is not None and agent.process.poll() is None:
            agent.stop(STOP_BOUND_S)
        if os.environ.get("FNA_KEEP_TMP"):
            print(f"kept {cls.tmp}", file=sys.stderr)
        else:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def fail_with_log(self, message):
        self.fail(f"{message}\n--- agent log ---\n{self.agent.log()}")

    # --- requests shaped as propeller shapes them -----------------------------------------------------------

    def create_request(self, task_type, execution_name, script, task_name="tests.python_client.echo"):
        outputs = os.path.join(self.tmp, "outputs", f"p-d-{execution_name}", "n0", "data", "0")
        request = agent_pb2.CreateTaskRequest(
            inputs=literals_pb2.LiteralMap(),
            output_prefix=f"file://{outputs}",
        )
        template = request.template
        template.type = task_type
        template.id.CopyFrom(identifier_pb2.Identifier(
            resource_type=identifier_pb2.TASK, project="p", domain="d", name=task_name, version="v1"))
        template.metadata.runtime.CopyFrom(tasks_pb2.RuntimeMetadata(
            type=tasks_pb2.RuntimeMetadata.FLYTE_SDK, version="1.16.0", flavor="python"))
        template.metadata.timeout.FromSeconds(600)
        template.metadata.retries.retries = 2
        template.container.image = "ghcr.io/flyteorg/flytekit:py3.11-1.16.0"
        template.container.command.extend(["/bin/sh", "-c"])
        template.container.args.extend([script])

        metadata = request.task_execution_metadata
        task_execution = metadata.task_execution_id
        task_execution.task_id.CopyFrom(template.id)
        task_execution.node_execution_id.node_id = "n0"
        task_execution.node_execution_id.execution_id.CopyFrom(identifier_pb2.WorkflowExecutionIdentifier(
            project="p", domain="d", name=execution_name))
        task_execution.retry_attempt = 0
        metadata.namespace = "p-d"
        metadata.k8s_service_account = "default"
        metadata.max_attempts = 3
        metadata.labels.update({"execution-id": execution_name, "project": "p", "domain": "d", "node-id": "n0",
                                "task-name": task_name.replace(".", "-"), "workflow-name": "tests-python-client-wf"})
        return request

    def category(self):
        return agent_pb2.TaskCategory(name="neptune", version=0)

    def get_task(self, resource_meta):
        return self.tasks.GetTask(
            agent_pb2.GetTaskRequest(task_type="neptune", resource_meta=resource_meta, task_category=self.category(),
                                     output_prefix=""),
            timeout=RPC_TIMEOUT_S).resource

    def run_to_terminal(self, request):
        created = self.tasks.CreateTask(request, timeout=RPC_TIMEOUT_S)
        self.assertTrue(created.resource_meta, "CreateTask returned an empty resource_meta")
        terminal = {execution_pb2.TaskExecution.SUCCEEDED, execution_pb2.TaskExecution.FAILED,
                    execution_pb2.TaskExecution.ABORTED, execution_pb2.TaskExecution.RETRYABLE_FAILED}
        deadline = time.monotonic() + POLL_BOUND_S
        phases = []
        while True:
            resource = self.get_task(created.resource_meta)
            name = execution_pb2.TaskExecution.Phase.Name(resource.phase)
            if not phases or phases[-1] != name:
                phases.append(name)
            if resource.phase in terminal:
                return created.resource_meta, resource, phases
            if time.monotonic() > deadline:
                self.fail_with_log(f"no terminal phase within {POLL_BOUND_S}s; phases seen {phases}, "
                                   f"last message {resource.message!r}")
            time.sleep(POLL_INTERVAL_S)

    # --- tests ----------------------------------------------------------------------------------------------

    def test_00_generated_closure(self):
        self.assertIn(ROOT_PROTO, self.generated)
        self.assertIn("google/api/annotations.proto", self.generated)
        self.assertIn("google/api/http.proto", self.generated)
        print(f"\ngenerated {len(self.generated)} protos: {' '.join(self.generated)}", file=sys.stderr)

    def test_01_list_agents(self):
        response = self.metadata.ListAgents(agent_pb2.ListAgentsRequest(), timeout=RPC_TIMEOUT_S)
        self.assertEqual(len(response.agents), 1, response)
        agent = response.agents[0]
        self.assertFalse(agent.is_sync)
        self.assertEqual([(c.name, c.version) for c in agent.supported_task_categories], [("neptune", 0)])
        self.assertEqual(list(agent.supported_task_types), ["neptune"])

    def test_02_health_serving(self):
        # grpc.health.v1.HealthCheckRequest{service: ""} is the empty message; the response's field 1 (status)
        # is a varint, SERVING = 1.
        check = self.channel.unary_unary("/grpc.health.v1.Health/Check")
        response = check(b"", timeout=RPC_TIMEOUT_S)
        self.assertEqual(response, b"\x08\x01", f"expected status SERVING (08 01), got {response.hex()}")

    def test_03_task_succeeds(self):
        request = self.create_request("neptune", "pyok", "echo hello from python; exit 0")
        resource_meta, resource, phases = self.run_to_terminal(request)
        if resource.phase != execution_pb2.TaskExecution.SUCCEEDED:
            self.fail_with_log(f"phases {phases}, message {resource.message!r}")

        links = [link for link in resource.log_links if link.name == "Neptune run"]
        self.assertEqual(len(links), 1, resource.log_links)
        uri = urllib.parse.urlparse(links[0].uri)
        self.assertEqual(uri.scheme, "file", links[0].uri)
        run_dir = urllib.parse.unquote(uri.path)
        self.assertTrue(os.path.isdir(run_dir), f"{run_dir} (from {links[0].uri}) is not a directory")
        self.assertTrue(os.path.realpath(run_dir).startswith(os.path.realpath(self.agent.offline_dir) + os.sep),
                        f"{run_dir} is outside the offline directory {self.agent.offline_dir}")
        self.assertTrue(os.path.isfile(os.path.join(run_dir, "metadata.json")), os.listdir(run_dir))

        lines = []
        for response in self.tasks.GetTaskLogs(
                agent_pb2.GetTaskLogsRequest(task_type="neptune", resource_meta=resource_meta,
                                             task_category=self.category()),
                timeout=RPC_TIMEOUT_S):
            if response.HasField("body"):
                lines.extend(response.body.results)
        self.assertTrue(any("hello from python" in line for line in lines), f"log lines: {lines}")

    def test_04_exit_3_is_retryable(self):
        request = self.create_request("neptune", "pyfail", "echo failing on purpose; exit 3")
        _, resource, phases = self.run_to_terminal(request)
        if resource.phase != execution_pb2.TaskExecution.RETRYABLE_FAILED:
            self.fail_with_log(f"expected RETRYABLE_FAILED, phases {phases}, message {resource.message!r}")
        self.assertEqual(resource.phase, 8)

    def test_05_unserved_task_type_not_found(self):
        request = self.create_request("python-task", "pytype", "echo never runs; exit 0")
        with self.assertRaises(grpc.RpcError) as raised:
            self.tasks.CreateTask(request, timeout=RPC_TIMEOUT_S)
        self.assertEqual(raised.exception.code(), grpc.StatusCode.NOT_FOUND, raised.exception.details())
        self.assertIn("python-task", raised.exception.details())

    def test_99_sigterm_exits_zero(self):
        self.channel.close()
        self.__class__.channel = None
        status = self.agent.stop(STOP_BOUND_S)
        if status != 0:
            self.fail_with_log(f"after SIGTERM the agent exited with {status} (None: killed after "
                               f"{STOP_BOUND_S}s), expected 0")
        self.assertTrue(any('"stopped"' in line for line in self.agent.log().splitlines()), self.agent.log())


if __name__ == "__main__":
    unittest.main(verbosity=2)
