"""Cache policies: what a task's cache key is made of, as in Prefect 3.

``@task(cache_policy=INPUTS + TASK_SOURCE)`` reuses a result while the arguments and the
function's source are the same; ``INPUTS - "client"`` leaves an argument out of the key.
``cache_key_fn=`` is the simple path to the same place.
"""

from ._engine.results.policies import DEFAULT as DEFAULT
from ._engine.results.policies import FLOW_PARAMETERS as FLOW_PARAMETERS
from ._engine.results.policies import INPUTS as INPUTS
from ._engine.results.policies import NO_CACHE as NO_CACHE
from ._engine.results.policies import NONE as NONE
from ._engine.results.policies import RUN_ID as RUN_ID
from ._engine.results.policies import TASK_SOURCE as TASK_SOURCE
from ._engine.results.policies import CacheContext as CacheContext
from ._engine.results.policies import CacheKeyFn as CacheKeyFn
from ._engine.results.policies import CacheKeyFnPolicy as CacheKeyFnPolicy
from ._engine.results.policies import CachePolicy as CachePolicy
from ._engine.results.policies import CompoundCachePolicy as CompoundCachePolicy
from ._engine.results.policies import FlowParameters as FlowParameters
from ._engine.results.policies import Inputs as Inputs
from ._engine.results.policies import RunId as RunId
from ._engine.results.policies import TaskSource as TaskSource

__all__ = [
    "DEFAULT",
    "FLOW_PARAMETERS",
    "INPUTS",
    "NONE",
    "NO_CACHE",
    "RUN_ID",
    "TASK_SOURCE",
    "CacheContext",
    "CacheKeyFn",
    "CacheKeyFnPolicy",
    "CachePolicy",
    "CompoundCachePolicy",
    "FlowParameters",
    "Inputs",
    "RunId",
    "TaskSource",
]
