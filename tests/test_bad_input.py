"""Bad input ends in one clear line: an RFKitError subclass naming the argument from the API, exit code 1
without "internal error" from the command line. Models returning a tuple or dict, devices this machine
lacks, running out of CPU memory, modules holding a lock, arguments of the wrong type or value, and a
checkpoint that holds code."""

from __future__ import annotations

import os
import threading

import pytest
import torch
import torch.nn as nn

import rfkit
from rfkit.errors import (
    ArgumentError,
    CheckpointError,
    DeviceError,
    DeviceMemoryError,
    ERFMethodError,
    InputSizeError,
    InputTooSmallError,
    NodeNotFoundError,
    RFKitError,
)
from rfkit.graph.productivity import input_resolution_range, productivity
from rfkit.models.spec import copy_module
from rfkit.models.weights import load_model
from rfkit.pipeline.devices import auto_batch_size, available_memory, bytes_per_image
from rfkit.report.collect import CollectError
from rfkit.verification.estimate import estimate_rf
from rfkit_cli.app import main

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

# Models for the API and, written to a file, for FILE.py:FACTORY specs on the command line.
MODELS = '''
import torch.nn as nn


class Pair(nn.Module):
    """stem: 3x3 conv (RF 3); deep: 3x3 conv on it (RF 5); returns both, as a tuple or a dict."""

    def __init__(self, as_dict=False):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.deep = nn.Conv2d(4, 4, 3, padding=1)
        self.as_dict = as_dict

    def forward(self, x):
        s = self.stem(x)
        d = self.deep(s)
        return {"deep": d, "stem": s} if self.as_dict else (d, s)


def pair():
    return Pair()


def pair_dict():
    return Pair(as_dict=True)


def plain():
    """Two 3x3 convs: RF 3 at "0", 5 at "2"."""
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1))


class Outer(nn.Module):
    """A Pair inside: the module "pair" returns a tuple; the model one tensor."""

    def __init__(self):
        super().__init__()
        self.pair = Pair()

    def forward(self, x):
        d, s = self.pair(x)
        return d + s


def outer():
    return Outer()


def classifier():
    conv = nn.Conv2d(3, 4, 3, padding=1)
    return nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
'''
_ns: dict = {}
exec(MODELS, _ns)  # noqa: S102 - the models above, as a module the tests can call
Pair, plain, Outer, classifier = _ns["Pair"], _ns["plain"], _ns["Outer"], _ns["classifier"]

CPU_OOM = (
    "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: you tried to "
    "allocate 12884901888 bytes. Error code 12 (Cannot allocate memory)"
)


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "models.py"
    path.write_text(MODELS)
    return path


def cli(capsys, *args) -> tuple[int, str]:
    """Exit code and stdout + stderr of ``rfkit ARGS`` run as the console script runs it."""
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return exc.value.code, out.out + out.err


def assert_one_line_error(code: int, text: str, *names: str) -> None:
    """Exit 1, no internal error, one ``error:`` line naming each of ``names``."""
    assert code == 1, text
    assert "internal error" not in text and "Traceback" not in text
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and len(text.strip().splitlines()) == 1, text
    for name in names:
        assert name in errors[0], text


def assert_one_line(e: BaseException, *names: str) -> None:
    msg = str(e)
    assert msg and "\n" not in msg, msg
    for name in names:
        assert name in msg, msg


# --- models returning a tuple or a dict -------------------------------------------------------------------
@pytest.mark.parametrize("as_dict", [False, True], ids=["tuple", "dict"])
def test_verify_default_layers_of_a_tuple_or_dict_model_end_at_the_final_feature_map(as_dict):
    # max_layers=1 keeps the first stage ("stem"); the final feature map "deep" is added as the output
    # would be for a model returning one tensor
    report = rfkit.verify(Pair(as_dict), input_size=16, max_layers=1)
    centre = {c.layer: c for c in report.checks if c.kind == "centre"}
    assert list(centre) == ["stem", "deep"]
    assert centre["deep"].analytic == ((6, 10), (6, 10)) and centre["deep"].status == "pass"  # RF 5 around 8
    assert report.ok
    assert [(e.layer, e.size) for e in report.estimates] == [("stem", (3, 3)), ("deep", (5, 5))]


@pytest.mark.parametrize("as_dict", [False, True], ids=["tuple", "dict"])
def test_estimate_rf_default_layers_of_a_tuple_or_dict_model(as_dict):
    est = estimate_rf(Pair(as_dict), input_size=16)
    assert [(e.layer, e.size, e.stride, e.center) for e in est] == [
        ("stem", (3, 3), (1, 1), (0, 0)),
        ("deep", (5, 5), (1, 1), (0, 0)),
    ]


