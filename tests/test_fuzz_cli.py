"""Property-based fuzzing of the CLI (issue #9): random command lines for every command in COMMANDS, each
run in-process and checked against the whole contract (`cli_contract.check_contract`: exit code, stderr
shape, clean stdout, one JSON document that validates against `kvcalc schema <command>`), within the time
bound. Options come from each command's own click parameters, so a command added later is fuzzed too: values
are drawn from per-option pools (valid and hostile) or, for options this file does not know, from pools by
type. MODEL is drawn from profiles, Hub ids (offline), missing paths and hostile files written here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest
from cli_contract import check_contract, examples, run_cli
from fuzz_settings import Timer, budget, summary
from hypothesis import given
from hypothesis import strategies as st

from kvcalc.cli.app import COMMANDS, click_command

INT_VALUES = ["0", "1", "2", "3", "4", "8", "-1", "65536", "2147483647", "2147483648", "99999999999999999999",
              "1e3", "nan", "", " ", "abc", "0x10"]
FLOAT_VALUES = ["0.9", "0.5", "1", "0", "1.5", "-0.1", "nan", "inf", "-inf", "1e309", "", "abc", "1e15", "1e16"]
TEXT_VALUES = ["", " ", "x" * 300, "x" * 5000, "../../etc/passwd", "/dev/null", "Ω模型", "-", "nan", "0", "-5",
               "99999999999999999999GiB", "\x00", "a,b,c", "--json"]
#: Valid and near-valid values per option name (options not listed draw from the pools by type).
OPTION_VALUES: dict[str, list[str]] = {
    "--gpu": ["h100", "a100", "rtx-4090", "m4-max-128", "mi300x", "l4", "t4", "h10", "gb200"],
    "--apple": ["m4-max-128", "m3-max-128", "h100"],
    "--kv-dtype": ["fp8", "q8_0", "q4_0", "bf16", "auto", "fp3", "f16", "int8"],
    "--quant": ["Q4_K_M", "Q8_0", "IQ4_XS", "gptq:4:128", "awq:4:128", "fp8:block", "nvfp4", "mxfp4", "nf4:dq",
                "gptq:999:1", "awq:0:0", "bogus"],
    "--formats": ["bf16,fp8", "Q4_K_M", "bf16,,", ",", "gptq:4:128,awq:4:128", "bogus,bf16"],
    "--keep-fp16": ["lm_head", "embed", "none", "attn", "experts", "bogus"],
    "--context": ["8192", "32k", "32K", "1M", "4096", "0", "-5", "1e9", "99999999999", "1073741825", "abc"],
    "--memory": ["40GiB", "80GB", "1", "0", "1e40", "-1G", "64G"],
    "--ram": ["64G", "16GiB", "1", "0", "1e40", "-1G", "2TB"],
    "--non-torch-memory": ["0.5GiB", "0", "1e40", "-1G", "80GiB"],
    "--activation-memory": ["2GiB", "0", "99999999999999999999GiB"],
    "--cuda-graph-memory": ["0.5GiB", "0", "1PiB"],
    "--engine": ["vllm", "sglang", "trtllm", "llamacpp", "magic"],
    "--engine-version": ["0.19.0", "0.21", "v0.21", "0.10", "99", "1e999", "0.9", "0.19.0.1.2"],
    "--revision": ["main", "x" * 300],
    "--ram-bandwidth": ["89.6", "120GB/s", "0", "-1", "nan", "1e309"],
    "--gpu-memory-utilization": ["0.9", "0.95", "1", "0", "1.5", "0.01"],
    "--mem-fraction-static": ["0.85", "0", "1.2"],
    "--input": ["2k", "512", "128K", "0", "-1"],
    "--output": ["256", "1", "4k", "0"],
    "--batch": ["1", "8", "64", "0", "100000"],
    "--concurrency": ["1", "16", "256", "0", "100000"],
    "--rps": ["1", "5", "0.1", "0", "1e6"],
    "--seq": ["8K", "1M", "512", "0"],
    "--ttft-slo": ["500ms", "2s", "0ms", "1"],
    "--tpot-slo": ["50ms", "10ms", "0"],
    "--requests": ["1200,350,8000", "1", "0", "1,,2"],
    "--method": ["eagle", "eagle3", "mtp", "ngram", "magic"],
    "--prefix-tokens": ["2000", "0", "1M"],
    "--requests-per-s": ["10", "0", "1e9"],
}


@cache
def _options(command: str) -> list[tuple[str, str, bool]]:
    """(option name, value kind, is a flag) for each option of `command`, from its click parameters."""
    params = click_command([command]).commands[command].params  # type: ignore[attr-defined]
    out = []
    for param in params:
        if not param.opts or not param.opts[0].startswith("--") or param.opts[0] == "--help":
            continue
        kind = {"_BoundedInt": "int", "_BoundedIntRange": "int", "_BoundedFloat": "float",
                "_BoundedFloatRange": "float"}.get(type(param.type).__name__, "text")
        out.append((param.opts[0], kind, bool(getattr(param, "is_flag", False))))
    return out


@cache
def _arguments(command: str) -> list[str]:
    params = click_command([command]).commands[command].params  # type: ignore[attr-defined]
    return [p.name for p in params if not p.opts[0].startswith("-")]


@pytest.fixture(scope="module")
def hostile_files(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Model and GPU files that broke kvcalc before (issue #9), written once."""
    folder = tmp_path_factory.mktemp("hostile")
    llama = {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2, "intermediate_size": 128, "vocab_size": 256}
    files = {
        "tiny.json": json.dumps(llama),
        "nan.json": json.dumps(llama).replace('"hidden_size": 64', '"hidden_size": NaN'),
        "heads.json": json.dumps({**llama, "num_attention_heads": 1e15}),
        "wide.json": json.dumps({**llama, "hidden_size": 2**24, "intermediate_size": 2**24, "vocab_size": 2**24,
                                 "num_attention_heads": 2**12, "num_key_value_heads": 2**12}),
        "deep.json": "[" * 50_000 + "]" * 50_000,
        "list.json": "[1, 2]",
        "bin.gguf": "GGUF\x03\x00\x00\x00" + "\xff" * 40,
        "gpu.yaml": (Path(__file__).resolve().parents[1] / "hardware" / "l4.yaml").read_text(),
        "gpu-huge.yaml": "name: X\nvendor: X\nkind: datacenter\nmemory_bytes: 1152921504606846976\n"
                         "usable_memory_bytes: 1152921504606846976\nmemory_bandwidth_bytes_per_s: 1\n"
                         "peak_flops: {bf16: 1.0e+18}\n",
        "bomb.yaml": "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
            f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)),
    }
    for name, text in files.items():
        (folder / name).write_text(text, encoding="latin-1" if name.endswith(".gguf") else "utf-8")
    (folder / "binary.yaml").write_bytes(bytes(range(256)) * 4)
    return [str(folder / name) for name in [*files, "binary.yaml"]] + [str(folder)]


