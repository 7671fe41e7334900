"""A flytekit task routed to flyte-neptune-agent: its TaskTemplate.type is "neptune".

`@task` alone gives the type "python-task", which propeller runs itself. A task config class registered as a
flytekit task plugin turns the same function into a PythonFunctionTask of type "neptune": serialized like any Python
task (image, resources, `pyflyte-execute` args), but routed by propeller's connectorForTaskTypes / agentForTaskTypes
to the agent, which runs it as a Pod and tracks the attempt as a Neptune run. The config lands in
TaskTemplate.custom["neptune"] (project, name, description, tags; all optional).

    pyflyte run --remote neptune_task.py wf --epochs 3
"""

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List

from flytekit import PythonFunctionTask, task, workflow
from flytekit.configuration import SerializationSettings
from flytekit.extend import TaskPlugins


@dataclass
class Neptune:
    project: str = ""
    name: str = ""
    description: str = ""
    tags: List[str] = field(default_factory=list)


class NeptuneTask(PythonFunctionTask[Neptune]):
    _TASK_TYPE = "neptune"  # one of the agent's agent.task_types

    def __init__(self, task_config: Neptune, task_function, **kwargs):
        super().__init__(task_config=task_config, task_function=task_function, task_type=self._TASK_TYPE, **kwargs)

    def get_custom(self, settings: SerializationSettings) -> Dict[str, Any]:
        return {"neptune": {key: value for key, value in asdict(self.task_config).items() if value}}


TaskPlugins.register_pythontask_plugin(Neptune, NeptuneTask)


@task(task_config=Neptune(project="ml-team/flyte", tags=["training"]))
def train(epochs: int) -> float:
    # With a token in the task's namespace (executor.kubernetes.token_namespaces), `neptune.init_run()` here
    # attaches to the agent's run through NEPTUNE_PROJECT and NEPTUNE_CUSTOM_RUN_ID.
    return 1.0 / epochs


@workflow
def wf(epochs: int = 3) -> float:
    return train(epochs=epochs)