@pytest.mark.parametrize("factory", ["pair", "pair_dict"])
def test_cli_verify_of_a_tuple_or_dict_model(capsys, model_file, factory):
    code, text = cli(capsys, "verify", f"{model_file}:{factory}", "--trust", "--input-size", "16")
    assert code == 0, text
    assert "6/6 units agree" in text and "2/2 judged estimates agree" in text


# --- devices --------------------------------------------------------------------------------------------
def _missing_devices() -> list[str]:
    """Devices that do not exist here: cuda:99 everywhere, cuda and cuda:9 without CUDA, mps without MPS."""
    out = ["cuda:99"]
    if not torch.cuda.is_available():
        out += ["cuda", "cuda:9"]
    if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        out.append("mps")
    return out


@pytest.mark.parametrize("device", _missing_devices())
def test_missing_device_is_one_line_naming_it_and_what_is_available(device):
    with pytest.raises(DeviceError) as e:
        rfkit.erf(plain(), images="noise", num_images=1, input_size=16, device=device)
    assert_one_line(e.value, f"device {device!r} is not available", "available: cpu")


def test_unknown_device_name():
    with pytest.raises(DeviceError) as e:
        rfkit.erf(plain(), images="noise", num_images=1, input_size=16, device="gpu7")
    assert_one_line(e.value, "unknown device 'gpu7'")


def test_cli_missing_device(capsys, model_file):
    code, text = cli(
        capsys,
        "erf",
        f"{model_file}:plain",
        "--trust",
        "--device",
        "cuda:99",
        "-n",
        "1",
        "--images",
        "noise",
        "--input-size",
        "16",
        "-q",
    )
    assert_one_line_error(code, text, "cuda:99", "available: cpu")


# --- running out of memory ------------------------------------------------------------------------------
@pytest.fixture(params=[RuntimeError(CPU_OOM), MemoryError()], ids=["allocator", "MemoryError"])
def cpu_oom(request, monkeypatch):
    """Every Conv2d forward on real (not meta) tensors fails as torch does when CPU memory runs out."""
    original = nn.Conv2d.forward

    def forward(self, x):
        if x.device.type != "meta":
            raise request.param
        return original(self, x)

    monkeypatch.setattr(nn.Conv2d, "forward", forward)


def test_cpu_out_of_memory_names_the_batch_size(cpu_oom):
    net = plain().train()
    with pytest.raises(DeviceMemoryError) as e:
        rfkit.erf(net, images="noise", num_images=4, batch_size=2, input_size=16, device="cpu")
    assert_one_line(e.value, "cpu out of memory at batch size 2", "--batch-size")
    assert net.training and all(p.requires_grad for p in net.parameters())  # left as found


def test_cli_cpu_out_of_memory(capsys, model_file, cpu_oom):
    code, text = cli(
        capsys,
        "erf",
        f"{model_file}:plain",
        "--trust",
        "--device",
        "cpu",
        "-n",
        "2",
        "--images",
        "noise",
        "--input-size",
        "16",
        "--batch-size",
        "2",
        "-q",
    )
    assert_one_line_error(code, text, "out of memory", "--batch-size")


def test_cli_out_of_memory_outside_the_erf_is_one_line_too(capsys, model_file, cpu_oom):
    code, text = cli(capsys, "verify", f"{model_file}:plain", "--trust", "--input-size", "16")
    assert_one_line_error(code, text, "out of memory", "--batch-size")


def test_bytes_per_image_counts_every_activation():
    g = rfkit.trace(plain(), input_size=8)
    # input 3·64, conv 4·64, relu 4·64, conv 4·64 elements; 12 bytes each (value, gradient, saved copy)
    assert bytes_per_image(g) == (3 + 4 + 4 + 4) * 64 * 12 == 11520


@pytest.mark.parametrize(
    "available, expected",
    [
        (10**12, 8),  # plenty: the CPU default
        (60_000, 2),  # half of it, 30000 bytes, holds 2 images of 11520
        (30_000, 1),  # 15000 bytes: 1 image
        (100, 1),  # not even one: still 1 (an OOM then gives the hint)
    ],
)
def test_auto_cpu_batch_fits_half_the_available_memory(available, expected):
    g = rfkit.trace(plain(), input_size=8)
    assert auto_batch_size(g, torch.device("cpu"), available=available) == expected


def test_auto_cpu_batch_at_a_large_input():
    g = rfkit.trace(plain(), input_size=512)
    # 15 elements per pixel × 512² pixels × 12 bytes = 47185920 bytes per image; 10**8 / 47185920 -> 2
    assert auto_batch_size(g, torch.device("cpu"), available=200_000_000) == 2


