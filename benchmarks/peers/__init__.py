"""Hand-written peers of zoo networks in other frameworks, for like-for-like benchmarks.

`torch_models`: PyTorch implementations parameter-matched to four zoo models, with
`load_from_keras` to copy a zoo model's weights in (tests/test_peers.py checks the logits agree).
"""
