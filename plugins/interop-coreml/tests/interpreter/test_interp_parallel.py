"""Speed must not change a result: fused epilogues, blocked convolutions and worker threads.

A fused run (conv absorbing the add/relu that alone consume it) and an op-by-op run
(asked for by capturing the intermediates) must agree bit for bit; runs cut into other
blocks (another thread count) agree to float32 accuracy.
"""

from __future__ import annotations

import numpy as np
import pytest

ct = pytest.importorskip("coremltools")
from coremltools.converters.mil import Builder as mb  # noqa: E402

from interop_coreml.interpreter import Program  # noqa: E402
from interop_coreml.interpreter import threads  # noqa: E402
from interop_coreml.interpreter.kernels import conv as conv_module  # noqa: E402

RNG = np.random.default_rng(0)


def _weights(*shape):
    return (RNG.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))).astype(np.float32)


def _residual_program(shape=(2, 8, 9, 9)):
    """A ResNet-like body: conv+relu, conv, add of the block input, relu; plus a broadcast add and a conv
    whose result has a second reader (neither may be fused away)."""
    w1, w2, w3 = _weights(8, 8, 3, 3), _weights(8, 8, 3, 3), _weights(8, 8, 1, 1)
    b1, b2 = _weights(8), _weights(8)
    bias_map = _weights(1, 8, 1, 1)

    @mb.program(input_specs=[mb.TensorSpec(shape=shape)], opset_version=ct.target.iOS17)
    def program(x):
        h = mb.relu(x=mb.conv(x=x, weight=w1, bias=b1, pad_type="same", name="c1"), name="r1")
        h = mb.conv(x=h, weight=w2, bias=b2, pad_type="same", name="c2")
        h = mb.relu(x=mb.add(x=x, y=h, name="a1"), name="r2")  # the conv result is add's y here
        shared = mb.conv(x=h, weight=w3, name="c3")
        broadcast = mb.add(x=shared, y=bias_map, name="a2")  # operand broadcasts: applied after the conv
        twice = mb.add(x=shared, y=mb.relu(x=broadcast, name="r3"), name="a3")  # shared has two readers
        return twice

    return program


def _inputs(shape=(2, 8, 9, 9)):
    return RNG.standard_normal(shape).astype(np.float32)


def test_fused_and_op_by_op_runs_agree_bit_for_bit():
    program = Program(_residual_program())
    fused = {step.op_name: step.context.epilogue for step in program._fused_block.steps if step.context.epilogue}
    # c1 absorbs r1; c2 absorbs a1 and r2; c3 has two readers and absorbs nothing.
    assert fused == {"c1": ("relu",), "c2": ("add", "relu")}
    x = _inputs()
    (output,) = [spec.name for spec in program.outputs]
    fast = program.run({"x": x})[output]
    captured = program.run({"x": x}, capture=program.var_names())
    np.testing.assert_array_equal(fast, captured[output])
    # The op-by-op values are the textbook ones.
    conv = lambda v, w, b=None: _reference_conv(v, w, b)  # noqa: E731
    h = np.maximum(captured["c1"], 0)
    np.testing.assert_array_equal(captured["r1"], h)
    np.testing.assert_allclose(captured["c2"], conv(h, *_weights_of(program, "c2")), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(captured["r2"], np.maximum(x + captured["c2"], 0))


def test_a_broadcast_operand_is_added_after_the_conv_as_the_separate_add_would():
    w = _weights(4, 3, 1, 1)
    row = _weights(1, 4, 1, 5)

    @mb.program(input_specs=[mb.TensorSpec(shape=(2, 3, 5, 5))], opset_version=ct.target.iOS17)
    def program(x):
        return mb.relu(x=mb.add(x=mb.conv(x=x, weight=w, name="c"), y=row, name="a"), name="r")

    loaded = Program(program)
    assert [s.context.epilogue for s in loaded._fused_block.steps] == [("add", "relu")]
    x = _inputs((2, 3, 5, 5))
    (output,) = [spec.name for spec in loaded.outputs]
    fast = loaded.run({"x": x})[output]
    slow = loaded.run({"x": x}, capture=["c"])[output]
    np.testing.assert_array_equal(fast, slow)
    expected = np.maximum(np.einsum("oc,nchw->nohw", w[:, :, 0, 0], x) + row, 0)
    np.testing.assert_allclose(fast, expected, rtol=1e-5, atol=1e-6)


def test_fp16_programs_are_not_fused():
    w = _weights(4, 3, 3, 3)

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 3, 6, 6), dtype=ct.converters.mil.mil.types.fp16)],
                opset_version=ct.target.iOS17)
    def program(x):
        return mb.relu(x=mb.conv(x=x, weight=w.astype(np.float16)))

    assert not any(step.context.epilogue for step in Program(program)._fused_block.steps)