def test_auto_batch_elsewhere_and_unknown_memory(monkeypatch):
    g = rfkit.trace(plain(), input_size=8)
    assert auto_batch_size(g, torch.device("cuda"), available=100) == 1  # a GPU's free memory counts too
    assert auto_batch_size(g, torch.device("mps")) == 16  # MPS: free memory unknown, the default
    monkeypatch.setattr("rfkit.pipeline.devices.available_memory", lambda: None)
    assert auto_batch_size(g, torch.device("cpu")) == 8


def test_erf_uses_the_auto_batch(monkeypatch):
    # at 16 px: 15 · 256 · 12 = 46080 bytes per image; 100000 bytes available -> half is 50000 -> 1 image
    monkeypatch.setattr("rfkit.pipeline.devices.available_memory", lambda: 100_000)
    batches = []
    rfkit.erf(plain(), layers="2", images="noise", num_images=3, input_size=16, device="cpu", progress=batches.append)
    assert batches == [1, 1, 1]


@pytest.mark.skipif(not os.path.exists("/proc/meminfo"), reason="Linux only")
def test_available_memory_reads_meminfo():
    with open("/proc/meminfo") as f:
        total = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemTotal:"))
    assert 0 < available_memory() <= total


# --- modules that cannot be deep-copied -----------------------------------------------------------------
def _with_lock():
    net = plain().train()
    net[0].lock = threading.Lock()
    net[2].state = {"lock": threading.RLock(), "calls": 0}
    return net


def _checkpoint_run(net, tmp_path):
    path = tmp_path / "w.pth"
    want = plain().state_dict()
    torch.save(want, path)
    live, info = load_model(net, str(path))
    assert info.kind == "checkpoint" and torch.equal(live[0].weight, want["0.weight"])
    assert live[0].lock is net[0].lock  # shared, not copied


RUNS = {
    "trace": lambda net, _: rfkit.trace(net, input_size=16)["2"].size == (5, 5),
    "verify": lambda net, _: rfkit.verify(net, input_size=16).ok,
    "estimate_rf": lambda net, _: estimate_rf(net, layers="2", input_size=16)[0].size == (5, 5),
    "erf": lambda net, _: (
        rfkit.erf(net, layers="2", images="noise", num_images=2, input_size=16, device="cpu").maps["2"].shape
        == (16, 16)
    ),
    "checkpoint": lambda net, tmp: _checkpoint_run(net, tmp) is None,
}


@pytest.mark.parametrize("run", list(RUNS))
def test_module_holding_a_lock_works_and_is_left_as_found(run, tmp_path):
    net = _with_lock()
    lock, state = net[0].lock, net[2].state
    before = {k: v.clone() for k, v in net.state_dict().items()}
    assert RUNS[run](net, tmp_path)
    assert net[0].lock is lock and not lock.locked() and net[2].state is state
    assert net.training and all(p.requires_grad and p.device.type == "cpu" for p in net.parameters())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_copy_module_shares_only_what_cannot_be_copied():
    net = _with_lock()
    net[0].note = {"kept": [1, 2]}
    twin = copy_module(net)
    assert twin[0].lock is net[0].lock and twin[2].state is net[2].state
    assert twin[0].note == net[0].note and twin[0].note is not net[0].note  # copyable: copied
    assert twin[0].weight is not net[0].weight and torch.equal(twin[0].weight, net[0].weight)


# --- arguments of the wrong type or value ---------------------------------------------------------------
def _erf(**kw):
    return lambda: rfkit.erf(plain(), **{"images": "noise", "num_images": 1, "input_size": 16, "device": "cpu", **kw})


def _graph():
    return rfkit.trace(plain(), input_size=16)


