"""Peer baselines: the same .onnx and the same preprocessing served by other serving stacks.

Each peer runs in its own virtual environment (created on demand, pinned, cached), because their
dependencies clash with each other and with vr-serve's (PyTriton needs numpy < 2). Only the
serving machinery differs: every peer decodes with `vr_recognition.server.preprocess.preprocess_jpeg`
and runs `vr_recognition.server.inference.InferenceModel` with vr-serve's providers and threads.

| module | runs in | what it owns |
|--------|---------|--------------|
| `specs.py` | vr-bench | which peers exist, their pinned requirements, protocol, settings |
| `venvs.py` | vr-bench | creating and caching a peer's venv; linking this checkout's code into it |
| `triton_server.py` | the triton venv | PyTriton (a real tritonserver): dynamic batcher, REJECT policy |
| `litserve_server.py` | the litserve venv | LitServe with batching and a request timeout |
| `http.py` | peer venv | a small HTTP/1.1 keep-alive client (a connection pool per stream) |
| `drive.py` | peer venv | the load generator for request/response peers: open loop or one in flight |
| `run.py` | vr-bench | starting the peers, running the driver, turning its records into reports |
| `table.py` | vr-bench | the one comparison table |
"""
