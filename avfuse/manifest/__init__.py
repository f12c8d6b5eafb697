"""The model manifest: the contract between a model and the runtime.

`manifest.json` sits beside `model.onnx`. It says what each graph input is (its role
and the exact pre-processing), what each output is (its kind), when the model runs
and how its outputs become decisions. Version 2 describes any pretrained ONNX model
without code; version 1 (avfuse 0.1's exports) keeps loading. The runtime refuses a
model whose manifest is missing or inconsistent, with a `ManifestError` naming the
field. See `spec` (the types), `parse` (the file layout), `resolve` (completion from
the graph) and README's "Bring your own model" (the reference).
"""

from avfuse.manifest.files import file_sha256, load_manifest
from avfuse.manifest.resolve import ORT_TYPES, check_against_graph, resolve
from avfuse.manifest.spec import (
    DECISION_KINDS,
    DTYPES,
    FORMAT,
    FUSIONS,
    HEAD_KINDS,
    KINDS,
    MANIFEST_NAME,
    MODALITIES,
    POOLS,
    ROLES,
    SCHEMA_VERSION,
    VERSIONS,
    AgreementSpec,
    Cadence,
    DecisionSpec,
    Dim,
    Manifest,
    StatePair,
    TensorSpec,
)

__all__ = [
    "DECISION_KINDS",
    "HEAD_KINDS",
    "DTYPES",
    "FORMAT",
    "FUSIONS",
    "KINDS",
    "MANIFEST_NAME",
    "MODALITIES",
    "ORT_TYPES",
    "POOLS",
    "ROLES",
    "SCHEMA_VERSION",
    "VERSIONS",
    "AgreementSpec",
    "Cadence",
    "DecisionSpec",
    "Dim",
    "Manifest",
    "StatePair",
    "TensorSpec",
    "check_against_graph",
    "file_sha256",
    "load_manifest",
    "resolve",
]
