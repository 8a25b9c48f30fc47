"""The live path: ONNX export with parity checks, the hand-written step graphs, and the event-by-event replay."""
