"""Tests of smoothsal.execution.memory: budget parsing, row memory, batch choice, cache, OOM retry.

Fast and deterministic: no assertion depends on timing (the throughput probe only decides among
sizes that all satisfy the asserted bounds).
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from smoothsal.execution import memory, probe
from smoothsal.execution.measure import row_memory
from smoothsal.execution.memory import BatchMemoryError, memory_budget, parse_memory, set_max_memory
from smoothsal.execution.probe import choose_batch_size, clear_cache, run_with_oom_retry


@pytest.fixture(autouse=True)
def _reset():
    set_max_memory(None)
    clear_cache()
    yield
    set_max_memory(None)
    clear_cache()


# ---- budget parsing --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("4GB", 4 * 10**9),
        ("512MB", 512 * 10**6),
        ("512 mb", 512 * 10**6),
        ("2GiB", 2 * 2**30),
        ("1.5G", int(1.5 * 2**30)),
        ("100KiB", 100 * 2**10),
        ("123B", 123),
        ("4000000000", 4_000_000_000),
        (4096, 4096),
        ("0.25", 0.25),
        ("1", 1.0),
        ("25%", 0.25),
        (0.5, 0.5),
    ],
)
def test_parse_memory_values(spec, expected):
    value = parse_memory(spec)
    assert value == expected
    assert type(value) is type(expected)  # int: bytes, float: a fraction


@pytest.mark.parametrize(
    "spec",
    ["", "lots", "4XB", "-1GB", "0", "0GB", "1.5", "150%", 0, -5, 1.5, True, [1]],
)
def test_parse_memory_rejects_bad_values_naming_the_option(spec):
    with pytest.raises(ValueError, match="max_memory") as info:
        parse_memory(spec)
    assert "4GB" in str(info.value)  # the message shows the expected forms


def test_set_max_memory_validates_before_any_work():
    with pytest.raises(ValueError, match="max_memory"):
        set_max_memory("four gigabytes")
    assert memory.get_max_memory() is None  # a bad value leaves the setting unchanged


def test_memory_budget_bytes_fraction_and_default(monkeypatch):
    monkeypatch.setattr(memory, "available_memory", lambda device=None: 8_000)
    set_max_memory("3000B")
    assert memory_budget("cpu") == 3000  # bytes are taken as given
    set_max_memory("0.25")
    assert memory_budget("cpu") == 2000  # a fraction of what is available now
    set_max_memory(None)
    assert memory_budget("cpu") == int(memory.DEFAULT_FRACTION * 8_000)
    assert memory_budget("cpu", max_memory="1KB") == 1000  # per-call override


def test_available_memory_is_positive_on_this_machine():
    assert memory.available_memory("cpu") > 0
    assert memory_budget("cpu") > 0


# ---- row memory ------------------------------------------------------------------------------
D_IN, D_HIDDEN, D_OUT = 64, 256, 8


def _chain() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(D_IN, D_HIDDEN), nn.Tanh(), nn.Linear(D_HIDDEN, D_OUT)
    )


def _grad_of_logit(model: nn.Module):
    def fn(rows: torch.Tensor) -> torch.Tensor:
        x = rows.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(model(x)[:, 0].sum(), x)
        return grad

    return fn


def test_row_memory_of_a_linear_chain_matches_the_hand_count():
    # Per row, float32: the first Linear saves its input x (D_IN), Tanh saves its output (D_HIDDEN),
    # which the second Linear saves again (same storage: counted once); the call returns the
    # gradient of x (D_IN). Weights are saved too but do not grow with rows (they cancel).
    expected = 4 * (D_IN + D_HIDDEN + D_IN)
    measured = row_memory(_grad_of_logit(_chain()), torch.rand(8, D_IN))
    assert measured == pytest.approx(expected, rel=0.02)


def test_row_memory_scales_with_the_width():
    narrow = row_memory(_grad_of_logit(_chain()), torch.rand(8, D_IN))
    wide_model = nn.Sequential(
        nn.Linear(D_IN, 4 * D_HIDDEN), nn.Tanh(), nn.Linear(4 * D_HIDDEN, D_OUT)
    )
    wide = row_memory(_grad_of_logit(wide_model), torch.rand(8, D_IN))
    assert wide - narrow == pytest.approx(4 * 3 * D_HIDDEN, rel=0.02)


def test_row_memory_of_one_row_is_an_upper_bound():
    per_row = row_memory(_grad_of_logit(_chain()), torch.rand(8, D_IN))
    one = row_memory(_grad_of_logit(_chain()), torch.rand(1, D_IN))
    assert one >= per_row  # includes the fixed part (the saved weights)


def test_row_memory_rejects_empty_rows():
    with pytest.raises(ValueError, match="example_rows"):
        row_memory(lambda rows: rows, torch.empty(0, 3))


# ---- choose_batch_size -----------------------------------------------------------------------
class _Counter:
    """fn(k) for choose_batch_size: a tiny forward+backward, recording each k it is called with."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.model = _chain()

    def __call__(self, k: int) -> torch.Tensor:
        self.sizes.append(k)
        return _grad_of_logit(self.model)(torch.rand(k, D_IN))


