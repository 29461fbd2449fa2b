"""Deployment artefacts and their proofs: SavedModel, ONNX, LiteRT, quantisation, parity, footprint."""
