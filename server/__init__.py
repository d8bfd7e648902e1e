"""vr-serve: the real-time recognition server and the pieces shared with its clients.

Importing this package must stay cheap and must never import torch: `server.protocol` is pure
Python so headset clients, the benchmark and tests can all share it.
"""

__version__ = "0.1.0"
