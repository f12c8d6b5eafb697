"""avfuse: real-time audio-visual fusion inference.

Capture camera and microphone frames, stamp them on one host clock, align them
through timestamped ring buffers and run fused recognition models exported from
PyTorch to ONNX. The core runtime imports neither torch nor TensorRT; those load
only when a job asks for them.
"""

from avfuse.errors import AvfuseError

__version__ = "0.1.0"
__all__ = ["AvfuseError", "__version__"]
