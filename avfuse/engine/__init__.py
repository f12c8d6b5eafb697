"""avfuse.engine: the streaming runtime (clock, rings, ingest, aligner, scheduler, pipeline).

from avfuse.engine import Pipeline, PipelineConfig
summary = Pipeline(streams=[source], backend=loaded_backend, sinks=[sink]).run()
"""

from avfuse.engine.pipeline import Pipeline, PipelineConfig
from avfuse.engine.postprocess import PostprocessConfig

__all__ = ["Pipeline", "PipelineConfig", "PostprocessConfig"]