@pytest.mark.parametrize(
    ("budget", "row_bytes"),
    [(10_000, 1_000), (7_000, 1_000), (3_000, 1_000), (1_000, 1_000)],
)
def test_choice_never_exceeds_the_memory_cap(budget, row_bytes):
    fn = _Counter()
    size = choose_batch_size(
        fn,
        row_bytes=row_bytes,
        max_rows=1000,
        device="cpu",
        key=("cap", budget),
        max_memory=budget,
    )
    cap = budget // row_bytes
    assert 1 <= size <= cap
    assert (
        max(fn.sizes, default=1) <= cap
    )  # the probe never runs a batch above the cap either


def test_choice_never_exceeds_max_rows_nor_the_set_budget():
    fn = _Counter()
    set_max_memory(64 * 1536)  # 64 rows of 1536 bytes
    size = choose_batch_size(fn, row_bytes=1536, max_rows=20, device="cpu", key="rows")
    assert 1 <= size <= 20
    assert max(fn.sizes) <= 20


def test_choice_measures_row_bytes_when_not_given():
    fn = _Counter()
    # 4 rows of the chain (about 1.5 KiB each) plus its fixed part fit; 5 rows do not
    per_row = row_memory(_grad_of_logit(fn.model), torch.rand(8, D_IN))
    size = choose_batch_size(
        fn, max_rows=1000, device="cpu", key="measured", max_memory=4 * per_row + 100
    )
    assert 1 <= size <= 4


def test_one_row_that_does_not_fit_raises_naming_max_memory():
    fn = _Counter()
    with pytest.raises(BatchMemoryError, match="max_memory") as info:
        choose_batch_size(
            fn,
            row_bytes=2_000_000,
            max_rows=50,
            device="cpu",
            key="big",
            max_memory="1MB",
        )
    assert isinstance(info.value, MemoryError) and isinstance(info.value, ValueError)
    assert "1.9 MiB" in str(info.value) and "976.6 KiB" in str(
        info.value
    )  # needed vs budget
    assert fn.sizes == []  # nothing ran


def test_cache_returns_the_same_size_without_calling_fn_again():
    fn = _Counter()
    kwargs = {
        "row_bytes": 1_000,
        "device": "cpu",
        "key": ("model", (D_IN,), torch.float32, "cpu", "grad"),
    }
    first = choose_batch_size(fn, max_rows=64, max_memory="64KB", **kwargs)
    calls = len(fn.sizes)
    assert calls > 0  # the first choice probed
    again = choose_batch_size(fn, max_rows=64, max_memory="64KB", **kwargs)
    assert again == first
    assert len(fn.sizes) == calls  # cached: fn not called again
    assert (
        choose_batch_size(fn, max_rows=1, max_memory="64KB", **kwargs) == 1
    )  # still capped by max_rows
    assert len(fn.sizes) == calls
    clear_cache()
    choose_batch_size(fn, max_rows=64, max_memory="64KB", **kwargs)
    assert len(fn.sizes) > calls  # chosen again after clear_cache()


def test_cache_is_per_budget_setting():
    fn = _Counter()
    choose_batch_size(
        fn, row_bytes=1_000, max_rows=64, device="cpu", key="k", max_memory="64KB"
    )
    calls = len(fn.sizes)
    small = choose_batch_size(
        fn, row_bytes=1_000, max_rows=64, device="cpu", key="k", max_memory="2KB"
    )
    assert small <= 2
    assert (
        len(fn.sizes) > calls
    )  # a new budget is a new choice, never a cached size above it


