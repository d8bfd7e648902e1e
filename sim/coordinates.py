"""Panda3D -> capture-format (Unity) coordinates, so simulated poses read like a real headset's.

Panda3D is right-handed with z up and y forward; Unity (and docs/capture-format.md) is left-handed with
y up and z forward. Swapping the y and z components maps one onto the other (the swap also flips the
handedness); a rotation is converted through its basis vectors, which avoids quaternion sign pitfalls.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from vr_recognition.server.protocol import Pose


def panda_to_unity_vector(vector: Sequence[float]) -> tuple[float, float, float]:
    return float(vector[0]), float(vector[2]), float(vector[1])


def quaternion_from_basis(
    right: Sequence[float], up: Sequence[float], forward: Sequence[float]
) -> tuple[float, float, float, float]:
    """Unit quaternion (x, y, z, w) of the rotation whose matrix columns are right, up, forward."""
    m = [[right[i], up[i], forward[i]] for i in range(3)]
    trace = m[0][0] + m[1][1] + m[2][2]
    if trace > 0:
        s = 2.0 * math.sqrt(trace + 1.0)
        w, x, y, z = 0.25 * s, (m[2][1] - m[1][2]) / s, (m[0][2] - m[2][0]) / s, (m[1][0] - m[0][1]) / s
    elif m[0][0] > m[1][1] and m[0][0] > m[2][2]:
        s = 2.0 * math.sqrt(1.0 + m[0][0] - m[1][1] - m[2][2])
        w, x, y, z = (m[2][1] - m[1][2]) / s, 0.25 * s, (m[0][1] + m[1][0]) / s, (m[0][2] + m[2][0]) / s
    elif m[1][1] > m[2][2]:
        s = 2.0 * math.sqrt(1.0 + m[1][1] - m[0][0] - m[2][2])
        w, x, y, z = (m[0][2] - m[2][0]) / s, (m[0][1] + m[1][0]) / s, 0.25 * s, (m[1][2] + m[2][1]) / s
    else:
        s = 2.0 * math.sqrt(1.0 + m[2][2] - m[0][0] - m[1][1])
        w, x, y, z = (m[1][0] - m[0][1]) / s, (m[0][2] + m[2][0]) / s, (m[1][2] + m[2][1]) / s, 0.25 * s
    if w < 0:  # one canonical sign, so identical poses serialise identically
        w, x, y, z = -w, -x, -y, -z
    norm = math.sqrt(w * w + x * x + y * y + z * z)
    return x / norm, y / norm, z / norm, w / norm


def rotate(quaternion: Sequence[float], vector: Sequence[float]) -> tuple[float, float, float]:
    """Apply quaternion (x, y, z, w) to a vector, as Unity's `rotation * vector` does."""
    qx, qy, qz, qw = quaternion
    vx, vy, vz = vector
    # t = 2 * cross(q.xyz, v); v' = v + w * t + cross(q.xyz, t)
    tx, ty, tz = 2 * (qy * vz - qz * vy), 2 * (qz * vx - qx * vz), 2 * (qx * vy - qy * vx)
    return (
        vx + qw * tx + (qy * tz - qz * ty),
        vy + qw * ty + (qz * tx - qx * tz),
        vz + qw * tz + (qx * ty - qy * tx),
    )


def head_pose_of(camera, world) -> Pose:  # NodePaths; untyped so this module needs no panda3d import
    """The camera's pose in `world`, in capture-format (Unity) coordinates."""
    position = camera.get_pos(world)
    right = world.get_relative_vector(camera, (1, 0, 0))
    forward = world.get_relative_vector(camera, (0, 1, 0))
    up = world.get_relative_vector(camera, (0, 0, 1))
    rotation = quaternion_from_basis(
        panda_to_unity_vector(right), panda_to_unity_vector(up), panda_to_unity_vector(forward)
    )
    return Pose(position=panda_to_unity_vector(position), rotation=rotation)
