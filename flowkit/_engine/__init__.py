"""The one async engine behind flows and tasks. Nothing here is public API.

The engine is layered; each layer imports only the leaves and the layers before it
(``tests/test_layers.py`` checks it, imports made for annotations included):

- leaves, the modules here: ``ids`` (run ids), ``loops`` (which event loop, reaching
  one from a thread, driving a coroutine with none), ``clock``, ``home``, ``convert``
  (the cattrs converter), ``threadstop``, ``events`` (the frozen records and their bus),
  ``naming`` and ``limits`` (concurrency and rate limits).
- ``results/``: where values are stored, the cache of them, cache policies. Knows no run.
- ``definition/``: what a task or flow is: its options, the policy derived from them,
  the runnable both build on, signature binding, parameter validation, and the contract
  of task runners.
- ``lifecycle/``: a run from Pending to final: the run, ``engine.execute`` and its
  attempts, hooks, caching, inputs, returned states, futures, the flow's nursery,
  transactions, and the ``Venue`` protocol it drives bodies through.
- ``execution/``: the venues, where bodies run: inline and on the loop (``local``), the
  caller's thread (``bridge``), remote workers, processes and the fork server, children
  in the flow's task group, and generator streams.

Public modules (``flowkit.tasks``, ``flowkit.flows``...) sit above the engine; the engine
imports none of them but ``states`` and ``exceptions``, the vocabulary below it.
"""
