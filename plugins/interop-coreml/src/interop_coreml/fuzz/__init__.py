"""Differential fuzzing of the ONNX → Core ML translator (see docs/fuzzing.md).

- :mod:`.generator` builds seeded random valid ONNX graphs over the ops in :data:`.generator.OPS`;
- :mod:`.oracle` converts one, runs it in the reference interpreter and onnxruntime (and
  onnx's reference evaluator when they disagree) and classifies the outcome;
- :mod:`.shrink` reduces a failing graph while its failure stays the same;
- :mod:`.campaign` runs many trials (``python -m interop_coreml.fuzz``) and saves one
  minimal repro per failure signature.
"""
