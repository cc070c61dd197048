"""Property-based fuzzing of every parser of outside input (issue #9): each must return a result or raise
InputError (exit 2), never another exception, within the time bound, whatever it is given.

Targets: mutated real configs (the shipped profiles' config.json: keys removed, added, set to wrong types,
NaN/Infinity, huge, negative, deeply nested) as dicts and as JSON text; GPU files (mutated shipped files,
YAML tags, alias bombs, non-mapping documents, binary, absurd values); GGUF files (a real file written with
gguf-py, truncated, with lying counts and lengths, flipped bytes); safetensors headers (lying header lengths
and data offsets, huge shapes, wrong dtypes); size and token strings. Budgets: tests/fuzz_settings.py
(KVCALC_FUZZ=long for the long run).
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterator
from typing import Any

import pytest
from fuzz_settings import Timer, budget, summary
from hypothesis import given
from hypothesis import strategies as st

from kvcalc.errors import InputError
from kvcalc.sources.profiles import data_dir, load_profile

# --- strategies shared by the targets --------------------------------------------------------------------


def _deep(depth: int) -> Any:
    value: Any = 1
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


HOSTILE_SCALARS: list[Any] = [
    math.nan, math.inf, -math.inf, 0, -1, -(2**63), 1e15, 1e300, 10**30, 2**63, 2**64 + 1, 1.5, 0.0, -0.5,
    "", "abc", "1e5", "NaN", None, True, False, [], {}, [1, 2, 3], {"a": 1}, ["x"] * 3,
]
hostile_values = st.one_of(
    st.sampled_from(HOSTILE_SCALARS),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.integers(min_value=1, max_value=300).map(_deep),
    st.lists(st.integers(min_value=-5, max_value=10**6), max_size=8),
)

#: Keys the mappers read: sizes, layer patterns, nested blocks.
SIZE_KEYS = [
    "model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
    "intermediate_size", "vocab_size", "max_position_embeddings", "sliding_window", "layer_types",
    "num_experts", "num_local_experts", "num_experts_per_tok", "moe_intermediate_size", "n_routed_experts",
    "kv_lora_rank", "q_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim", "rope_scaling",
    "partial_rotary_factor", "tie_word_embeddings", "torch_dtype", "quantization_config", "text_config",
    "mlp_only_layers", "decoder_sparse_step", "first_k_dense_replace", "sliding_window_pattern",
    "attention_chunk_size", "no_rope_layers", "moe_layers", "layers_block_type", "hybrid_override_pattern",
    "mamba_d_state", "mamba_expand", "mamba_dt_rank", "linear_num_value_heads", "n_embd", "n_layer",
]


def _profile_configs() -> list[dict[str, Any]]:
    return [load_profile(p)["config"] for p in sorted(data_dir("profiles").glob("*.yaml"))]


PROFILE_CONFIGS = _profile_configs()


@st.composite
def mutated_configs(draw: st.DrawFn) -> dict[str, Any]:
    """A shipped config with one to four keys removed, retyped or added (at the top or in text_config)."""
    config = json.loads(json.dumps(draw(st.sampled_from(PROFILE_CONFIGS))))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        target = config
        if isinstance(config.get("text_config"), dict) and draw(st.booleans()):
            target = config["text_config"]
        keys = sorted(target) or ["model_type"]
        key = draw(st.sampled_from(keys) | st.sampled_from(SIZE_KEYS) | st.text(min_size=1, max_size=8))
        if draw(st.integers(min_value=0, max_value=3)) == 0:
            target.pop(key, None)
        else:
            target[key] = draw(hostile_values)
    return config


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    print("\n" + summary())


# --- config.json -----------------------------------------------------------------------------------------


def _shape(config: dict[str, Any]) -> dict[str, Any]:
    """The fields that size a config's work, to name the slowest case in the summary."""
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
    return {k: text.get(k) for k in ("model_type", "num_hidden_layers", "hidden_size", "num_experts",
                                     "n_routed_experts", "vocab_size") if k in text}


@budget(6)
@given(config=mutated_configs())
def test_fuzz_config_mapping(config: dict[str, Any]) -> None:
    from kvcalc.report.inspect import inspect_model
    from kvcalc.sources.hf_config import model_from_config

    with Timer("config.json mapping (+ inspect)", _shape(config)) as case:
        try:
            model = model_from_config(config, model_id="fuzz", warn=lambda _: None)
            inspect_model(model, None)
            case.outcome = "mapped"
        except InputError:
            case.outcome = "InputError"


@budget(3)
@given(config=mutated_configs(), cut=st.integers(min_value=0, max_value=4000), junk=st.text(max_size=6))
def test_fuzz_config_text(tmp_path_factory: pytest.TempPathFactory, config: dict[str, Any], cut: int,
                          junk: str) -> None:
    from kvcalc.sources.resolve import read_config_file

    text = json.dumps(config, allow_nan=True)  # NaN, Infinity literals as Python's json writes them
    if cut < len(text) and junk:
        text = text[:cut] + junk + text[cut:]
    path = tmp_path_factory.getbasetemp() / "fuzz-config.json"
    path.write_text(text)
    with Timer("config.json text") as case:
        try:
            assert isinstance(read_config_file(path), dict)
            case.outcome = "parsed"
        except InputError:
            case.outcome = "InputError"


