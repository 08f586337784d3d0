"""lenet-serve: the engine and the digit reader as a network service (docs/serving.md).

One module per job: ``cli`` (the command), ``app`` (the routes), ``protocol`` and ``tensors``
(the Open Inference Protocol's bodies, binary tensor data included), ``batcher`` (dynamic
batching), ``limits`` (bodies and admission), ``models`` (what is served), ``reading``
(``/v1/read``), ``metrics`` (Prometheus), ``errors``, ``ray_deployment`` (Ray Serve) and
``static/`` (the page). Needs the ``[serve]`` extra; ``--ray`` needs ``[ray]``.
"""
