#!/usr/bin/env python3
"""Benchmark inputs for bench/scan/run.sh (written under the directory given, never committed):
dense.pkl (a dense 10 MB pickle), model.pt (a torch.save-style zip of GB_ZIP GiB), and mixed/
(the test corpus plus a safetensors file, a numpy array and the two above)."""

import collections
import io
import os
import pickle
import struct
import subprocess
import sys
import types
import zipfile

import numpy as np

out = sys.argv[1]
gib = float(os.environ.get("GB_ZIP", "1"))
os.makedirs(out, exist_ok=True)

# A dense pickle: many small objects, protocol 4 (what pickle.dump writes by default).
rows = []
size = 0
i = 0
while True:
    rows.append({"id": i, "name": f"token-{i}", "score": i * 0.5, "ids": (i, i + 1, i + 2), "ok": i % 2 == 0})
    i += 1
    if i % 10000 == 0:
        size = len(pickle.dumps(rows, protocol=4))
        if size >= 10 * 1000 * 1000:
            break
with open(os.path.join(out, "dense.pkl"), "wb") as f:
    pickle.dump(rows, f, protocol=4)

# A torch.save-style zip: data.pkl with persistent storages, data/N stored uncompressed.
torch = types.ModuleType("torch")
utils = types.ModuleType("torch._utils")
sys.modules["torch"], sys.modules["torch._utils"] = torch, utils
torch._utils = utils


def _rebuild_tensor_v2(*a):
    raise RuntimeError


_rebuild_tensor_v2.__module__ = "torch._utils"
utils._rebuild_tensor_v2 = _rebuild_tensor_v2
FloatStorage = type("FloatStorage", (), {"__module__": "torch"})
torch.FloatStorage = FloatStorage


class Storage:
    def __init__(self, key, numel):
        self.key, self.numel = key, numel


class T:
    def __init__(self, st, shape):
        self.st, self.shape = st, shape

    def __reduce_ex__(self, p):
        return (_rebuild_tensor_v2, (self.st, 0, self.shape, (self.shape[1], 1), False, collections.OrderedDict()))


class P(pickle.Pickler):
    def persistent_id(self, o):
        return ("storage", FloatStorage, o.key, "cpu", o.numel) if isinstance(o, Storage) else None


n_tensors = 64
per = int(gib * (1 << 30)) // n_tensors // 4
rows_ = 1024
cols = per // rows_
sd = collections.OrderedDict()
sts = []
for k in range(n_tensors):
    st = Storage(str(k), rows_ * cols)
    sts.append(st)
    sd[f"layers.{k}.weight"] = T(st, (rows_, cols))
buf = io.BytesIO()
P(buf, protocol=2).dump(sd)
rng = np.random.default_rng(0)
chunk = rng.standard_normal(rows_ * cols, dtype="f4").tobytes()
with zipfile.ZipFile(os.path.join(out, "model.pt"), "w", zipfile.ZIP_STORED) as z:
    z.writestr("archive/data.pkl", buf.getvalue())
    z.writestr("archive/byteorder", b"little")
    for st in sts:
        z.writestr(f"archive/data/{st.key}", chunk)
    z.writestr("archive/version", b"3\n")

# A directory of mixed files.
mixed = os.path.join(out, "mixed")
corpus = os.path.join(out, "corpus")
subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), "../../tests/corpus/gen.py"), corpus],
               check=True, stdout=subprocess.DEVNULL)
os.makedirs(mixed, exist_ok=True)
for kind in ("benign", "malicious"):
    for name in os.listdir(os.path.join(corpus, kind)):
        os.link(os.path.join(corpus, kind, name), os.path.join(mixed, f"{kind}-{name}"))
os.link(os.path.join(out, "dense.pkl"), os.path.join(mixed, "dense.pkl"))
arr = rng.standard_normal(64 << 20 >> 2, dtype="f4")
hdr = b'{"w":{"dtype":"F32","shape":[%d],"data_offsets":[0,%d]}}' % (arr.size, arr.nbytes)
with open(os.path.join(mixed, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(hdr)) + hdr + arr.tobytes())
np.save(os.path.join(mixed, "embeddings.npy"), arr[: 16 << 20 >> 2])
# picklescan and modelscan choose files by extension; give them their chance on the copies.
with zipfile.ZipFile(os.path.join(mixed, "small-model.pt"), "w") as z:
    z.writestr("archive/data.pkl", buf.getvalue())
print("inputs in", out)