# --- GPU files -------------------------------------------------------------------------------------------

HARDWARE = sorted(data_dir("hardware").glob("*.yaml"))

_YAML_ATTACKS = [
    "name: !!python/object/apply:os.system ['true']\n",
    "!!python/object/new:dict {}\n",
    "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)),
    "- a\n- list\n", "42\n", "", "~\n", "memory_bytes: .nan\n", "memory_bytes: .inf\n", "{" * 5000,
    "a: " + "[" * 5000, "\t\x00\x01", "key: [unclosed\n",
]


@st.composite
def gpu_texts(draw: st.DrawFn) -> str | bytes:
    import yaml

    kind = draw(st.integers(min_value=0, max_value=5))
    if kind == 0:
        return draw(st.sampled_from(_YAML_ATTACKS))
    if kind == 1:
        return draw(st.binary(max_size=200))
    if kind == 2:
        return draw(st.text(max_size=200))
    data = yaml.safe_load(draw(st.sampled_from(HARDWARE)).read_text())
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        key = draw(st.sampled_from(sorted(data)) | st.sampled_from(["memory_bytes", "peak_flops", "price", "x"]))
        data[key] = draw(hostile_values | st.sampled_from([1e40, 10**40, -(10**12), {"bf16": math.nan}])
                         | st.integers(min_value=1, max_value=2**60))
    return str(yaml.safe_dump(data, allow_unicode=True))


@budget(4)
@given(text=gpu_texts())
def test_fuzz_gpu_file(tmp_path_factory: pytest.TempPathFactory, text: str | bytes) -> None:
    from kvcalc.sources.hardware import load_gpu_file

    path = tmp_path_factory.getbasetemp() / "fuzz-gpu.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
    with Timer("GPU .yaml file") as case:
        try:
            gpu = load_gpu_file(path)
            assert 0 < gpu.memory_bytes <= 2**60 and math.isfinite(gpu.memory_bandwidth_bytes_per_s)
            case.outcome = "loaded"
        except InputError:
            case.outcome = "InputError"