MODELS = ["llama-3.1-8b", "qwen2.5-1.5b", "gpt2", "mistral-7b", "qwen3-30b-a3b", "deepseek-v2-lite",
          "gpt-oss-20b", "jamba-v0.1", "nemotron-3-nano-30b-a3b", "falcon-7b", "gemma-2-9b", "llama-70b",
          "deepseek-v3", "qwen3-next-80b-a3b", "llama-4-scout", "gemma-4-26b-a4b", "meta-llama/Llama-3.1-8B",
          "owner/not-cached", "owner/repo@main", "nonexistent.gguf", "/nonexistent/dir/", "llama-7o"]


def _value(draw: st.DrawFn, option: str, kind: str, files: list[str], *, valid: bool) -> str:
    """A value for `option`: from its known pool when `valid` (and it has one), else hostile: the pool of its
    type, the hostile files, or arbitrary text."""
    known = OPTION_VALUES.get(option, [])
    if valid and known:
        return str(draw(st.sampled_from(known)))
    pool = {"int": INT_VALUES, "float": FLOAT_VALUES}.get(kind, TEXT_VALUES)
    return str(draw(st.sampled_from(pool) | st.sampled_from(files) | st.text(max_size=12)))


def _set_option(argv: list[str], option: str, value: str | None) -> list[str]:
    """`argv` with `option` removed, then added with `value` (a flag when value is None)."""
    out, skip = [], False
    for i, token in enumerate(argv):
        if skip:
            skip = False
            continue
        if token == option:
            skip = i + 1 < len(argv) and not argv[i + 1].startswith("--")
            continue
        out.append(token)
    return out + ([option] if value is None else [option, value])


