#!/usr/bin/env python3
"""Writes the scanner's test corpus: benign model files that must scan clean and malicious ones
that must be flagged, one per technique of the model-scanning reference.

    gen.py OUT_DIR

Writes OUT_DIR/benign/*, OUT_DIR/malicious/* and OUT_DIR/expect.json ({"file": ..., "verdict":
"benign"|"malicious", "technique": ..., "rule": optional rule id that must be reported}).
Only Python's own pickle, zipfile, tarfile, struct and numpy are used: no torch.
"""

import collections
import gzip
import io
import json
import os
import pickle
import struct
import sys
import tarfile
import types
import zipfile
import zlib

import numpy as np

OUT = sys.argv[1] if len(sys.argv) > 1 else "corpus"
EXPECT = []


def write(kind, name, data, technique, rule=None):
    d = os.path.join(OUT, kind)
    os.makedirs(d, exist_ok=True)
    p = os.path.join(d, name)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(data)
    e = {"file": f"{kind}/{name}", "verdict": kind, "technique": technique}
    if rule:
        e["rule"] = rule
    EXPECT.append(e)


def benign(name, data, technique):
    write("benign", name, data, technique)


def bad(name, data, technique, rule=None):
    write("malicious", name, data, technique, rule)


# ---------------------------------------------------------------------------------------------
# Stand-ins for torch, so pickle writes exactly the globals torch.save writes.


def fake_module(name):
    m = types.ModuleType(name)
    sys.modules[name] = m
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, m)
    return m


torch = fake_module("torch")
torch_utils = fake_module("torch._utils")
torch_nn = fake_module("torch.nn")
torch_nn_param = fake_module("torch.nn.parameter")


def _rebuild_tensor_v2(*a):
    raise RuntimeError


def _rebuild_parameter(*a):
    raise RuntimeError


for f in (_rebuild_tensor_v2, _rebuild_parameter):
    f.__module__ = "torch._utils"
    setattr(torch_utils, f.__name__, f)

STORAGE_TYPES = {}
for tname, code, size in [
    ("FloatStorage", "f4", 4),
    ("HalfStorage", "f2", 2),
    ("BFloat16Storage", None, 2),
    ("LongStorage", "i8", 8),
    ("IntStorage", "i4", 4),
    ("ByteStorage", "u1", 1),
]:
    cls = type(tname, (), {"__module__": "torch"})
    setattr(torch, tname, cls)
    STORAGE_TYPES[tname] = (cls, code, size)


class Storage:
    def __init__(self, kind, data, key):
        self.kind, self.data, self.key = kind, data, key


class Tensor:
    def __init__(self, storage, shape, requires_grad=False, param=False):
        self.storage, self.shape = storage, shape
        self.requires_grad, self.param = requires_grad, param

    def __reduce_ex__(self, proto):
        stride = []
        acc = 1
        for d in reversed(self.shape):
            stride.insert(0, acc)
            acc *= d
        args = (self.storage, 0, tuple(self.shape), tuple(stride), self.requires_grad, collections.OrderedDict())
        if self.param:
            inner = Tensor(self.storage, self.shape)
            return (_rebuild_parameter, (inner, self.requires_grad, collections.OrderedDict()))
        return (_rebuild_tensor_v2, args)


class TorchPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            cls = STORAGE_TYPES[obj.kind][0]
            numel = len(obj.data) // STORAGE_TYPES[obj.kind][2]
            return ("storage", cls, obj.key, "cpu", numel)
        return None


def state_dict(layers, dtype="FloatStorage", params=False, extra_meta=True):
    """A real-shaped state dict: OrderedDict name -> tensor, with torch's _metadata attribute."""
    sd = collections.OrderedDict()
    storages = []
    rng = np.random.default_rng(len(layers))
    code = STORAGE_TYPES[dtype][1] or "f2"
    for name, shape in layers:
        n = int(np.prod(shape))
        arr = rng.standard_normal(n).astype("f4").astype(code) if code[0] == "f" else np.arange(n, dtype=code)
        st = Storage(dtype if code[0] == "f" else ("LongStorage" if code == "i8" else dtype), arr.tobytes(), str(len(storages)))
        storages.append(st)
        sd[name] = Tensor(st, shape, param=params)
    if extra_meta:
        sd._metadata = collections.OrderedDict([("", {"version": 1})])
    return sd, storages