# --- GGUF ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real 2-layer llama GGUF written by gguf-py (metadata, tokenizer strings, F16/F32 tensors)."""
    gguf = pytest.importorskip("gguf")
    import numpy as np

    path = tmp_path_factory.mktemp("gguf") / "tiny.gguf"
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_block_count(2)
    writer.add_embedding_length(16)
    writer.add_feed_forward_length(32)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    writer.add_context_length(256)
    writer.add_token_list([f"t{i}" for i in range(32)])
    writer.add_float32("llama.rope.scaling.factor", 2.0)
    writer.add_string("llama.rope.scaling.type", "linear")
    writer.add_tensor("token_embd.weight", np.zeros((32, 16), dtype=np.float16))
    writer.add_tensor("output_norm.weight", np.ones(16, dtype=np.float32))
    for i in range(2):
        for name, shape in (("attn_q", (16, 16)), ("attn_k", (8, 16)), ("attn_v", (8, 16)),
                            ("attn_output", (16, 16)), ("ffn_gate", (32, 16)), ("ffn_up", (32, 16)),
                            ("ffn_down", (16, 32))):
            writer.add_tensor(f"blk.{i}.{name}.weight", np.zeros(shape, dtype=np.float16))
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(16, dtype=np.float32))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(16, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path.read_bytes()


_U64S = [0, 1, 2**31, 2**32 - 1, 2**40, 2**62, 2**63, 2**64 - 1]


@st.composite
def gguf_mutations(draw: st.DrawFn, size: int) -> list[tuple[str, int, int]]:
    ops = []
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        op = draw(st.sampled_from(["truncate", "u64", "u32", "byte", "counts"]))
        at = draw(st.integers(min_value=0, max_value=size - 1))
        value = draw(st.sampled_from(_U64S) | st.integers(min_value=0, max_value=2**64 - 1))
        ops.append((op, at, value))
    return ops


def _mutate(data: bytes, ops: list[tuple[str, int, int]]) -> bytes:
    out = bytearray(data)
    for op, at, value in ops:
        at = min(at, max(len(out) - 1, 0))
        if op == "truncate":
            del out[at:]
        elif op == "u64" and at + 8 <= len(out):
            out[at:at + 8] = struct.pack("<Q", value)
        elif op == "u32" and at + 4 <= len(out):
            out[at:at + 4] = struct.pack("<I", value & 0xFFFFFFFF)
        elif op == "byte" and out:
            out[at] = value & 0xFF
        elif op == "counts" and len(out) >= 24:  # tensor count (byte 8) or metadata count (byte 16)
            offset = 8 if value % 2 else 16
            out[offset:offset + 8] = struct.pack("<Q", value)
    return bytes(out)


@budget(4)
@given(data=st.data())
def test_fuzz_gguf(tmp_path_factory: pytest.TempPathFactory, tiny_gguf: bytes, data: st.DataObject) -> None:
    from kvcalc.sources.gguf_file import model_from_gguf

    path = tmp_path_factory.getbasetemp() / "fuzz.gguf"
    path.write_bytes(_mutate(tiny_gguf, data.draw(gguf_mutations(len(tiny_gguf)))))
    with Timer("GGUF file") as case:
        try:
            model = model_from_gguf(path, warn=lambda _: None)
            assert model.exact_params_total is not None and model.exact_params_total >= 0
            case.outcome = "read"
        except InputError:
            case.outcome = "InputError"


# --- safetensors -----------------------------------------------------------------------------------------

_DTYPE_BYTES = {"F16": 2, "BF16": 2, "F32": 4, "I8": 1, "U8": 1, "F8_E4M3": 1, "I64": 8}


@st.composite
def safetensors_files(draw: st.DrawFn) -> bytes:
    """A consistent safetensors file (header, then exactly the data it describes), then at most one lie:
    the header length, a tensor's offsets, shape or dtype, a hostile field, or a truncation."""
    header: dict[str, Any] = {}
    offset = 0
    for i in range(draw(st.integers(min_value=0, max_value=4))):
        dtype = draw(st.sampled_from(sorted(_DTYPE_BYTES)))
        shape = draw(st.lists(st.integers(min_value=0, max_value=6), max_size=3))
        length = math.prod(shape) * _DTYPE_BYTES[dtype]
        header[f"t{i}"] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + length]}
        offset += length
    if draw(st.booleans()):
        header["__metadata__"] = {"format": "pt"}
    lie = draw(st.sampled_from(["none", "none", "header_length", "offsets", "shape", "dtype", "field", "truncate"]))
    names = [name for name in header if name != "__metadata__"]
    if names and lie in ("offsets", "shape", "dtype", "field"):
        entry = header[draw(st.sampled_from(names))]
        if lie == "offsets":
            entry["data_offsets"] = [draw(st.sampled_from([0, 5, 2**63, -1])),
                                     draw(st.sampled_from([0, 3, 2**64, 2**40]))]
        elif lie == "shape":
            entry["shape"] = draw(st.lists(st.sampled_from([2**31, 2**62, -1, 0, 3]), min_size=1, max_size=70))
        elif lie == "dtype":
            entry["dtype"] = draw(st.sampled_from(["F4", "bogus", "", "F64"]))
        else:
            entry[draw(st.sampled_from(["dtype", "shape", "data_offsets"]))] = draw(hostile_values)
    raw = json.dumps(header, allow_nan=True).encode()
    declared = len(raw)
    if lie == "header_length":
        declared = draw(st.sampled_from([len(raw) + 1, 0, 2**63, 10**8 + 1]) | st.integers(0, 2**64 - 1))
    data = struct.pack("<Q", declared) + raw + bytes(offset)
    if lie == "truncate":
        data = data[: draw(st.integers(min_value=0, max_value=max(len(data) - 1, 0)))]
    return data


@budget(4)
@given(blob=safetensors_files())
def test_fuzz_safetensors_header(tmp_path_factory: pytest.TempPathFactory, blob: bytes) -> None:
    from kvcalc.sources.checkpoint import read_safetensors_header

    path = tmp_path_factory.getbasetemp() / "fuzz.safetensors"
    path.write_bytes(blob)
    with Timer("safetensors header") as case:
        try:
            tensors = read_safetensors_header(path)
            for dtype, shape, (begin, end) in tensors:
                assert isinstance(dtype, str) and all(d >= 0 for d in shape) and 0 <= begin <= end
                if dtype in _DTYPE_BYTES:  # a byte-aligned tensor spans exactly numel x size bytes
                    assert end - begin == math.prod(shape) * _DTYPE_BYTES[dtype]
            case.outcome = "read"
        except InputError:
            case.outcome = "InputError"


# --- sizes and token counts ------------------------------------------------------------------------------

size_texts = st.one_of(
    st.text(max_size=30),
    st.from_regex(r"\s*-?[0-9]{1,30}(\.[0-9]{0,6})?\s*[kKmMgGtTpP]?[iI]?[bB]?\s*", fullmatch=True),
    st.sampled_from(["99999999999999999999GiB", "1e40", "nan", "inf", "", " ", "0", "64G", "80GB", "1" * 5000]),
    st.builds(lambda n, unit: f"{n}{unit}", st.integers(min_value=0, max_value=10**7),
              st.sampled_from(["", "k", "K", "m", "M", "G", "GB", "GiB", "MiB", "TB"])),
)


@budget(4)
@given(text=size_texts)
def test_fuzz_sizes_and_tokens(text: str) -> None:
    from kvcalc.units import parse_bytes, parse_tokens

    with Timer("--memory/--ram sizes and --context tokens") as case:
        outcomes = []
        for parse, bound in ((parse_bytes, 2**60), (parse_tokens, 2**30)):
            try:
                value = parse(text, "fuzz")
                assert isinstance(value, int) and 0 <= value <= bound
                outcomes.append("parsed")
            except InputError:
                outcomes.append("InputError")
        case.outcome = "bytes " + outcomes[0] + " / tokens " + outcomes[1]
