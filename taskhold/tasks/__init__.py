"""The task lifecycle: pure state machine, no I/O."""

from .machine import TRANSITIONS, decide, evolve, replay
from .model import SYSTEM_ACTOR, Role, Task, TaskState

__all__ = ["SYSTEM_ACTOR", "TRANSITIONS", "Role", "Task", "TaskState", "decide", "evolve", "replay"]