BAD_ARGUMENTS = {
    "erf threads=0": (_erf(threads=0), ArgumentError, "threads"),
    "erf threads=1.5": (_erf(threads=1.5), ArgumentError, "threads"),
    "erf batch_size=0": (_erf(batch_size=0), ArgumentError, "batch_size"),
    "erf num_images=0": (_erf(num_images=0), ArgumentError, "num_images"),
    "erf num_images=-3": (_erf(num_images=-3), ArgumentError, "num_images"),
    "erf seed='a'": (_erf(seed="a"), ArgumentError, "seed"),
    "erf seed=-1": (_erf(seed=-1), ArgumentError, "seed"),
    "erf input_size=16.0": (_erf(input_size=16.0), InputSizeError, "input_size"),
    "erf input_size='x'": (_erf(input_size="x"), InputSizeError, "input_size"),
    "erf layers=123": (_erf(layers=123), ArgumentError, "layers"),
    "erf unit=5": (_erf(layers="2", unit=5), ArgumentError, "unit"),
    "erf unit=(1, 2, 3)": (_erf(layers="2", unit=(1, 2, 3)), ArgumentError, "unit"),
    "erf unit=(-1, 2)": (_erf(layers="2", unit=(-1, 2)), ArgumentError, "unit"),
    "erf unit for another layer": (
        _erf(layers=["0", "2"], unit={"0": (1, 1), "nope": (1, 1)}),
        ArgumentError,
        "'nope'",
    ),
    "erf model=42": (lambda: rfkit.erf(42), ArgumentError, "model"),
    "verify max_layers=0": (lambda: rfkit.verify(plain(), input_size=16, max_layers=0), ArgumentError, "max_layers"),
    "verify layers=123": (lambda: rfkit.verify(plain(), layers=123, input_size=16), ArgumentError, "layers"),
    "verify seed=1.5": (lambda: rfkit.verify(plain(), input_size=16, seed=1.5), ArgumentError, "seed"),
    "verify estimate_max_size=0": (
        lambda: rfkit.verify(plain(), input_size=16, estimate_max_size=0),
        ArgumentError,
        "estimate_max_size",
    ),
    "verify input_size='x'": (lambda: rfkit.verify(plain(), input_size="x"), InputSizeError, "input_size"),
    "estimate_rf max_size=0": (lambda: estimate_rf(plain(), input_size=16, max_size=0), ArgumentError, "max_size"),
    "estimate_rf layers=123": (lambda: estimate_rf(plain(), layers=123, input_size=16), ArgumentError, "layers"),
    "estimate_rf seed=None": (lambda: estimate_rf(plain(), input_size=16, seed=None), ArgumentError, "seed"),
    "estimate_rf model=42": (lambda: estimate_rf(42), ArgumentError, "model"),
    "trace input_size=16.0": (lambda: rfkit.trace(plain(), input_size=16.0), InputSizeError, "input_size"),
    "trace input_size='x'": (lambda: rfkit.trace(plain(), input_size="x"), InputSizeError, "input_size"),
    "trace input_size=(16, 0)": (lambda: rfkit.trace(plain(), input_size=(16, 0)), InputTooSmallError, "input_size"),
    "trace in_chans=0": (lambda: rfkit.trace(plain(), input_size=16, in_chans=0), ArgumentError, "in_chans"),
    "trace model=42": (lambda: rfkit.trace(42), ArgumentError, "model"),
    "productivity 'abc'": (lambda: productivity(_graph(), "abc"), InputSizeError, "input_size"),
    "productivity 16.5": (lambda: productivity(_graph(), 16.5), InputSizeError, "input_size"),
    "productivity (8, 8, 8)": (lambda: productivity(_graph(), (8, 8, 8)), InputSizeError, "3 axes"),
    "productivity of no graph": (lambda: productivity("resnet18", 32), ArgumentError, "RFGraph"),
    "productivity path": (lambda: productivity(_graph(), 16, path="median"), ArgumentError, "path"),
    "input_resolution_range of no graph": (lambda: input_resolution_range(None), ArgumentError, "RFGraph"),
    "collect dirs=42": (lambda: rfkit.collect(42), ArgumentError, "dirs"),
    "collect of no folder": (lambda: rfkit.collect([]), CollectError, "no report to collect"),
    # bounds (issue 19): what torch's generators take, sane amounts of work
    "erf seed=2**64": (_erf(seed=2**64), ArgumentError, "seed must be an int from 0 to 18446744073709551615"),
    "verify seed=2**64": (lambda: rfkit.verify(plain(), input_size=16, seed=2**64), ArgumentError, "seed"),
    "estimate_rf seed=2**64": (lambda: estimate_rf(plain(), input_size=16, seed=2**64), ArgumentError, "seed"),
    "erf bootstrap=100001": (_erf(bootstrap=100_001), ArgumentError, "bootstrap must be an int from 0 to 100000"),
    "erf batch_size=65537": (_erf(batch_size=65_537), ArgumentError, "batch_size must be an int from 1 to 65536"),
    "erf threads=1025": (_erf(threads=1025), ArgumentError, "threads must be an int from 1 to 1024"),
    "erf workers=10**8": (_erf(workers=10**8), ArgumentError, "workers must be an int from 0 to 1024"),
    "erf input_size=10**20": (_erf(input_size=10**20), InputSizeError, "at most 2**40 pixels"),
    "trace input_size=(2**20, 2**20 + 1)": (
        lambda: rfkit.trace(plain(), input_size=(2**20, 2**20 + 1)),
        InputSizeError,
        "too large",
    ),
    "erf method='x'": (_erf(method="x"), ERFMethodError, "unknown ERF method 'x'; use one of replknet, openerf"),
    "erf layers='pair' of a module returning a tuple": (
        lambda: rfkit.erf(Outer(), layers="pair", images="noise", num_images=1, input_size=16, device="cpu"),
        NodeNotFoundError,
        "pair returns a tuple of 2 tensors, not one tensor: name an element instead, pair[0] or pair[1]",
    ),
    **{
        f"attribute {name}={value}": (
            lambda name=name, value=value: rfkit.attribute(
                classifier(), images="noise", num_images=1, input_size=16, device="cpu", **{name: value}
            ),
            ArgumentError,
            f"{name} must be an int from 1 to 10000",
        )
        for name, value in (("steps", 10**8), ("samples", 10_001), ("faithfulness_steps", 10**6))
    },
}