@st.composite
def random_lines(draw: st.DrawFn, files: list[str]) -> list[str]:
    """A command, its arguments and up to five options, every value from any pool."""
    command = draw(st.sampled_from(list(COMMANDS)))
    argv = [command]
    for name in _arguments(command):
        if name == "command":  # kvcalc schema COMMAND
            argv.append(draw(st.sampled_from([*COMMANDS, "nope", "schema"]) | st.sampled_from(TEXT_VALUES)))
        else:
            argv.append(draw(st.sampled_from(MODELS) | st.sampled_from(files) | st.sampled_from(TEXT_VALUES)
                             | st.text(max_size=20)))
    options = _options(command)
    for option, kind, is_flag in draw(st.lists(st.sampled_from(options), max_size=5, unique=True)) if options else []:
        argv += [option] if is_flag else [option, _value(draw, option, kind, files, valid=draw(st.booleans()))]
    return argv


@st.composite
def mutated_lines(draw: st.DrawFn, files: list[str]) -> list[str]:
    """A working example of a command (cli_contract.examples) with up to three changes: another MODEL, an
    option set to a valid or a hostile value, an option dropped; so most lines get past parsing."""
    command = draw(st.sampled_from([name for name in COMMANDS if examples(name)]))
    argv = [command, *draw(st.sampled_from(examples(command)))]
    options = _options(command)
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        change = draw(st.sampled_from(["model", "option", "option", "drop"]))
        if change == "model" and len(argv) > 1 and not argv[1].startswith("-"):
            argv[1] = draw(st.sampled_from(MODELS) | st.sampled_from(files))
        elif change == "option" and options:
            option, kind, is_flag = draw(st.sampled_from(options))
            valid = draw(st.integers(0, 3)) > 0
            argv = _set_option(argv, option, None if is_flag else _value(draw, option, kind, files, valid=valid))
        elif change == "drop":
            flags = [t for t in argv[2:] if t.startswith("--")]
            if flags:
                argv = _set_option(argv, draw(st.sampled_from(flags)), None)[:-1]
    return argv


@st.composite
def command_lines(draw: st.DrawFn, files: list[str]) -> list[str]:
    argv = draw(mutated_lines(files) if draw(st.integers(0, 2)) else random_lines(files))
    options = {option for option, _, _ in _options(argv[0])}
    if "--json" in options and "--json" not in argv and draw(st.integers(0, 2)):
        argv.append("--json")
    if "--explain" in options and "--explain" not in argv and draw(st.integers(0, 3)) == 0:
        argv.append("--explain")
    return argv


@pytest.fixture(scope="module", autouse=True)
def _setup() -> Iterator[None]:
    from huggingface_hub import constants

    offline, constants.HF_HUB_OFFLINE = constants.HF_HUB_OFFLINE, True  # a Hub id never reaches the network
    for name in COMMANDS:  # import what each command needs once (gguf, numpy, rich ...): time what inputs cost
        for args in examples(name)[:1]:
            run_cli([name, *args, "--json"])
    yield
    constants.HF_HUB_OFFLINE = offline
    print("\n" + summary())


@budget(8)
@given(data=st.data())
def test_fuzz_command_lines(hostile_files: list[str], data: st.DataObject) -> None:
    argv = data.draw(command_lines(hostile_files))
    with Timer(f"kvcalc {argv[0]}", argv) as case:
        result = run_cli(argv)
        check_contract(result)
        case.outcome = f"exit {result.code}"


@budget(1)
@given(argv=st.lists(st.sampled_from([*COMMANDS, "--json", "--help", "--version", "--tp", "4", "", "-x",
                                      "llama-70b", "--explain", "--gpu"]) | st.text(max_size=8), max_size=6))
def test_fuzz_raw_argv(argv: list[str]) -> None:
    with Timer("raw argv", argv) as case:
        result = run_cli(argv)
        check_contract(result)
        case.outcome = f"exit {result.code}"


def test_every_command_and_option_is_fuzzed() -> None:
    # Options come from each command's click parameters (so a new command is fuzzed without edits here);
    # every option kvcalc has today is an int, a float, text or a flag, each with a pool above.
    for command in COMMANDS:
        for option, kind, is_flag in _options(command):
            assert is_flag or kind in ("int", "float", "text"), (command, option)
    assert _options("fit") and any(option == "--tp" and kind == "int" for option, kind, _ in _options("fit"))