def torch_pickle(obj, protocol=2):
    buf = io.BytesIO()
    TorchPickler(buf, protocol=protocol).dump(obj)
    return buf.getvalue()


def torch_zip(data_pkl, storages, top="archive", extra=(), mutate=None):
    """Lays out a zip as torch.save does: data.pkl, byteorder, data/N, version, ids."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{top}/data.pkl", data_pkl)
        z.writestr(f"{top}/.format_version", b"1")
        z.writestr(f"{top}/.storage_alignment", b"64")
        z.writestr(f"{top}/byteorder", b"little")
        for s in storages:
            z.writestr(f"{top}/data/{s.key}", s.data)
        for name, content in extra:
            z.writestr(f"{top}/{name}", content)
        z.writestr(f"{top}/version", b"3\n")
        z.writestr(f"{top}/.data/serialization_id", b"1234567890123456789012345678901234567890")
    data = buf.getvalue()
    return mutate(data) if mutate else data


MLP = [("fc1.weight", (64, 32)), ("fc1.bias", (64,)), ("fc2.weight", (10, 64)), ("fc2.bias", (10,))]
LORA = [
    (f"base_model.model.transformer_blocks.{i}.attn.to_{p}.lora_{ab}.weight", (8, 64) if ab == "A" else (64, 8))
    for i in range(3)
    for p in "qkv"
    for ab in "AB"
]


def legacy_torch(obj_pickle, storages, extra_pickles=None):
    """Pre-1.6 torch.save: magic, protocol version, sys_info, object, storage keys, storages."""
    out = io.BytesIO()
    magic = 0x1950A86A20F9469CFC6C
    pickle.dump(magic, out, protocol=2)
    pickle.dump(1001, out, protocol=2)
    pickle.dump({"protocol_version": 1001, "little_endian": True,
                 "type_sizes": {"short": 2, "int": 4, "long": 4}}, out, protocol=2)
    out.write(obj_pickle)
    pickle.dump([s.key for s in storages], out, protocol=2)
    for s in storages:
        size = STORAGE_TYPES[s.kind][2]
        out.write(struct.pack("<q", len(s.data) // size))
        out.write(s.data)
    return out.getvalue()


class LegacyPickler(TorchPickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            cls = STORAGE_TYPES[obj.kind][0]
            return ("storage", cls, obj.key, "cpu", len(obj.data) // STORAGE_TYPES[obj.kind][2], None)
        return None


def legacy_obj(obj):
    buf = io.BytesIO()
    LegacyPickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# Benign samples

sd, st = state_dict(MLP)
benign("mlp.pt", torch_zip(torch_pickle(sd), st), "torch.save zip of an MLP state dict")
sd, st = state_dict(LORA, dtype="HalfStorage")
benign("adapter_model.bin", torch_zip(torch_pickle(sd), st, top="adapter_model"), "LoRA adapter, fp16")
sd, st = state_dict(MLP, dtype="BFloat16Storage", params=True)
benign("params-bf16.pth", torch_zip(torch_pickle(sd), st, top="model"), "Parameters, bf16")
sd, st = state_dict([("bn.num_batches_tracked", (1,)), ("bn.running_mean", (16,))], dtype="LongStorage")
benign("buffers.ckpt", torch_zip(torch_pickle(sd), st), "int64 buffers")
ckpt = {"epoch": 3, "state_dict": state_dict(MLP)[0], "optimizer": {"lr": 0.001, "betas": (0.9, 0.999)}}
_, st2 = state_dict(MLP)
benign("checkpoint.pt", torch_zip(torch_pickle(ckpt), st2), "training checkpoint dict")
sd, st = state_dict(MLP)
benign("legacy.pt", legacy_torch(legacy_obj(sd), st), "legacy (pre-1.6) torch.save")

for proto in range(6):
    benign(f"data-p{proto}.pkl", pickle.dumps(
        {"ints": list(range(50)), "floats": [0.5, -1.25], "s": "text", "b": b"\x00\x01",
         "t": (1, 2, 3), "set": {1, 2}, "fs": frozenset({3}), "od": collections.OrderedDict(a=1),
         "c": complex(1, 2), "ba": bytearray(b"xy"), "none": None, "nested": [{"k": [1, [2, [3]]]}]},
        protocol=proto), f"plain data, protocol {proto}")
for proto in (2, 3, 4, 5):
    benign(f"numpy-arrays-p{proto}.pkl", pickle.dumps(
        {"w": np.arange(12, dtype="f4").reshape(3, 4), "s": np.float64(2.5), "i": np.int64(7)},
        protocol=proto), f"numpy arrays pickled, protocol {proto}")


def npy(arr):
    b = io.BytesIO()
    np.save(b, arr, allow_pickle=True)
    return b.getvalue()


benign("embeddings.npy", npy(np.linspace(0, 1, 1000, dtype="f4").reshape(10, 100)), "numpy float array")
benign("labels.npy", npy(np.array(["cat", "dog", None, 3, [1, 2], {"k": "v"}], dtype=object)), "numpy object array of plain data")
b = io.BytesIO()
np.savez(b, a=np.ones(5), b=np.zeros((2, 2), dtype="i4"))
benign("arrays.npz", b.getvalue(), "npz")
b = io.BytesIO()
np.savez_compressed(b, a=np.arange(100), o=np.array([1, "x"], dtype=object))
benign("compressed.npz", b.getvalue(), "compressed npz with an object array")


def safetensors(tensors, metadata=None, pad=True, tail=b""):
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    off = 0
    blobs = []
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        blobs.append(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs) + tail


ST = [
    ("w", "F32", (4, 8), np.ones((4, 8), "f4").tobytes()),
    ("b", "F16", (8,), np.zeros(8, "f2").tobytes()),
    ("ids", "I64", (3,), np.arange(3, dtype="i8").tobytes()),
    ("flag", "BOOL", (2,), b"\x01\x00"),
    ("empty", "F32", (0, 4), b""),
]
benign("model.safetensors", safetensors(ST, {"format": "pt"}), "safetensors")
benign("diffusion_pytorch_model.safetensors", safetensors([("x", "BF16", (16, 16), bytes(512))]), "safetensors bf16")


def gguf_str(s):
    s = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(s)) + s


def gguf(kvs, tensors, version=3, alignment=32, fix_offsets=True, raw_kv=None, counts=None):
    out = b"GGUF" + struct.pack("<I", version)
    nt, nk = counts or (len(tensors), len(kvs) + (len(raw_kv) if raw_kv else 0))
    out += struct.pack("<QQ", nt, nk)
    for k, t, v in kvs:
        out += gguf_str(k) + struct.pack("<I", t)
        if t == 8:
            out += gguf_str(v)
        elif t == 4:
            out += struct.pack("<I", v)
        elif t == 6:
            out += struct.pack("<f", v)
        elif t == 9:
            et, items = v
            out += struct.pack("<IQ", et, len(items))
            for it in items:
                out += gguf_str(it) if et == 8 else struct.pack("<f", it)
    for r in raw_kv or []:
        out += r
    off = 0
    infos = b""
    datas = []
    sizes = {0: (1, 4), 1: (1, 2), 8: (32, 34)}
    for name, dims, ty, offset in tensors:
        n = int(np.prod(dims))
        blk, ts = sizes[ty]
        nbytes = n // blk * ts
        o = off if offset is None else offset
        infos += gguf_str(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        infos += struct.pack("<IQ", ty, o)
        datas.append((off, bytes(nbytes)))
        off += nbytes
        off = (off + alignment - 1) // alignment * alignment
    out += infos
    out += bytes((alignment - len(out) % alignment) % alignment)
    data = bytearray(off)
    for o, d in datas:
        data[o:o + len(d)] = d
    return out + bytes(data)


BENIGN_TEMPLATE = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + "
                   "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
                   "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
KVS = [
    ("general.architecture", 8, "llama"),
    ("general.alignment", 4, 32),
    ("llama.rope.freq_base", 6, 10000.0),
    ("tokenizer.ggml.tokens", 9, (8, ["<s>", "</s>", "hello"])),
    ("tokenizer.ggml.scores", 9, (6, [0.0, 0.0, -1.5])),
    ("tokenizer.chat_template", 8, BENIGN_TEMPLATE),
]
TENSORS = [("token_embd.weight", (64, 3), 0, None), ("blk.0.attn_q.weight", (64, 4), 1, None),
           ("blk.0.ffn.weight", (64, 2), 8, None)]
benign("tiny.gguf", gguf(KVS, TENSORS), "GGUF v3")

benign("config.json", json.dumps({"architectures": ["Qwen"], "hidden_size": 64}).encode(), "a config file")
benign("README.md", b"# Model card\n\nLoaded with `torch.load(path)`.\n", "a text file")

tb = io.BytesIO()
with tarfile.open(fileobj=tb, mode="w") as t:
    for name in ("mlp.pt", "model.safetensors", "embeddings.npy"):
        p = os.path.join(OUT, "benign", name)
        t.add(p, arcname=f"bundle/{name}")
benign("bundle.tar", tb.getvalue(), "tar of benign models")
benign("bundle.tar.gz", gzip.compress(tb.getvalue()), "tar.gz of benign models")

# ---------------------------------------------------------------------------------------------
# Malicious samples: pickles built opcode by opcode.


def proto0_call(module, name, arg="id"):
    return f"c{module}\n{name}\n(S'{arg}'\ntR.".encode()


def p2_call(module, name, args=b"X\x02\x00\x00\x00id\x85"):
    return b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\n" + args + b"R."


def p4_sg(module, name, args=b"\x8c\x02id\x85"):
    m, n = module.encode(), name.encode()
    return b"\x80\x04\x8c" + bytes([len(m)]) + m + b"\x94\x8c" + bytes([len(n)]) + n + b"\x94\x93\x94" + args + b"R."


GADGETS = [
    ("pip", "main"),
    ("pkgutil", "resolve_name"),
    ("operator", "methodcaller"),
    ("operator", "attrgetter"),
    ("functools", "partial"),
    ("logging", "FileHandler"),
    ("_io", "FileIO"),
    ("urllib.request", "urlopen"),
    ("types", "CodeType"),
    ("cloudpickle.cloudpickle", "subimport"),
    ("ctypes", "CDLL"),
    ("pty", "spawn"),
    ("uuid", "_get_command_stdout"),
    ("_osx_support", "_read_output"),
    ("imaplib", "IMAP4_stream"),
    ("_pyrepl.pager", "pipe_pager"),
    ("idlelib.pyshell", "ModifiedInterpreter"),
    ("cProfile", "run"),
    ("doctest", "debug_script"),
    ("timeit", "timeit"),
    ("numpy.f2py.diagnose", "run_command"),
    ("torch.serialization", "load"),
    ("torch._inductor.codecache", "compile_file"),
    ("runpy", "_run_code"),
    ("webbrowser", "open"),
    ("os", "spawnv"),
    ("os", "spawnvp"),
    ("os", "system"),
    ("posix", "system"),
    ("subprocess", "Popen"),
    ("subprocess", "check_output"),
    ("builtins", "eval"),
    ("builtins", "exec"),
    ("builtins", "compile"),
    ("builtins", "getattr"),
    ("builtins", "__import__"),
    ("builtins", "open"),
    ("builtins", "breakpoint"),
    ("__builtin__", "eval"),
    ("sklearn.pipeline", "Pipeline"),
]
for i, (m, n) in enumerate(GADGETS):
    gen = [proto0_call, p2_call, p4_sg][i % 3]
    bad(f"gadget-{m}.{n}.pkl", gen(m, n), f"gadget {m}.{n}", "pickle/global")

bad("asyncio-submodule.pkl", p4_sg("asyncio.unix_events", "_UnixSubprocessTransport._start"),
    "submodule of a banned module, dotted name", "pickle/dotted-name")
bad("dotted-pathlib-os-system.pkl", p4_sg("pathlib", "os.system"), "dotted name in STACK_GLOBAL", "pickle/dotted-name")
# numpy.dtype (allowed) gets attributes set by BUILD, then reached by a dotted name.
bad("numpy-build-builtins.pkl",
    b"\x80\x04\x8c\x05numpy\x94\x8c\x05dtype\x94\x93\x94N}\x94(\x8c\x0c__builtins__\x94\x8c\x08builtins\x94"
    b"\x8c\x04eval\x94\x93\x94u\x86b0h\x00\x8c\x11dtype.__builtins__\x93\x8c\x02id\x85R.",
    "numpy.__builtins__ reached through BUILD", "pickle/build")
bad("import-getattr.pkl",
    b"\x80\x02cbuiltins\ngetattr\ncbuiltins\n__import__\nX\x02\x00\x00\x00os\x85RX\x06\x00\x00\x00system\x86R"
    b"X\x02\x00\x00\x00id\x85R.", "builtins.__import__ with getattr", "pickle/call-computed")

# Hiding the operands.
bad("sg-reduce-operand.pkl",
    b"\x80\x04\x8c\x08builtins\x8c\x03str\x93\x8c\x02os\x85R\x8c\x06system\x93\x8c\x02id\x85R.",
    "STACK_GLOBAL operand built by REDUCE", "pickle/stack-global-operand")
bad("sg-memo.pkl", b"\x80\x04\x8c\x02os\x94\x8c\x06system\x9400h\x00h\x01\x93\x8c\x02id\x85R.",
    "STACK_GLOBAL operands fetched from the memo", "pickle/global")
bad("sg-memo-put-index.pkl",
    b"\x80\x04\x8c\x03abcq\x05\x8c\x02osq\x07\x8c\x06systemq\x030\x8c\x05decoy\x94h\x07h\x03\x93\x8c\x02id\x85R.",
    "memo index is the PUT argument, not the memo length", "pickle/global")
bad("sg-memo-ints.pkl",
    b"\x80\x04K\x01q\x00\x8c\x02osq\x01\x8c\x06systemq\x02000h\x01h\x02\x93\x8c\x02id\x85R.",
    "integers in the memo", "pickle/global")
bad("sg-missing-memo.pkl", p2_call("os", "system")[:-1] + b"h\x63.",
    "a missing memo key after the call", "pickle/global")
bad("sg-string-opcodes.pkl", b"\x80\x04S'os'\nS'system'\n\x93\x8c\x02id\x85R.",
    "STRING opcodes feeding STACK_GLOBAL", "pickle/global")
bad("sg-escaped-string.pkl", b"\x80\x04S'o\\x73'\nS'sys\\164em'\n\x93\x8c\x02id\x85R.",
    "escaped STRING operands", "pickle/global")
bad("obj-pop.pkl", b"(cos\nsystem\nS'id'\no0N.", "OBJ followed by POP", "pickle/global")
bad("inst.pkl", b"(S'id'\nios\nsystem\n.", "INST", "pickle/global")
bad("newobj.pkl", b"\x80\x02csubprocess\nPopen\n)\x81.", "NEWOBJ", "pickle/global")
bad("ext.pkl", b"\x80\x02\x82\x07)R.", "EXT of an unregistered code", "pickle/ext")
bad("ext-registered.pkl",
    b"\x80\x02ccopyreg\nadd_extension\nX\x02\x00\x00\x00osX\x06\x00\x00\x00systemK\x07\x87R0\x82\x07)R.",
    "EXT after copyreg.add_extension", "pickle/global")
# FRAME: the frame ends inside a string's bytes. A reader that continues past the frame edge
# reads 'N.' (benign) next; one that takes the argument from after the frame runs os.system.
payload = b"cos\nsystem\n(S'id'\ntR."
frame_body = b"\x8c\x0aAAAA"
after = b"B" * 6 + b"N.XX" + payload
bad("frame-mismatch.pkl", b"\x80\x04\x95" + struct.pack("<Q", len(frame_body)) + frame_body + after,
    "FRAME boundary mismatch", "pickle/frame")
bad("frame-nested.pkl",
    b"\x80\x04\x95" + struct.pack("<Q", 30) + b"\x95" + struct.pack("<Q", 3) + b"N0" + p2_call("os", "system")[2:],
    "FRAME inside an unfinished frame", "pickle/frame")
bad("concatenated.pkl", pickle.dumps({"ok": 1}, protocol=2) + p2_call("os", "system"),
    "a malicious pickle after a benign one", "pickle/global")
bad("payload-garbage.pkl", p2_call("os", "system") + os.urandom(64), "payload followed by garbage", "pickle/global")
bad("payload-garbage-p0.bin", b"N0" + proto0_call("os", "system") + b"\xff" * 32,
    "protocol 0 payload not starting like a pickle, followed by garbage", "pickle/global")

# Containers.
evil = p2_call("os", "system")
sd, st = state_dict(MLP)
good_pkl = torch_pickle(sd)
bad("torch-evil-datapkl.pt", torch_zip(p2_call("os", "system"), []), "torch zip with a malicious data.pkl", "pickle/global")
bad("torch-hidden-member.pt", torch_zip(good_pkl, st, extra=[("extra/config.bin", evil)]),
    "pickle in a zip member not named .pkl", "pickle/global")
bad("torch-hidden-p0-member.pt", torch_zip(good_pkl, st, extra=[("notes.txt", proto0_call("os", "system"))]),
    "protocol 0 pickle in a member", "pickle/global")
bad("torch-evil-storage.pt", torch_zip(good_pkl, st, extra=[("data/99", evil)]),
    "pickle hidden as a storage", "pickle/global")


def corrupt_crc(data, name=b"data.pkl"):
    b = bytearray(data)
    i = b.find(b"PK\x01\x02")
    while i >= 0:
        n = struct.unpack_from("<H", b, i + 28)[0]
        if b[i + 46:i + 46 + n].endswith(name):
            struct.pack_into("<I", b, i + 16, 0xDEADBEEF)
            lo = struct.unpack_from("<I", b, i + 42)[0]
            struct.pack_into("<I", b, lo + 14, 0xDEADBEEF)
        i = b.find(b"PK\x01\x02", i + 4)
    return bytes(b)


def set_flags(data, flags, name=b"data.pkl"):
    b = bytearray(data)
    i = b.find(b"PK\x01\x02")
    while i >= 0:
        n = struct.unpack_from("<H", b, i + 28)[0]
        if b[i + 46:i + 46 + n].endswith(name):
            struct.pack_into("<H", b, i + 8, flags)
            lo = struct.unpack_from("<I", b, i + 42)[0]
            struct.pack_into("<H", b, lo + 6, flags)
        i = b.find(b"PK\x01\x02", i + 4)
    return bytes(b)


def rename_local(data, old=b"archive/data.pkl", new=b"archive/data.xyz"):
    b = bytearray(data)
    i = b.find(b"PK\x03\x04" + b"")
    while i >= 0:
        n = struct.unpack_from("<H", b, i + 26)[0]
        if b[i + 30:i + 30 + n] == old:
            b[i + 30:i + 30 + n] = new
            break
        i = b.find(b"PK\x03\x04", i + 4)
    return bytes(b)


bad("torch-bad-crc.pt", torch_zip(evil, [], mutate=corrupt_crc), "bad CRC (PyTorch loads it)", "zip/bad-crc")
for fl in (0x1, 0x20, 0x40):
    bad(f"torch-flag-{fl:#x}.pt", torch_zip(evil, [], mutate=lambda d, fl=fl: set_flags(d, fl | 0x800)),
        f"flag bit {fl:#x}", "zip/flags")
bad("torch-local-name.pt", torch_zip(evil, [], mutate=rename_local), "local header name differs", "zip/name-mismatch")
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w") as z:
    z.writestr("archive/data.pkl", good_pkl)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        z.writestr("archive/data.pkl", evil)
    z.writestr("archive/version", b"3\n")
bad("torch-duplicate.pt", buf.getvalue(), "duplicated data.pkl", "zip/duplicate-name")
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w") as z:
    z.writestr("archive/DATA.PKL", evil)
    z.writestr("archive/version", b"3\n")
bad("torch-upper-case.pt", buf.getvalue(), "data.pkl found case-insensitively", "pickle/global")

bad("raw-pickle.pt", evil, "plain pickle with a torch extension", "pickle/global")
sd, st = state_dict(MLP)
bad("legacy-evil.pt", legacy_torch(p2_call("os", "system"), st), "legacy torch magic with a malicious object", "pickle/global")
legacy = legacy_torch(legacy_obj(sd), st)
bad("legacy-evil-sysinfo.pt", legacy.replace(pickle.dumps({"protocol_version": 1001, "little_endian": True,
    "type_sizes": {"short": 2, "int": 4, "long": 4}}, protocol=2), p2_call("os", "system")),
    "legacy torch: payload in the sys_info pickle", "pickle/global")
bad("renamed.safetensors", evil, "pickle renamed to .safetensors", "pickle/global")
bad("renamed.npy", evil, "pickle renamed to .npy", "pickle/global")
bad("image.png", proto0_call("subprocess", "check_output"), "pickle named as an image", "pickle/global")


def npy_object_payload(pkl):
    h = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    h += " " * ((64 - (10 + len(h) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode() + pkl


bad("object-array.npy", npy_object_payload(evil), "npy with object dtype", "pickle/global")
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("ok.npy", npy(np.ones(3)))
    z.writestr("evil.npy", npy_object_payload(evil))
bad("evil.npz", buf.getvalue(), "npz with a malicious object array", "pickle/global")
bad("archive.7z", b"7z\xbc\xaf\x27\x1c\x00\x04" + os.urandom(64), "7z archive (not readable: fail closed)", "format/unsupported")

tb = io.BytesIO()
with tarfile.open(fileobj=tb, mode="w") as t:
    ti = tarfile.TarInfo("pkg/weights.bin")
    ti.size = len(evil)
    t.addfile(ti, io.BytesIO(evil))
bad("evil.tar", tb.getvalue(), "pickle in a tar", "pickle/global")
bad("evil.tar.gz", gzip.compress(tb.getvalue()), "pickle in a tar.gz", "pickle/global")
inner = torch_zip(evil, [])
for level in range(2):
    b2 = io.BytesIO()
    with zipfile.ZipFile(b2, "w") as z:
        z.writestr(f"level{level}/model.pt", inner)
    inner = b2.getvalue()
tb = io.BytesIO()
with tarfile.open(fileobj=tb, mode="w") as t:
    ti = tarfile.TarInfo("nested.zip")
    ti.size = len(inner)
    t.addfile(ti, io.BytesIO(inner))
bad("nested.tar", tb.getvalue(), "torch zip in zip in zip in tar", "pickle/global")
deep = evil
for level in range(7):
    b2 = io.BytesIO()
    with zipfile.ZipFile(b2, "w") as z:
        z.writestr(f"d{level}.zip" if level else "x.pkl", deep)
    deep = b2.getvalue()
bad("too-deep.zip", deep, "nesting deeper than the limit", "archive/depth")
def set_method(data, method=14):
    b = bytearray(data)
    i = b.find(b"PK\x01\x02")
    struct.pack_into("<H", b, i + 10, method)
    lo = struct.unpack_from("<I", b, i + 42)[0]
    struct.pack_into("<H", b, lo + 8, method)
    return bytes(b)


bad("lzma-member.zip", set_method(torch_zip(evil, [])), "a member compressed with an unsupported method", "zip/unsupported-method")

# Keras and ONNX.
keras = io.BytesIO()
with zipfile.ZipFile(keras, "w") as z:
    z.writestr("metadata.json", json.dumps({"keras_version": "3.0"}))
    z.writestr("config.json", json.dumps({"class_name": "Sequential", "config": {"layers": [
        {"class_name": "Lambda", "config": {"function": {"class_name": "__lambda__", "config": {"code": "..."}}}}]}},
        indent=1))
bad("model.keras", keras.getvalue(), "Keras Lambda layer", "keras/lambda")


def pb_field(num, wire, payload):
    key = bytes([(num << 3) | wire])
    if wire == 2:
        n = len(payload)
        ln = b""
        while True:
            b7 = n & 0x7F
            n >>= 7
            ln += bytes([b7 | (0x80 if n else 0)])
            if not n:
                break
        return key + ln + payload
    return key + payload


entry = pb_field(1, 2, b"location") + pb_field(2, 2, b"../../../../etc/passwd")
tensor = pb_field(8, 2, b"w") + pb_field(13, 2, entry) + pb_field(14, 0, b"\x01")
graph = pb_field(5, 2, tensor) + pb_field(2, 2, b"g")
onnx = b"\x08\x08" + pb_field(2, 2, b"pytorch") + pb_field(7, 2, graph) + pb_field(8, 2, pb_field(2, 0, b"\x11"))
bad("model.onnx", onnx, "ONNX external data outside the model directory", "onnx/external-data")

# safetensors.
bad("st-huge-header.safetensors", struct.pack("<Q", 200_000_000) + b"{}" + bytes(8), "header length over the limit", "safetensors/header")
bad("st-header-past-eof.safetensors", struct.pack("<Q", 1000) + b'{"a":1}', "header past the end", "safetensors/header")
bad("st-bad-json.safetensors", struct.pack("<Q", 10) + b'{"a":     ' + bytes(4), "invalid JSON", "safetensors/header")
dup = b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
bad("st-duplicate.safetensors", struct.pack("<Q", len(dup)) + dup + bytes(4), "duplicate keys", "safetensors/duplicate-key")
bad("st-metadata.safetensors", safetensors([("a", "F32", (1,), bytes(4))], {"n": 1}), "__metadata__ value not a string", "safetensors/metadata")
gap = b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}'
bad("st-gap.safetensors", struct.pack("<Q", len(gap)) + gap + bytes(8), "gap before a tensor", "safetensors/offsets")
ov = b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}'
bad("st-overlap.safetensors", struct.pack("<Q", len(ov)) + ov + bytes(8), "overlapping tensors", "safetensors/offsets")
sz = b'{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}'
bad("st-size.safetensors", struct.pack("<Q", len(sz)) + sz + bytes(8), "dtype x shape differs from the byte length", "safetensors/size")
of = b'{"a":{"dtype":"F32","shape":[4611686018427387904,8],"data_offsets":[0,8]}}'
bad("st-overflow.safetensors", struct.pack("<Q", len(of)) + of + bytes(8), "shape overflows", "safetensors/size")
bad("st-polyglot.safetensors", safetensors([("a", "F32", (2,), bytes(8))], tail=evil), "data does not end at EOF (polyglot)", "safetensors/trailing-data")
dt = b'{"a":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}}'
bad("st-dtype.safetensors", struct.pack("<Q", len(dt)) + dt + bytes(4), "unknown dtype", "safetensors/dtype")
bad("st-past-eof.safetensors", safetensors([("a", "F32", (4,), bytes(16))])[:-8], "tensor data past the end", "safetensors/offsets")

# GGUF.
bad("gguf-version.gguf", gguf(KVS, TENSORS, version=7), "unsupported version", "gguf/header")
bad("gguf-counts.gguf", gguf(KVS, TENSORS, counts=(1 << 40, 6)), "absurd counts", "gguf/header")
bad("gguf-string-past-eof.gguf", gguf([], [], raw_kv=[gguf_str("k") + struct.pack("<I", 8) + struct.pack("<Q", 1 << 50)]),
    "string length past the end", "gguf/bounds")
bad("gguf-nested-array.gguf", gguf([], [], raw_kv=[gguf_str("k") + struct.pack("<IIQ", 9, 9, 1) + struct.pack("<IQ", 4, 0)]),
    "nested arrays", "gguf/array")
bad("gguf-alignment.gguf", gguf([("general.alignment", 4, 24)], TENSORS, alignment=32), "alignment not a power of two", "gguf/alignment")
bad("gguf-dup-key.gguf", gguf(KVS + [("general.architecture", 8, "x")], TENSORS), "duplicate key", "gguf/key")
bad("gguf-empty-key.gguf", gguf(KVS + [("", 8, "x")], TENSORS), "empty key", "gguf/key")
bad("gguf-long-name.gguf", gguf(KVS, [("t" * 80, (32,), 0, None)]), "tensor name too long", "gguf/tensor")
bad("gguf-dims.gguf", gguf(KVS, [("t", (1, 1, 1, 1, 1), 0, None)]), "more than 4 dimensions", "gguf/tensor")
bad("gguf-offset.gguf", gguf(KVS, [("a", (64,), 0, None), ("b", (64,), 0, 7)]), "offset not the running aligned total", "gguf/offsets")
bad("gguf-past-eof.gguf", gguf(KVS, TENSORS)[:-64], "tensor data past the end", "gguf/offsets")
for i, tpl in enumerate([
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{% for c in ''.__class__.__mro__[1].__subclasses__() %}{{ c }}{% endfor %}",
    "{{ self._TemplateReference__context.joiner.__init__.__globals__ }}",
    "{{ ''['\\x5f\\x5fclass\\x5f\\x5f'] }}",
    "{{ lipsum['__glo' ~ 'bals__']['os'] }}",
]):
    bad(f"gguf-template-{i}.gguf", gguf(KVS[:-1] + [("tokenizer.chat_template", 8, tpl)], TENSORS),
        "chat template injection", "gguf/chat-template")

with open(os.path.join(OUT, "expect.json"), "w") as f:
    json.dump(EXPECT, f, indent=1)
print(f"{sum(e['verdict'] == 'benign' for e in EXPECT)} benign, "
      f"{sum(e['verdict'] == 'malicious' for e in EXPECT)} malicious samples in {OUT}")