@pytest.mark.parametrize("case", list(BAD_ARGUMENTS))
def test_bad_argument_is_one_line_naming_it(case):
    call, cls, name = BAD_ARGUMENTS[case]
    with pytest.raises(RFKitError) as e:
        call()
    assert type(e.value) is cls
    assert_one_line(e.value, name)


def test_argument_error_is_also_a_value_and_type_error():
    with pytest.raises(TypeError):
        estimate_rf(42)
    with pytest.raises(ValueError):
        rfkit.verify(plain(), input_size=16, max_layers=0)


@pytest.mark.parametrize("command", ["graph", "erf"])
@pytest.mark.parametrize("size", ["1 2 3", "16.5", "x"])
def test_cli_bad_input_size(capsys, model_file, command, size):
    code, text = cli(capsys, command, f"{model_file}:plain", "--trust", "--input-size", size, "-q")
    assert_one_line_error(code, text, "--input-size", repr(size))


def test_cli_estimate_max_size_zero(capsys, model_file):
    code, text = cli(
        capsys, "verify", f"{model_file}:plain", "--trust", "--input-size", "16", "--estimate-max-size", "0"
    )
    assert_one_line_error(code, text, "estimate_max_size", "got 0")


# --- a checkpoint that holds code -----------------------------------------------------------------------
class _Payload:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return os.system, (f"echo pwned > {self.target}",)


@pytest.fixture
def evil_checkpoint(tmp_path):
    target = tmp_path / "PWNED"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": plain().state_dict(), "extra": _Payload(target)}, path)
    return path, target


def test_checkpoint_holding_code_is_refused_in_one_line(evil_checkpoint):
    path, target = evil_checkpoint
    with pytest.raises(CheckpointError) as e:
        load_model(plain(), str(path))
    assert not target.exists()
    msg = str(e.value)
    assert_one_line(e.value, "holds code, refused", f"{os.system.__module__}.system")
    assert os.system.__module__ in ("posix", "nt") and "weights_only" not in msg


def test_cli_checkpoint_holding_code(capsys, model_file, evil_checkpoint):
    path, target = evil_checkpoint
    code, text = cli(
        capsys,
        "erf",
        f"{model_file}:plain",
        "--trust",
        "--weights",
        path,
        "--device",
        "cpu",
        "-n",
        "1",
        "--images",
        "noise",
        "--input-size",
        "16",
        "-q",
    )
    assert not target.exists()
    assert_one_line_error(code, text, "holds code, refused", f"{os.system.__module__}.system")
    assert "weights_only" not in text


# --- a launcher's environment left over (torchrun's variables without torchrun) --------------------------
def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


STALE_ENVIRONMENTS = {
    # rank 0 of 2 waits for a peer that never comes; rank 1 for a rank 0 that never listens
    "no peer": ({"RANK": "0", "LOCAL_RANK": "0"}, "rank 0 of 2 could not join the others"),
    "no rank 0": ({"RANK": "1", "LOCAL_RANK": "1"}, "rank 1 of 2 could not join the others"),
    "RANK >= WORLD_SIZE": ({"RANK": "2", "LOCAL_RANK": "0"}, "RANK='2' must be a whole number from 0 to 1"),
    "bad address": (
        {"RANK": "0", "LOCAL_RANK": "0", "MASTER_ADDR": "no-such-host.invalid"},
        "MASTER_ADDR='no-such-host.invalid' is not a host name",
    ),
    "WORLD_SIZE=abc": ({"WORLD_SIZE": "abc"}, "WORLD_SIZE='abc' must be a whole number >= 1"),
    "LOCAL_RANK=x": ({"RANK": "1", "LOCAL_RANK": "x"}, "LOCAL_RANK='x' must be a whole number"),
    "MASTER_PORT=70000": ({"RANK": "0", "LOCAL_RANK": "0", "MASTER_PORT": "70000"}, "MASTER_PORT='70000'"),
    "timeout=soon": (
        {"RANK": "0", "LOCAL_RANK": "0", "RFKIT_DISTRIBUTED_TIMEOUT": "soon"},
        "RFKIT_DISTRIBUTED_TIMEOUT",
    ),
}


