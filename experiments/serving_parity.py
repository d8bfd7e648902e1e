"""Serving-path parity: the exported model's val accuracy with frames taken through vr-serve's path.

    python experiments/serving_parity.py exported_models/default.onnx --data data/demo

Each validation JPEG is wrapped in a wire-protocol frame, encoded and decoded, preprocessed by
server.preprocess.preprocess_frame with the geometry in the model's metadata, and run by onnxruntime.
The result must equal the val accuracy train-vr stored in the file (vr.val_accuracy) within 0.5 pp.
"""

from __future__ import annotations

import argparse
import json
import sys

from vr_recognition.training.serving_eval import serving_accuracy

TOLERANCE = 0.005


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model")
    parser.add_argument("--data", required=True)
    parser.add_argument("--val-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    result = serving_accuracy(args.model, args.data, args.val_fraction, args.seed)
    result["difference_pp"] = 100 * abs(result["serving_accuracy"] - (result["reported_val_accuracy"] or 0))
    result["within_tolerance"] = result["difference_pp"] <= 100 * TOLERANCE
    print(json.dumps(result, indent=2))
    return 0 if result["within_tolerance"] else 1


if __name__ == "__main__":
    sys.exit(main())
