"""``flowkit bench``: run a workload across backends, runners, limits and sizes, fairly.

Each cell of the matrix (a workload on one backend, runner, limit and size, done by
flowkit or by its floor, the same work without flowkit) runs each round in a fresh
process, after an untimed warm-up, with the rounds of all cells in a shuffled order::

    matrix = Matrix.parse("cpu", runner="threads:2,processes:2", n="100", rounds=3)
    document = run(matrix)              # the flowkit-bench/1 document
    for cell in document["cells"]:
        print(cell["cell"], cell["median_s"], cell["ratio"])

From the shell: ``flowkit bench cpu --runner threads:2,processes:2 --n 100``; see
docs/benchmarking.md.
"""

from ._command import FORMAT as FORMAT
from ._command import Matrix as Matrix
from ._command import load_document as load_document
from ._command import run as run
from ._command import write_document as write_document
from ._machine import describe_machine as describe_machine
from ._matrix import BUILT_IN as BUILT_IN
from ._matrix import MatrixError as MatrixError
from ._stats import Comparison as Comparison
from ._stats import compare as compare

__all__ = [
    "BUILT_IN",
    "FORMAT",
    "Comparison",
    "Matrix",
    "MatrixError",
    "compare",
    "describe_machine",
    "load_document",
    "run",
    "write_document",
]
