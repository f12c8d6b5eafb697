"""avfuse.ops: what an operator watches on an edge box while a run goes on.

    health.py   liveness and readiness verdicts from the pipeline's published snapshot
                (shared by the HTTP endpoints and a service watchdog)
    metrics.py  a prometheus_client collector turning that snapshot into metric families
    http.py     `MetricsServer`: /metrics, /healthz and /readyz on 127.0.0.1

Everything here reads only `Pipeline.snapshot`, the JSON-ready dict the pipeline replaces
whole once per stats tick, so a scrape never touches the live objects of the run.
prometheus_client is optional (``pip install 'avfuse[metrics]'``) and imported only when a
collector or server is made.
"""

from avfuse.ops.health import Verdict, liveness, readiness, streams_up

__all__ = ["Verdict", "liveness", "readiness", "streams_up"]