def test_no_probe_when_only_one_row_fits_or_is_asked():
    fn = _Counter()
    assert (
        choose_batch_size(
            fn, row_bytes=1_000, max_rows=64, device="cpu", key="a", max_memory=1_999
        )
        == 1
    )
    assert (
        choose_batch_size(
            fn, row_bytes=1_000, max_rows=1, device="cpu", key="b", max_memory="1MB"
        )
        == 1
    )
    assert fn.sizes == []


def test_probe_without_time_gives_the_memory_cap():
    fn = _Counter()
    size = choose_batch_size(
        fn,
        row_bytes=1_000,
        max_rows=64,
        device="cpu",
        key="c",
        max_memory=10_000,
        probe_seconds=0,
    )
    assert size == 10 and fn.sizes == []


def test_choose_batch_size_validates_arguments():
    with pytest.raises(ValueError, match="max_rows"):
        choose_batch_size(_Counter(), row_bytes=1, max_rows=0, device="cpu", key="x")
    with pytest.raises(ValueError, match="row_bytes"):
        choose_batch_size(_Counter(), row_bytes=0, max_rows=4, device="cpu", key="y")


def test_candidates():
    assert probe._candidates(1) == [1]
    assert probe._candidates(3) == [1, 2, 3]
    assert probe._candidates(16) == [4, 8, 16]
    assert probe._candidates(100) == [4, 8, 16, 32, 64, 100]


# ---- out-of-memory retry ---------------------------------------------------------------------
def _job(data: torch.Tensor, fail_above: int, tried: list[int]):
    """The whole job in batches of ``batch``; 'out of memory' for batches above ``fail_above``."""

    def run(batch: int) -> torch.Tensor:
        tried.append(batch)
        if batch > fail_above:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return torch.cat(
            [(chunk * 2).sum(1, keepdim=True) for chunk in data.split(batch)]
        )

    return run


def test_oom_retry_halves_and_gives_the_same_result():
    data = torch.rand(50, 7)
    reference = _job(data, fail_above=64, tried=[])(64)
    tried: list[int] = []
    with pytest.warns(RuntimeWarning, match="out of memory at batch size 64") as record:
        result = run_with_oom_retry(_job(data, fail_above=10, tried=tried), 64)
    assert tried == [64, 32, 16, 8]
    assert len(record) == 1  # warned once, though it halved three times
    torch.testing.assert_close(result, reference)


def test_oom_retry_without_error_does_not_warn():
    data = torch.rand(5, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = run_with_oom_retry(_job(data, fail_above=8, tried=[]), 8)
    assert result.shape == (5, 1)


def test_oom_retry_reraises_at_one_row():
    tried: list[int] = []
    with (
        pytest.warns(RuntimeWarning),
        pytest.raises(RuntimeError, match="out of memory"),
    ):
        run_with_oom_retry(_job(torch.rand(4, 2), fail_above=0, tried=tried), 4)
    assert tried == [4, 2, 1]


def test_oom_retry_recognises_the_cuda_error_type_and_cpu_allocator():
    assert memory.is_out_of_memory(torch.cuda.OutOfMemoryError("x"))
    assert memory.is_out_of_memory(
        RuntimeError(
            "DefaultCPUAllocator: can't allocate memory: you tried to allocate"
        )
    )
    assert not memory.is_out_of_memory(RuntimeError("shape mismatch"))
    assert not memory.is_out_of_memory(BatchMemoryError("one row does not fit"))


def test_oom_retry_does_not_swallow_other_errors():
    def boom(batch: int):
        raise ValueError("not a memory problem")

    with pytest.raises(ValueError, match="not a memory problem"):
        run_with_oom_retry(boom, 8)


def test_oom_retry_lowers_the_cached_size():
    fn = _Counter()
    size = choose_batch_size(
        fn,
        row_bytes=1,
        max_rows=64,
        device="cpu",
        key="oom",
        max_memory="1MB",
        probe_seconds=0,
    )
    assert size == 64
    with pytest.warns(RuntimeWarning):
        run_with_oom_retry(
            _job(torch.rand(64, 2), fail_above=16, tried=[]), size, key="oom"
        )
    assert (
        choose_batch_size(
            fn, row_bytes=1, max_rows=64, device="cpu", key="oom", max_memory="1MB"
        )
        == 16
    )