@pytest.mark.parametrize("kernel_shape, strides, dilations, groups", [
    ((3, 3), (1, 1), (1, 1), 1), ((7, 7), (2, 2), (1, 1), 1), ((1, 1), (2, 2), (1, 1), 1),
    ((3, 3), (1, 1), (2, 2), 2), ((1, 1), (1, 1), (1, 1), 4),
])
def test_conv_blocks_and_threads_change_at_most_the_last_bits(monkeypatch, kernel_shape, strides, dilations, groups):
    x = _inputs((3, 8, 11, 13))
    w = _weights(8, 8 // groups, *kernel_shape)
    b = _weights(8)
    arguments = dict(x=x, weight=w, bias=b, strides=np.array(strides), pad_type="same",
                     dilations=np.array(dilations), groups=groups)

    def run(count, block_bytes):
        monkeypatch.setitem(threads._state, "count", count)
        monkeypatch.setattr(threads, "_BLOCK_BYTES", block_bytes)
        monkeypatch.setattr(conv_module, "_GRID_BLOCK_BYTES", block_bytes)
        with threads.single_threaded_blas():
            return conv_module.conv(None, **arguments)

    first = run(2, 4096)
    np.testing.assert_array_equal(run(2, 4096), first)  # deterministic for a given thread count
    # Another cut may round differently in BLAS, never beyond float32 accuracy.
    for count, block_bytes in ((1, 1 << 30), (3, 1), (5, 4096)):
        np.testing.assert_allclose(run(count, block_bytes), first, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(first, _reference_conv(x, w, b, strides, dilations, groups), rtol=1e-4, atol=1e-4)


def test_blas_threads_are_given_back_after_a_run():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    blas = [info for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"]
    if not blas:
        pytest.skip("numpy's BLAS is not visible to threadpoolctl")
    before = [info["num_threads"] for info in blas]
    program = Program(_residual_program())
    program.run({"x": _inputs()})
    after = [info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"]
    assert after == before


def test_a_failing_block_fails_the_op_once_every_started_block_ended(monkeypatch):
    import threading
    import time

    monkeypatch.setitem(threads._state, "count", 2)
    lock, running, ended = threading.Lock(), [0], []

    def piece(item):
        with lock:
            running[0] += 1
        try:
            if item == 1:
                raise ValueError("bad block")
            time.sleep(0.05)  # the other thread is still in its piece when this one fails
            ended.append(item)
            return item
        finally:
            with lock:
                running[0] -= 1

    with pytest.raises(ValueError, match="bad block"):
        threads.parallel_map(piece, list(range(6)))
    assert running[0] == 0  # nothing still writes into the caller's buffers
    assert 0 in ended  # the piece under way when another failed ran to its end
    assert threads.parallel_map(lambda item: item * item, list(range(7))) == [0, 1, 4, 9, 16, 25, 36]
    assert threads.split(10, 3) == [(0, 3), (3, 6), (6, 10)]
    assert threads.split(2, 8) == [(0, 1), (1, 2)]


def _square_on_the_workers(queue):
    queue.put(threads.parallel_map(lambda item: item * item, list(range(5))))


def test_a_forked_child_gets_workers_of_its_own(monkeypatch):
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork on this platform")
    monkeypatch.setitem(threads._state, "count", 2)
    assert threads.parallel_map(lambda item: item + 1, [0, 1, 2]) == [1, 2, 3]  # the parent's workers exist
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_square_on_the_workers, args=(queue,))
    child.start()
    child.join(timeout=60)  # with the parent's dead workers the child would wait for ever
    if child.is_alive():
        child.kill()
    assert child.exitcode == 0
    assert queue.get(timeout=5) == [0, 1, 4, 9, 16]


def _weights_of(program, op_name):
    for step in program._block.steps:
        if step.op_name == op_name:
            return step.inputs["weight"][1], step.inputs["bias"][1]
    raise KeyError(op_name)


def _with_epilogue(result, epilogue, residual):
    """What the separate ops of a fused epilogue make of a conv's result."""
    if "add" in epilogue:
        result = result + residual
    return np.maximum(result, 0) if "relu" in epilogue else result


def _reference_conv(x, w, b=None, strides=(1, 1), dilations=(1, 1), groups=1):
    """Direct 2-D convolution with "same" padding, written plainly (float64)."""
    n, c, height, width = x.shape
    o, cg, kh, kw = w.shape
    eh, ew = (kh - 1) * dilations[0] + 1, (kw - 1) * dilations[1] + 1
    out_h, out_w = -(-height // strides[0]), -(-width // strides[1])
    pad_h = max(0, (out_h - 1) * strides[0] + eh - height)
    pad_w = max(0, (out_w - 1) * strides[1] + ew - width)
    padded = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pad_h // 2, pad_h - pad_h // 2),
                                           (pad_w // 2, pad_w - pad_w // 2)))
    out = np.zeros((n, o, out_h, out_w))
    per_group = o // groups
    for oc in range(o):
        g = oc // per_group
        for i in range(kh):
            for j in range(kw):
                patch = padded[:, g * cg:(g + 1) * cg,
                               i * dilations[0]: i * dilations[0] + (out_h - 1) * strides[0] + 1: strides[0],
                               j * dilations[1]: j * dilations[1] + (out_w - 1) * strides[1] + 1: strides[1]]
                out[:, oc] += np.einsum("nchw,c->nhw", patch, w[oc, :, i, j])
    if b is not None:
        out += np.asarray(b).reshape(1, -1, 1, 1)
    return out


@pytest.mark.parametrize("a_shape, b_shape", [
    ((37, 19), (19, 5)),  # rows split
    ((3, 19), (19, 41)),  # columns split
    ((9, 4, 7), (7, 6)),  # batch split
    ((2, 1, 6, 8), (3, 8, 5)),  # broadcast batch, rows split
    ((5,), (5, 3)), ((4, 5), (5,)),  # rank-1 operands: numpy semantics
    ((0, 3), (3, 4)), ((2, 0), (0, 3)),  # empty
])
def test_parallel_matmul_is_matmul_for_any_thread_count(monkeypatch, a_shape, b_shape):
    from interop_coreml.interpreter.kernels.linear import parallel_matmul

    a = RNG.standard_normal(a_shape).astype(np.float32)
    b = RNG.standard_normal(b_shape).astype(np.float32)
    expected = np.matmul(a.astype(np.float64), b.astype(np.float64))
    bias = RNG.standard_normal(expected.shape[-1:]).astype(np.float32)
    monkeypatch.setattr(threads, "_BLOCK_BYTES", 64)  # many blocks even for these small operands
    results = []
    for count in (1, 2, 3):
        monkeypatch.setitem(threads._state, "count", count)
        with threads.single_threaded_blas():
            results.append((parallel_matmul(a, b), parallel_matmul(a, b, bias)))
    for plain, biased in results:
        assert plain.shape == expected.shape and plain.dtype == np.float32
        np.testing.assert_allclose(plain, expected, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(biased, expected + bias, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("channel_major", [False, True])
def test_pools_are_the_same_in_channel_blocks(monkeypatch, channel_major):
    from interop_coreml.interpreter.kernels import pool

    x = RNG.standard_normal((3, 10, 9, 11)).astype(np.float32)
    if channel_major:  # how a conv leaves its result
        x = np.ascontiguousarray(x.swapaxes(0, 1)).swapaxes(0, 1)
    arguments = dict(kernel_sizes=np.array([3, 3]), strides=np.array([2, 2]), pad_type="custom",
                     pad=np.array([1, 1, 1, 1]))
    results = []
    for count, block_bytes in ((1, 1 << 30), (3, 64)):
        monkeypatch.setitem(threads._state, "count", count)
        monkeypatch.setattr(threads, "_BLOCK_BYTES", block_bytes)
        results.append((pool.max_pool(None, x, **arguments), pool.avg_pool(None, x, **arguments)))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    expected = np.max([padded[:, :, i:i + 9:2, j:j + 11:2] for i in range(3) for j in range(3)], axis=0)
    np.testing.assert_array_equal(results[0][0], expected)
    assert results[0][0].swapaxes(0, 1).flags.c_contiguous == channel_major  # the layout is kept


@pytest.mark.parametrize("spatial, kernel_sizes, pad", [
    ((7, 7), (7, 7), (0, 0, 0, 0)),  # a global pool: one window per channel
    ((4, 5), (5, 5), (1, 1, 2, 0)),  # padded windows, fewer of them than taps
])
@pytest.mark.parametrize("channel_major", [False, True])
def test_pools_of_few_large_windows_reduce_each_window_at_once(monkeypatch, spatial, kernel_sizes, pad,
                                                             channel_major):
    from interop_coreml.interpreter.kernels import pool

    x = RNG.standard_normal((3, 10) + spatial).astype(np.float32)
    if channel_major:
        x = np.ascontiguousarray(x.swapaxes(0, 1)).swapaxes(0, 1)
    arguments = dict(kernel_sizes=np.array(kernel_sizes), strides=np.array([1, 1]), pad_type="custom",
                     pad=np.array(pad))
    monkeypatch.setitem(threads._state, "count", 2)
    reduced = [pool.max_pool(None, x, **arguments), pool.avg_pool(None, x, exclude_padding_from_average=True,
                                                                   **arguments)]
    monkeypatch.setattr(pool, "_LOOP_TAPS", 1 << 30)  # the tap loop instead
    looped = [pool.max_pool(None, x, **arguments), pool.avg_pool(None, x, exclude_padding_from_average=True,
                                                                  **arguments)]
    padding = ((0, 0), (0, 0), (pad[0], pad[1]), (pad[2], pad[3]))
    windows = [(i, j) for i in range(pad[0] + spatial[0] + pad[1] - kernel_sizes[0] + 1)
               for j in range(pad[2] + spatial[1] + pad[3] - kernel_sizes[1] + 1)]
    padded_max = np.pad(x.astype(np.float64), padding, constant_values=-np.inf)
    padded_sum = np.pad(x.astype(np.float64), padding)
    counts = np.pad(np.ones(spatial), padding[2:])
    shape = (3, 10, padded_max.shape[2] - kernel_sizes[0] + 1, padded_max.shape[3] - kernel_sizes[1] + 1)
    expected_max, expected_avg = np.empty(shape), np.empty(shape)
    for i, j in windows:
        window = (slice(i, i + kernel_sizes[0]), slice(j, j + kernel_sizes[1]))
        expected_max[:, :, i, j] = padded_max[(Ellipsis,) + window].max(axis=(2, 3))
        expected_avg[:, :, i, j] = padded_sum[(Ellipsis,) + window].sum(axis=(2, 3)) / counts[window].sum()
    np.testing.assert_array_equal(reduced[0], expected_max.astype(np.float32))
    np.testing.assert_array_equal(reduced[0], looped[0])
    np.testing.assert_allclose(reduced[1], expected_avg, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(reduced[1], looped[1], rtol=1e-5, atol=1e-6)
    assert reduced[0].swapaxes(0, 1).flags.c_contiguous == channel_major


def test_timings_name_every_executed_step_and_what_it_absorbed():
    program = Program(_residual_program())
    timings: list = []
    program.run({"x": _inputs()}, timings=timings)
    assert [(label, name) for label, name, _ in timings] == [
        ("conv+relu", "c1"), ("conv+add+relu", "c2"), ("conv", "c3"), ("add", "a2"), ("relu", "r3"), ("add", "a3"),
    ]
    assert all(seconds >= 0 for _, _, seconds in timings)
    unfused: list = []
    program.run({"x": _inputs()}, capture=["c1"], timings=unfused)
    assert [label for label, _, _ in unfused][:3] == ["conv", "relu", "conv"]


def test_float32_erf_and_gelu_are_accurate_and_sliced_alike(monkeypatch):
    import math

    from interop_coreml.interpreter.kernels.special import erf, gelu_exact

    x = np.concatenate([np.linspace(-9, 9, 20001), [0.0, -0.0, 1e-30, -1e-30, 0.5, -0.5]]).astype(np.float32)
    expected_erf = np.array([math.erf(float(v)) for v in x])
    expected_gelu = np.array([0.5 * float(v) * math.erfc(-float(v) / math.sqrt(2)) for v in x])
    monkeypatch.setattr(threads, "_SLICE_BYTES", 4096)  # many slices, on several threads
    results = []
    for count in (1, 3):
        monkeypatch.setitem(threads._state, "count", count)
        results.append((erf(x), gelu_exact(x)))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
    ours_erf, ours_gelu = results[0]
    assert ours_erf.dtype == ours_gelu.dtype == np.float32
    np.testing.assert_allclose(ours_erf, expected_erf, rtol=5e-7, atol=3e-7)
    np.testing.assert_allclose(ours_gelu, expected_gelu, rtol=3e-6, atol=5e-7)
    # Near zero erf keeps its relative precision (the Maclaurin branch).
    np.testing.assert_allclose(ours_erf[-4], 2 / math.sqrt(math.pi) * 1e-30, rtol=3e-7, atol=0)
    # A channel-major input gives a channel-major result.
    image = np.ascontiguousarray(RNG.standard_normal((4, 3, 5, 5)).astype(np.float32)).swapaxes(0, 1)
    assert gelu_exact(image).swapaxes(0, 1).flags.c_contiguous
    np.testing.assert_array_equal(gelu_exact(image), gelu_exact(np.ascontiguousarray(image)))


def test_blas_accumulate_adds_the_product_in_place_or_declines():
    from interop_coreml.interpreter import blas

    a = RNG.standard_normal((6, 20)).astype(np.float32)[:, 3:13]  # rows with a stride, as kernels pass them
    b = RNG.standard_normal((10, 7)).astype(np.float32)
    c = RNG.standard_normal((6, 30)).astype(np.float32)[:, 5:12]
    expected = c.astype(np.float64) + a.astype(np.float64) @ b.astype(np.float64)
    if not blas.accumulate(a, b, c):
        pytest.skip("numpy's BLAS cannot be called directly here (the kernels use numpy.matmul)")
    np.testing.assert_allclose(c, expected, rtol=1e-5, atol=1e-5)
    # What BLAS cannot read as a matrix is declined, and left untouched.
    untouched = c.copy()
    assert not blas.accumulate(a, b.astype(np.float64), c)
    assert not blas.accumulate(a, b, c[:, ::-1])
    np.testing.assert_array_equal(c, untouched)


def test_convolutions_without_direct_blas_give_the_same_values(monkeypatch):
    from interop_coreml.interpreter import blas

    x = _inputs((2, 8, 9, 9))
    w, b = _weights(8, 8, 3, 3), _weights(8)
    direct = conv_module.conv(None, x, w, b, pad_type="same")
    monkeypatch.setitem(blas._state, "sgemm", None)
    monkeypatch.setitem(blas._state, "checked", True)
    through_numpy = conv_module.conv(None, x, w, b, pad_type="same")
    np.testing.assert_allclose(direct, through_numpy, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(through_numpy, _reference_conv(x, w, b), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("epilogue", [(), ("relu",), ("add", "relu"), ("add",)])
@pytest.mark.parametrize("dilations, bias", [((1, 1), True), ((2, 2), False)])
def test_padded_grid_convolution_matches_im2col(monkeypatch, epilogue, dilations, bias):
    from interop_coreml.interpreter import blas
    from interop_coreml.interpreter.kernels.table import OpContext

    if not blas.available():
        pytest.skip("the padded-grid method needs numpy's BLAS directly")
    x = _inputs((3, 4, 50, 50))
    if dilations == (1, 1):
        x = np.ascontiguousarray(x.swapaxes(0, 1)).swapaxes(0, 1)  # channel-major, as a conv leaves it
    w, b = _weights(6, 4, 3, 3), (_weights(6) if bias else None)
    residual = _inputs((3, 6, 50, 50))
    context = OpContext("conv", "c", epilogue=epilogue)
    arguments = dict(weight=w, bias=b, pad_type="same", dilations=np.array(dilations),
                     fused_input=residual if "add" in epilogue else None)
    monkeypatch.setattr(conv_module, "_GRID_BLOCK_BYTES", 1 << 14)  # blocks that split images
    calls = []
    grid_method = conv_module._conv_on_padded_grid
    monkeypatch.setattr(conv_module, "_conv_on_padded_grid", lambda *a: calls.append(1) or grid_method(*a))
    grid = conv_module.conv(context, x, **arguments)
    assert calls == [1]
    monkeypatch.setattr(conv_module, "_GRID_WASTE", 0.0)
    im2col = conv_module.conv(context, x, **arguments)
    expected = _with_epilogue(_reference_conv(x, w, b, dilations=dilations), epilogue, residual)
    np.testing.assert_allclose(grid, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(grid, im2col, rtol=1e-5, atol=1e-5)
    assert grid.swapaxes(0, 1).flags.c_contiguous


@pytest.mark.parametrize("epilogue", [(), ("relu",), ("add", "relu")])
@pytest.mark.parametrize("through_numpy", [False, True])
def test_1x1_convolution_cut_by_output_channels_matches_the_column_cut(monkeypatch, epilogue, through_numpy):
    from interop_coreml.interpreter import blas
    from interop_coreml.interpreter.kernels.table import OpContext

    x = np.ascontiguousarray(_inputs((2, 16, 6, 6)).swapaxes(0, 1)).swapaxes(0, 1)
    w, b, residual = _weights(64, 16, 1, 1), _weights(64), _inputs((2, 64, 6, 6))
    context = OpContext("conv", "c", epilogue=epilogue)
    arguments = dict(weight=w, bias=b, fused_input=residual if "add" in epilogue else None)
    monkeypatch.setitem(threads._state, "count", 2)
    if through_numpy:  # numpy.matmul, then the bias in the epilogue: each block must take its own channels' bias
        monkeypatch.setitem(blas._state, "sgemm", None)
        monkeypatch.setitem(blas._state, "checked", True)
    monkeypatch.setattr(conv_module, "_CHANNELS_PER_THREAD", 8)  # 64 channels: 32 per thread
    assert conv_module._split_channels(64, 2 * 36)
    with threads.single_threaded_blas():
        by_channels = conv_module.conv(context, x, **arguments)
        monkeypatch.setattr(conv_module, "_CHANNELS_PER_THREAD", 1 << 30)
        by_columns = conv_module.conv(context, x, **arguments)
    expected = _with_epilogue(_reference_conv(x, w, b), epilogue, residual)
    np.testing.assert_allclose(by_channels, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(by_channels, by_columns, rtol=1e-6, atol=1e-6)
    assert by_channels.swapaxes(0, 1).flags.c_contiguous


@pytest.mark.parametrize("x_shape, w_shape, dtype", [
    ((1, 1, 1, 6), (1, 1, 1, 2), np.float32),  # [1, 1] taps: numpy gives their length-1 axes any stride
    ((2, 1, 6, 1), (1, 1, 2, 1), np.float32),
    ((1, 2, 30, 30), (3, 2, 3, 3), np.float16),  # BLAS cannot read float16: numpy multiplies the taps
])
def test_padded_grid_convolution_computes_the_taps_blas_cannot_read(monkeypatch, x_shape, w_shape, dtype):
    from interop_coreml.interpreter import blas

    if not blas.available():
        pytest.skip("the padded-grid method needs numpy's BLAS directly")
    x, w = _inputs(x_shape).astype(dtype), _weights(*w_shape).astype(dtype)
    calls = []
    grid_method = conv_module._conv_on_padded_grid
    monkeypatch.setattr(conv_module, "_conv_on_padded_grid", lambda *a: calls.append(1) or grid_method(*a))
    got = conv_module.conv(None, x, w, pad_type="same")
    assert calls == [1] and got.dtype == dtype
    expected = _reference_conv(x, w)
    tolerance = 1e-5 if dtype == np.float32 else 1e-2 * float(np.abs(expected).max())
    np.testing.assert_allclose(got.astype(np.float64), expected, rtol=1e-3, atol=tolerance)


def test_relu_against_a_zero_row_gives_the_bits_of_relu_against_zero():
    from interop_coreml.interpreter.kernels.activation import relu_into

    x = RNG.standard_normal((3, 300)).astype(np.float32)
    specials = np.array([np.nan, -np.nan, -0.0, 0.0, np.inf, -np.inf, 1e-45, -1e-45, -1e-38], np.float32)
    x[:, : specials.size] = specials
    expected = np.maximum(x, 0)
    for source in (x, x[:, 1:], x[::2], x[:, :40], x.astype(np.float64), x.T):  # vector path and the others
        got = relu_into(source, np.empty_like(source))
        bits = [np.ascontiguousarray(array).view(np.uint8) for array in (got, np.maximum(source, 0))]
        np.testing.assert_array_equal(*bits)
    in_place = x.copy()
    assert relu_into(in_place, in_place) is in_place
    np.testing.assert_array_equal(in_place.view(np.uint32), expected.view(np.uint32))


@pytest.mark.parametrize("layout", ["channel-major", "plain", "strided", "small"])
def test_relu_kernel_keeps_values_bits_and_memory_order(layout):
    from interop_coreml.interpreter.kernels.activation import relu
    from interop_coreml.interpreter.kernels.table import OpContext

    x = _inputs((2, 8, 40, 33) if layout != "small" else (3, 5))
    x.flat[::97] = -0.0
    x.flat[::89] = np.nan
    if layout == "channel-major":
        x = np.ascontiguousarray(x.swapaxes(0, 1)).swapaxes(0, 1)
    elif layout == "strided":
        x = x[:, :, ::2]
    expected = np.maximum(x, 0)
    got = relu(OpContext("relu", "r"), x)
    np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32))
    assert got.strides == np.empty_like(x).strides  # the input's memory order
    overwritten = x.copy(order="K")
    assert relu(OpContext("relu", "r", overwritable=frozenset({"x"})), overwritten) is overwritten
    np.testing.assert_array_equal(overwritten.view(np.uint32), expected.view(np.uint32))


def test_buffer_pool_hands_out_a_buffer_again_only_when_nothing_refers_to_it():
    from interop_coreml.interpreter.buffers import BufferPool

    pool = BufferPool(limit=10 << 20)
    first = pool.empty((1024, 512), np.float32)  # 2 MiB
    view = first.T[::2]
    del first
    second = pool.empty((512, 1024), np.float32)  # same size, but a view of the first is alive
    assert not np.shares_memory(second, view)
    del view
    third = pool.empty((2 << 20,), np.uint8)
    assert third.base is not None and pool.nbytes == 4 << 20  # the first buffer came back
    assert pool.empty((10,), np.float32).base is None  # small arrays are not pooled
    big = [pool.empty((1 << 20,), np.float32) for _ in range(3)]  # 4 MiB each: the third passes the limit
    assert pool.nbytes == 8 << 20
    assert big[-1].base is None


def test_results_held_from_an_earlier_run_stay_intact():
    w1, w2 = _weights(16, 8, 3, 3), _weights(16, 16, 1, 1)

    @mb.program(input_specs=[mb.TensorSpec(shape=(2, 8, 128, 128))], opset_version=ct.target.iOS17)
    def program(x):
        return mb.conv(x=mb.relu(x=mb.conv(x=x, weight=w1, pad_type="same")), weight=w2)

    loaded = Program(program)
    (name,) = [spec.name for spec in loaded.outputs]
    x1, x2 = _inputs((2, 8, 128, 128)), _inputs((2, 8, 128, 128))
    first = loaded.run({"x": x1})[name]
    kept = first.copy()
    second = loaded.run({"x": x2})[name]
    np.testing.assert_array_equal(first, kept)
    assert not np.shares_memory(first, second)
    np.testing.assert_array_equal(loaded.run({"x": x1})[name], kept)
    assert loaded._buffers.nbytes > 0  # the runs did use the pool


@pytest.mark.parametrize("x_shape, strides, pad", [
    ((3, 8, 13), (2,), (0, 0)),
    ((3, 8, 11, 13), (2, 3), (0, 0, 0, 0)),
    ((2, 8, 11, 13), (2, 2), (1, 0, 2, 1)),  # padded: the border positions see only the bias
    ((2, 8, 5, 6, 7), (2, 1, 3), (0, 1, 0, 0, 1, 1)),
    ((2, 8, 6, 7), (1, 1), (1, 1, 0, 2)),  # stride 1, padded: the padded input is the product's operand
])
@pytest.mark.parametrize("channel_major", [False, True])
def test_1x1_convolution_reads_every_stride_th_position_of_the_padded_input(monkeypatch, x_shape, strides, pad,
                                                                           channel_major):
    x = _inputs(x_shape)
    if channel_major:
        x = np.ascontiguousarray(x.swapaxes(0, 1)).swapaxes(0, 1)
    w, b = _weights(24, 8, *([1] * len(strides))), _weights(24)
    monkeypatch.setitem(threads._state, "count", 2)
    with threads.single_threaded_blas():
        result = conv_module.conv(None, x, w, b, strides=np.array(strides), pad_type="custom", pad=np.array(pad))
    padding = [(0, 0), (0, 0)] + [(pad[2 * i], pad[2 * i + 1]) for i in range(len(strides))]
    padded = np.pad(x.astype(np.float64), padding)
    picked = padded[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in strides)]
    expected = np.einsum("nc...,oc->no...", picked, w.reshape(24, 8)) + b.reshape((1, 24) + (1,) * len(strides))
    assert result.shape == expected.shape
    np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-5)
    assert result.swapaxes(0, 1).flags.c_contiguous


@pytest.mark.parametrize("epilogue", [("relu",), ("add", "relu")])
@pytest.mark.parametrize("kernel_shape, strides, groups", [((7, 7), (2, 2), 1), ((3, 3), (1, 1), 2)])
def test_narrow_im2col_products_in_sub_blocks_match_one_product_per_block(monkeypatch, epilogue, kernel_shape,
                                                                        strides, groups):
    from interop_coreml.interpreter.kernels.table import OpContext

    x = _inputs((3, 4, 11, 13))
    w, b = _weights(8, 4 // groups, *kernel_shape), _weights(8)
    out_shape = (3, 8, -(-11 // strides[0]), -(-13 // strides[1]))
    residual = _inputs(out_shape)
    context = OpContext("conv", "c", epilogue=epilogue)
    arguments = dict(weight=w, bias=b, strides=np.array(strides), pad_type="same", groups=groups,
                     fused_input=residual if "add" in epilogue else None)
    monkeypatch.setattr(conv_module, "_GRID_WASTE", 0.0)  # im2col, also for the stride-1 case
    monkeypatch.setitem(threads._state, "count", 2)
    # Sub-blocks of 3 output rows: they cross images and leave a short one at the end of a block.
    monkeypatch.setattr(conv_module, "_NARROW_BLOCK_BYTES", 4 * (4 // groups) * groups * int(np.prod(kernel_shape))
                        * out_shape[3] * 3)
    with threads.single_threaded_blas():
        sub_blocks = conv_module.conv(context, x, **arguments)
        monkeypatch.setattr(conv_module, "_NARROW_CHANNELS", 0)
        one_product = conv_module.conv(context, x, **arguments)
    expected = _with_epilogue(_reference_conv(x, w, b, strides, groups=groups), epilogue, residual)
    np.testing.assert_allclose(sub_blocks, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(sub_blocks, one_product, rtol=1e-5, atol=1e-5)
