"""vr-sim: software-rendered VR headset frames (Panda3D) for training data, tests and benchmarks.

Importing this package stays light (no Panda3D, numpy or OpenCV); the renderer is imported by the
modules that need it, so `vr-sim --help` and the capture format work without the `sim` extra.
"""

__version__ = "0.1.0"
SOURCE_NAME = f"vr-sim {__version__}"
