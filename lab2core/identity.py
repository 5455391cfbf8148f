"""Identity of a unit of work: what it computes from, hashed, so a finished result can be found again."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

import torch


def unit_identity(step: str, params: Mapping[str, object], data_digest: str, code_version: str) -> str:
    """Hash of a unit's step, params (as logged, str values), input data digest and code version."""
    material = {"step": step, "params": {k: str(v) for k, v in sorted(params.items())}, "data": data_digest, "code": code_version}
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:24]


def tensor_digest(tensor: torch.Tensor) -> str:
    """Short content hash of a tensor (dtype, shape and values)."""
    h = hashlib.sha256(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
    h.update(tensor.detach().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]