@pytest.mark.parametrize("case", list(STALE_ENVIRONMENTS))
def test_cli_stale_launcher_environment_ends_quickly_in_one_line(capsys, monkeypatch, model_file, case):
    import time

    extra, says = STALE_ENVIRONMENTS[case]
    env = {"WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}
    for name, value in {**env, "RFKIT_DISTRIBUTED_TIMEOUT": "1", **extra}.items():
        monkeypatch.setenv(name, value)
    start = time.monotonic()
    code, text = cli(
        capsys, "erf", f"{model_file}:plain", "--trust", "-n", "1", "--images", "noise", "--input-size", "16", "-q"
    )
    assert time.monotonic() - start < 20  # a 1 s wait, not torch's 30 minutes (main waited > 300 s)
    assert_one_line_error(code, text, says, "seconds" if case.startswith("timeout") else "unset WORLD_SIZE")
    assert "frame #" not in text  # torch's native log of each connection retry is held back


# --- bounds from the command line (issue 19) --------------------------------------------------------------
ERF = ["-n", "2", "--images", "noise", "--input-size", "16", "-q"]
CLI_BOUNDS = {
    "--seed 2**64": (["erf", "plain", *ERF, "--seed", "18446744073709551616"], "seed must be an int from 0 to"),
    "--input-size 10**20": (
        ["erf", "plain", "-n", "1", "--images", "noise", "-q", "--input-size", "99999999999999999999"],
        "at most 2**40 pixels",
    ),
    "graph --input-size 10**20": (["graph", "plain", "--input-size", "99999999999999999999"], "at most 2**40"),
    "--bootstrap 10**8": (["erf", "plain", *ERF, "--bootstrap", "100000000"], "bootstrap must be an int from 0"),
    "--workers 10**8": (["erf", "plain", *ERF, "--workers", "100000000"], "workers must be an int from 0 to 1024"),
    "--batch-size 10**8": (["erf", "plain", *ERF, "--batch-size", "100000000"], "batch_size must be an int"),
    "attribute --steps 10**8": (
        ["attribute", "classifier", *ERF, "--methods", "ig", "--steps", "100000000"],
        "steps must be an int from 1 to 10000",
    ),
    "attribute --samples 10**8": (
        ["attribute", "classifier", *ERF, "--methods", "smoothgrad", "--samples", "100000000"],
        "samples must be an int from 1 to 10000",
    ),
    "attribute --normalise row": (
        ["attribute", "classifier", *ERF, "--normalise", "row"],
        "normalise 'row': use image (each map by its own scale) or column",
    ),
    "attribute --style poster": (["attribute", "classifier", *ERF, "--style", "poster"], "style 'poster'"),
    "-l pair returning a tuple": (["erf", "outer", *ERF, "-l", "pair"], "pair returns a tuple of 2 tensors"),
}


@pytest.mark.parametrize("case", list(CLI_BOUNDS))
def test_cli_bound_is_one_line(capsys, model_file, tmp_path, case):
    args, says = CLI_BOUNDS[case]
    args = [args[0], f"{model_file}:{args[1]}", "--trust", *args[2:]]
    code, text = cli(capsys, *args, *(["-o", tmp_path / "out"] if args[0] != "graph" else []))
    assert_one_line_error(code, text, says)
    assert "frame #" not in text and not list(tmp_path.glob("out/*"))  # refused before anything was written


def test_seed_bound_is_what_torch_and_numpy_take():
    import numpy as np

    from rfkit.validate import MAX_SEED

    torch.manual_seed(MAX_SEED)
    np.random.default_rng([MAX_SEED, 1])
    with pytest.raises((RuntimeError, ValueError, OverflowError)):
        torch.manual_seed(MAX_SEED + 1)
    assert rfkit.erf(plain(), layers="2", images="noise", num_images=1, input_size=16, device="cpu", seed=MAX_SEED)


def test_one_image_that_cannot_fit_is_refused_in_one_line(monkeypatch, capsys, model_file, tmp_path):
    # plain at 16 px: (3 + 4 + 4 + 4) · 256 elements × 12 bytes = 46080 bytes = 45.0 KiB per image
    monkeypatch.setattr("rfkit.pipeline.devices.available_memory", lambda: 40_000)
    with pytest.raises(DeviceMemoryError) as e:
        rfkit.erf(plain(), images="noise", num_images=1, input_size=16, device="cpu")
    assert_one_line(e.value, "one 16x16 input needs about 45.0 KiB", "39.1 KiB free", "smaller --input-size")
    monkeypatch.setattr("rfkit.pipeline.devices.available_memory", lambda: 46_080)  # exactly enough: runs
    assert rfkit.erf(plain(), layers="2", images="noise", num_images=1, input_size=16, device="cpu")
    monkeypatch.setattr("rfkit.pipeline.devices.available_memory", lambda: 1000)
    for command, model in (("erf", "plain"), ("attribute", "classifier")):
        code, text = cli(capsys, command, f"{model_file}:{model}", "--trust", *ERF, "-o", tmp_path / command)
        assert_one_line_error(code, text, "out of memory: one 16x16 input needs about", "smaller --input-size")
        assert "no readable image" not in text


def test_out_of_memory_while_decoding_says_so(monkeypatch, capsys, model_file, tmp_path):
    from PIL import Image

    Image.new("RGB", (16, 16)).save(tmp_path / "a.png")

    def read_image(path, mode="RGB"):
        raise MemoryError("Unable to allocate 40.2 GiB for an array with shape (3, 60000, 60000)")

    monkeypatch.setattr("rfkit.pipeline.images.read_image", read_image)
    with pytest.raises(MemoryError):
        rfkit.erf(plain(), images=tmp_path, num_images=1, input_size=16, device="cpu")
    code, text = cli(
        capsys, "erf", f"{model_file}:plain", "--trust", "--images", tmp_path, "-n", "1", "--input-size", "16", "-q"
    )
    assert_one_line_error(code, text, "out of memory")
    assert "no readable image" not in text


@pytest.mark.parametrize("where", ["/proc/x.png", "folder"])
def test_cli_figure_to_an_unwritable_or_odd_destination(capsys, where, tmp_path):
    import shutil
    from pathlib import Path

    analysis = Path(__file__).parent / "golden"
    reports = tmp_path / "reports"
    rfkit.analyze(
        str(analysis / "tiny_net.py") + ":build", layers=["2"], input_size=16, images="noise", num_images=1,
        device="cpu", out=reports, trust=True,
    )  # fmt: skip
    out = where if where.startswith("/") else tmp_path
    code, text = cli(capsys, "figure", reports, "-o", out)
    says = "cannot write /proc/x.png" if where.startswith("/") else "is a folder: give the figure's file name"
    assert_one_line_error(code, text, says)
    assert not Path("/proc/x.png").exists() and not (tmp_path.parent / f"{tmp_path.name}.png").exists()
    shutil.rmtree(reports)


# --- control characters in names reach no terminal ------------------------------------------------------
def test_terminal_text_escapes_every_control_character():
    from rfkit_cli.console import terminal_text

    shown = terminal_text("a\x1b[2J\x1b]0;title\x07b\x9b31mc\x7fd\u202ee\nf\tg\udcff")
    assert shown == "a\\x1b[2J\\x1b]0;title\\x07b\\x9b31mc\\x7fd\\u202ee f g?"
    assert all(c.isprintable() for c in shown)


def test_cli_error_naming_a_file_with_escape_sequences(capsys, model_file, tmp_path):
    name = "a\x1b[2J\x1b]0;pwned\x07.png"  # clears the screen, sets the window title
    (tmp_path / name).write_bytes(b"not an image")
    code, text = cli(capsys, "erf", f"{model_file}:plain", "--trust", "--images", tmp_path / name, "-n", "1", "-q")
    assert_one_line_error(code, text, "no readable image", "a\\x1b[2J\\x1b]0;pwned\\x07.png")
    assert not any(c in text for c in "\x1b\x07\x9b\x7f")


def test_cli_warning_naming_a_file_with_escape_sequences(capsys, model_file, tmp_path):
    from PIL import Image

    Image.new("RGB", (16, 16), (200, 10, 10)).save(tmp_path / "good.png")
    (tmp_path / "b\x1b[2J\x9b\x7f.png").write_bytes(b"not an image")
    code, text = cli(
        capsys, "erf", f"{model_file}:plain", "--trust", "--images", tmp_path, "-n", "1", "--input-size", "16", "-q",
        "-o", tmp_path / "out",
    )  # fmt: skip
    assert code == 0, text
    warning = next(line for line in text.splitlines() if "b\\x1b[2J" in line)
    assert warning.startswith("warning:") and "b\\x1b[2J\\x9b\\x7f.png" in warning
    assert not any(c in text for c in "\x1b\x9b\x7f")


def test_tables_and_lines_render_names_with_escape_sequences_as_text():
    """Every string the CLI's consoles render (table cells, titles, printed lines, markup or not) is made safe
    for a terminal; a console writing to a file emits no control character at all."""
    import io

    from rich.table import Table

    from rfkit_cli.console import SafeConsole

    buffer = io.StringIO()
    console = SafeConsole(file=buffer, width=200, force_terminal=False)
    table = Table(title="layers of a\x1b]0;pwned\x07")
    table.add_column("layer")
    table.add_row("blocks.\x1b[2J0")
    console.print(table)
    console.print("[yellow]note[/]: b\x9b31m\x7fc", "two\nlines")
    console.print("raw \x1b[2J", markup=False)
    text = buffer.getvalue()
    assert not any(c in text for c in "\x1b\x07\x9b\x7f")
    for shown in ("a\\x1b]0;pwned\\x07", "blocks.\\x1b[2J0", "note: b\\x9b31m\\x7fc", "two\nlines", "raw \\x1b[2J"):
        assert shown in text, shown


def test_cli_table_of_a_layer_named_with_escape_sequences(capsys, tmp_path):
    """A module name is the model author's text: in `rfkit graph`'s table and productivity lines it prints
    as text."""
    model = tmp_path / "odd.py"
    model.write_text(
        "import torch.nn as nn\n\n\ndef build():\n    net = nn.Sequential()\n"
        "    net.add_module('c\\x1b[2J\\x9b', nn.Conv2d(3, 4, 3))\n    return net\n"
    )
    code, text = cli(capsys, "graph", f"{model}:build", "--trust", "--input-size", "16", "--resolution", "4")
    assert code == 0, text
    assert "c\\x1b[2J\\x9b" in text and not any(c in text for c in "\x1b\x9b")


# `rfkit atlas` (issue 24): a missing or foreign atlas, a query that is not a condition on columns, a source or
# size it does not know: one line each, exit 1
ATLAS_CASES = {
    "query without an atlas": (["atlas", "query", "rf > 1", "--atlas", "{tmp}/none"], "no atlas at"),
    "query calling a function": (["atlas", "query", "open('x')", "--atlas", "{atlas}"], "function call"),
    "query on a missing column": (["atlas", "query", "nope > 1", "--atlas", "{atlas}"], "no column named 'nope'"),
    "query that does not parse": (["atlas", "query", "rf >>= 1", "--atlas", "{atlas}"], "query: invalid syntax"),
    "query at a size not built": (
        ["atlas", "query", "rf > 1", "--atlas", "{atlas}", "--input-size", "7"],
        "no rows at 7x7",
    ),
    "query --layers": (["atlas", "query", "rf > 1", "--atlas", "{atlas}", "--layers", "some"], "--layers 'some'"),
    "query --columns": (["atlas", "query", "rf > 1", "--atlas", "{atlas}", "--columns", "x"], "no column named 'x'"),
    "build --source": (["atlas", "build", "--source", "keras", "--out", "{tmp}/a"], "unknown source 'keras'"),
    "build no model": (["atlas", "build", "--models", "zz*", "--out", "{tmp}/a"], "no model of timm matches"),
    "build into a foreign folder": (
        ["atlas", "build", "--models", "test_resnet", "--out", "{foreign}"],
        "did not write",
    ),
    "build --input-size": (["atlas", "build", "--input-size", "1.5", "--out", "{tmp}/a"], "--input-size '1.5'"),
    "site from a foreign csv": (["atlas", "site", "--atlas", "{foreign}/x.csv", "--site", "{tmp}/s"], "not an atlas"),
}


@pytest.mark.parametrize("case", list(ATLAS_CASES))
def test_atlas_bad_input_is_one_line(capsys, tmp_path, case):
    atlas, foreign = tmp_path / "atlas", tmp_path / "foreign"
    atlas.mkdir()
    foreign.mkdir()
    (foreign / "x.csv").write_text("a,b\n1,2\n")
    header = "source,model,family,input_from,input_h,input_w,layer,stage,is_final,rf_h,rf_w,rf,rf_final"
    (atlas / "atlas.csv").write_text(header + "\ntimm,m,f,default,224,224,l,0,True,3,3,3,3\n")
    args, says = ATLAS_CASES[case]
    args = [a.format(tmp=tmp_path, atlas=atlas, foreign=foreign) for a in args]
    code, text = cli(capsys, *args)
    assert_one_line_error(code, text, says)
    assert (foreign / "x.csv").read_text() == "a,b\n1,2\n" and sorted(p.name for p in foreign.iterdir()) == ["x.csv"]
