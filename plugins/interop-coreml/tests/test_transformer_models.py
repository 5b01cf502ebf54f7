"""Transformer-era models to Core ML, as a user would do it: ``.pt2 → ONNX → .mlpackage``, then ``interop check``.

Each model is built from a small ``transformers`` config with random weights (nothing is
downloaded: ``HF_HUB_OFFLINE=1``), exported with ``torch.export`` with a dynamic batch and
sequence length, converted by ``interop convert x.pt2 -o x.onnx`` and ``interop convert
x.onnx -o x.mlpackage`` (in-process, through the CLI), and checked against the PyTorch program
by ``interop check x.pt2 x.mlpackage`` at two batch sizes for each of two sequence lengths.
Swin-style shifted-window attention, whose window partitioning reshapes to rank 6, is a small
module written here (torchvision does not install next to the CPU torch); its "sequence" is
the height and width of the feature map.

A ViT and a Whisper encoder have a sequence length fixed by their configuration (the image
size, and Whisper's 2 × max_source_positions mel frames): only their batch is dynamic.

Known exporter limits the models stay clear of: torch.onnx builds a wrong causal mask for
left padding (masks here are right-padded), and a ``.pt2`` with a derived dim (``2 * seq``)
does not export, so every dynamic dim is a plain ``Dim``.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
from dataclasses import dataclass, field

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers is imported: never reach the hub

import torch  # noqa: E402
import transformers  # noqa: E402 - a declared test dependency (the root pyproject's test extra)
from torch import nn  # noqa: E402
from torch.export import Dim  # noqa: E402

VOCAB = 96
BATCH_SIZES = "1,3"  # each check feeds a run of 1 sample, then a run of 3


@dataclass
class Case:
    """A model, its example inputs, the dims torch.export keeps dynamic and the shapes to check."""

    module: nn.Module
    example: dict[str, torch.Tensor]
    dynamic: dict[str, dict[int, Dim]]
    coreml_shape: str  # the -O input_shape given to the Core ML converter
    check_shapes: list[str]  # one `--input-shape` per check (batch, then the sequence length)
    right_padded_mask: bool = False  # feed attention masks of the form 1…1 0…0 (via --inputs)
    extra_check_args: list[str] = field(default_factory=list)


class _Outputs(nn.Module):
    """A transformers model as a function of its named inputs, returning one tensor."""

    def __init__(self, model: nn.Module, output: str):
        super().__init__()
        self.model, self.output = model, output

    def forward(self, input_ids, attention_mask):
        return getattr(self.model(input_ids=input_ids, attention_mask=attention_mask), self.output)


class _Single(nn.Module):
    def __init__(self, model: nn.Module, argument: str, output: str = "last_hidden_state"):
        super().__init__()
        self.model, self.argument, self.output = model, argument, output

    def forward(self, x):
        return getattr(self.model(**{self.argument: x}), self.output)


def _text_case(model: nn.Module, output: str = "last_hidden_state", decoder: bool = False) -> Case:
    model.eval()
    batch, seq = Dim("batch", min=1, max=8), Dim("sequence", min=2, max=32)
    ids = torch.randint(0, VOCAB, (2, 8))
    mask = torch.ones(2, 8, dtype=torch.long)
    return Case(
        _Outputs(model, output), {"input_ids": ids, "attention_mask": mask},
        {"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}},
        "input_ids=1..8,2..32", ["input_ids=3,5", "input_ids=3,16"], right_padded_mask=decoder,
    )


_SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)


def bert() -> Case:
    return _text_case(transformers.BertModel(
        transformers.BertConfig(vocab_size=VOCAB, max_position_embeddings=64, **_SMALL), add_pooling_layer=False))


def distilbert() -> Case:
    config = transformers.DistilBertConfig(vocab_size=VOCAB, max_position_embeddings=64, dim=32, n_layers=2,
                                           n_heads=4, hidden_dim=64)
    return _text_case(transformers.DistilBertModel(config))


def roberta() -> Case:
    # RoBERTa's position ids count non-padding tokens (CumSum over the mask), offset by padding_idx.
    config = transformers.RobertaConfig(vocab_size=VOCAB, max_position_embeddings=64, pad_token_id=1, **_SMALL)
    return _text_case(transformers.RobertaModel(config, add_pooling_layer=False))


def gpt2() -> Case:
    config = transformers.GPT2Config(vocab_size=VOCAB, n_positions=64, n_embd=32, n_layer=2, n_head=4,
                                     use_cache=False)
    return _text_case(transformers.GPT2LMHeadModel(config), output="logits", decoder=True)


def llama_config() -> transformers.LlamaConfig:
    # Grouped-query attention (4 query heads share 2 K/V heads) and rotary position embeddings.
    return transformers.LlamaConfig(vocab_size=VOCAB, max_position_embeddings=64, num_key_value_heads=2,
                                    use_cache=False, **_SMALL)


def llama() -> Case:
    return _text_case(transformers.LlamaForCausalLM(llama_config()), output="logits", decoder=True)


def albert() -> Case:
    # Factorized embeddings (a 16-wide table projected to the hidden size), one layer's weights shared.
    config = transformers.AlbertConfig(vocab_size=VOCAB, embedding_size=16, max_position_embeddings=64, **_SMALL)
    return _text_case(transformers.AlbertModel(config, add_pooling_layer=False))


def qwen2() -> Case:
    config = transformers.Qwen2Config(vocab_size=VOCAB, max_position_embeddings=64, num_key_value_heads=2,
                                      use_cache=False, **_SMALL)
    return _text_case(transformers.Qwen2ForCausalLM(config), output="logits", decoder=True)


def vit() -> Case:
    config = transformers.ViTConfig(image_size=16, patch_size=4, num_channels=3, **_SMALL)
    model = transformers.ViTModel(config, add_pooling_layer=False).eval()
    return Case(_Single(model, "pixel_values"), {"x": torch.randn(2, 3, 16, 16)},
                {"x": {0: Dim("batch", min=1, max=8)}}, "x=1..8,3,16,16",
                ["x=3,3,16,16"])


def whisper_encoder() -> Case:
    config = transformers.WhisperConfig(num_mel_bins=16, max_source_positions=16, d_model=32, encoder_layers=2,
                                        encoder_attention_heads=4, encoder_ffn_dim=64, decoder_layers=1,
                                        decoder_attention_heads=4, decoder_ffn_dim=64, vocab_size=VOCAB,
                                        pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1)
    model = transformers.WhisperModel(config).get_encoder().eval()
    return Case(_Single(model, "input_features"), {"x": torch.randn(2, 16, 32)},
                {"x": {0: Dim("batch", min=1, max=8)}}, "x=1..8,16,32", ["x=3,16,32"])


def t5_encoder() -> Case:
    # Relative-position buckets (log-spaced, computed from the run's sequence length) added to the scores
    # as a dense attn_mask, which torch.onnx's own decomposition could not export with dynamic dims.
    config = transformers.T5Config(vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4)
    return _text_case(transformers.T5EncoderModel(config))


def convbert() -> Case:
    # Span-based dynamic convolution: nn.Unfold over the sequence, which torch.onnx writes as a Gather to rank 6.
    config = transformers.ConvBertConfig(vocab_size=VOCAB, max_position_embeddings=64, embedding_size=32, **_SMALL)
    return _text_case(transformers.ConvBertModel(config))


def hf_swin() -> Case:
    # transformers' Swin (patch merging, shifted windows, a relative-position bias as attn_mask).
    config = transformers.SwinConfig(image_size=32, patch_size=2, embed_dim=16, depths=[1, 1], num_heads=[2, 4],
                                     window_size=4)
    model = transformers.SwinModel(config, add_pooling_layer=False).eval()
    return Case(_Single(model, "pixel_values"), {"x": torch.randn(2, 3, 32, 32)},
                {"x": {0: Dim("batch", min=1, max=8)}}, "x=1..8,3,32,32", ["x=3,3,32,32"])


class ShiftedWindowAttention(nn.Module):
    """Swin-T's shifted-window self-attention (as torchvision writes it), on a (B, H, W, C) map.

    The map is padded to whole windows, rolled by half a window, partitioned into windows
    (a rank-6 view), attended within each window with a learned relative-position bias and
    the shifted-window mask, merged back, rolled back and cropped.
    """

    def __init__(self, dim: int = 32, heads: int = 4, window: int = 4, shift: int = 2):
        super().__init__()
        self.heads, self.window, self.shift = heads, window, shift
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.bias_table = nn.Parameter(torch.randn((2 * window - 1) ** 2, heads) * 0.02)
        coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
        relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
        self.register_buffer("bias_index", (relative[..., 0] * (2 * window - 1) + relative[..., 1]).flatten())

    def forward(self, x):
        b, h, w, c = x.shape
        win, shift, heads = self.window, self.shift, self.heads
        # Pad to whole windows (the padded size written as windows × window, as it divides).
        rows, cols = (h + win - 1) // win, (w + win - 1) // win
        x = nn.functional.pad(x, (0, 0, 0, cols * win - w, 0, rows * win - h))
        x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
        windows = x.view(b, rows, win, cols, win, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, win * win, c)
        qkv = self.qkv(windows).reshape(windows.size(0), win * win, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * (c // heads) ** -0.5, qkv[1], qkv[2]
        attention = q @ k.transpose(-2, -1)
        bias = self.bias_table[self.bias_index].view(win * win, win * win, heads).permute(2, 0, 1)
        attention = attention + bias.unsqueeze(0)
        # Windows that straddle the roll's seam attend only within their own region.
        region = x.new_zeros((rows * win, cols * win))
        count = 0
        for hs in ((0, -win), (-win, -shift), (-shift, None)):
            for ws in ((0, -win), (-win, -shift), (-shift, None)):
                region[hs[0]:hs[1], ws[0]:ws[1]] = count
                count += 1
        region = region.view(rows, win, cols, win).permute(0, 2, 1, 3).reshape(-1, win * win)
        mask = torch.where((region.unsqueeze(1) - region.unsqueeze(2)) != 0, -100.0, 0.0)
        attention = attention.view(b, rows * cols, heads, win * win, win * win) + mask[None, :, None]
        attention = attention.view(-1, heads, win * win, win * win).softmax(-1)
        y = self.proj((attention @ v).transpose(1, 2).reshape(-1, win * win, c))
        y = y.view(b, rows, cols, win, win, c).permute(0, 1, 3, 2, 4, 5).reshape(b, rows * win, cols * win, c)
        y = torch.roll(y, shifts=(shift, shift), dims=(1, 2))
        return y[:, :h, :w, :].contiguous()


def swin_window_attention() -> Case:
    torch.manual_seed(0)
    module = ShiftedWindowAttention().eval()
    # Dim.DYNAMIC, not a named Dim: torch.export cannot prove facts such as h <= 4 * ((h + 3) // 4) and
    # refuses a named Dim for it (suggesting height = 4 * _h, a derived dim, which torch.onnx cannot export
    # from a .pt2); Dim.DYNAMIC keeps the dims dynamic in the declared range.
    size = Dim.DYNAMIC(min=5, max=32)
    return Case(module, {"x": torch.randn(2, 8, 8, 32)}, {"x": {0: Dim("batch", min=1, max=8), 1: size, 2: size}},
                "x=1..8,5..32,5..32,32", ["x=3,8,8,32", "x=3,10,7,32"])


MODELS = {
    "bert": bert, "distilbert": distilbert, "roberta": roberta, "gpt2": gpt2, "llama": llama,
    "vit": vit, "whisper-encoder": whisper_encoder, "swin-window-attention": swin_window_attention,
}
#: More of the same patterns, for `make test-extended`.
EXTENDED_MODELS = {"albert": albert, "qwen2": qwen2, "t5-encoder": t5_encoder, "hf-swin": hf_swin,
                   "convbert": convbert}


def export_pt2(case: Case, path: pathlib.Path) -> pathlib.Path:
    torch.manual_seed(0)
    program = torch.export.export(case.module, tuple(case.example.values()), dynamic_shapes=case.dynamic)
    torch.export.save(program, str(path))  # as a user saves it (Dim.DYNAMIC's marked example inputs too)
    return path


def right_padded_inputs(path: pathlib.Path, shape: str, samples: int, seed: int = 0) -> pathlib.Path:
    """An .npz of token ids and right-padded attention masks (every row keeps at least one token)."""
    batch, length = (int(v) for v in shape.split("=")[1].split(","))
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, VOCAB, (samples, length)).astype(np.int64)
    kept = rng.integers(1, length + 1, samples)
    mask = (np.arange(length)[None, :] < kept[:, None]).astype(np.int64)
    np.savez(path, input_ids=ids, attention_mask=mask)
    return path


def convert_and_check(name: str, case: Case, folder: pathlib.Path, run_cli) -> list[dict]:
    pt2 = export_pt2(case, folder / f"{name}.pt2")
    onnx_path, package = folder / f"{name}.onnx", folder / f"{name}.mlpackage"
    code, out, err = run_cli("convert", pt2, "-o", onnx_path)
    assert code == 0, err
    code, out, err = run_cli("convert", onnx_path, "-o", package, "-O", f"input_shape={case.coreml_shape}")
    assert code == 0, err
    reports = []
    for index, shape in enumerate(case.check_shapes):
        report = folder / f"check{index}.json"
        args = ["check", pt2, package, "--input-shape", shape, "--batch-sizes", BATCH_SIZES, "--samples", "4",
                "--json-file", report, *case.extra_check_args]
        if case.right_padded_mask:
            args += ["--inputs", right_padded_inputs(folder / f"inputs{index}.npz", shape, samples=4, seed=index)]
        code, out, err = run_cli(*args)
        assert code == 0, out + err
        reports.append(json.loads(report.read_text()))
    return reports


def _dynamic_input_dims(package: pathlib.Path) -> dict[str, list[tuple[int, int]]]:
    """{input: [(lower, upper) per dim]} from the saved package's spec."""
    import coremltools as ct

    spec = ct.utils.load_spec(str(package))
    dims = {}
    for feature in spec.description.input:
        array = feature.type.multiArrayType
        dims[feature.name] = [(r.lowerBound, r.upperBound) for r in array.shapeRange.sizeRanges]
    return dims


_EXTENDED = [pytest.mark.extended, pytest.mark.skipif(os.environ.get("INTEROP_EXTENDED") != "1",
                                                     reason="more models: run `make test-extended`")]


@pytest.mark.slow
@pytest.mark.parametrize("name", [*MODELS, *(pytest.param(n, marks=_EXTENDED) for n in EXTENDED_MODELS)])
def test_transformer_converts_with_dynamic_batch_and_sequence(name, tmp_path, run_cli):
    case = {**MODELS, **EXTENDED_MODELS}[name]()
    reports = convert_and_check(name, case, tmp_path, run_cli)
    checked_shapes = set()
    for report in reports:
        (pair,) = report["pairs"]
        assert pair["passed"], pair
        assert pair["engine"] == "coreml (reference interpreter)"
        for output in pair["outputs"]:
            assert output["passed"], output
            assert output["max_abs"] < 1e-3, output
    # The package accepts every size in the declared ranges: batch 1..8 on each input.
    for input_name, ranges in _dynamic_input_dims(tmp_path / f"{name}.mlpackage").items():
        assert ranges[0] == (1, 8), (input_name, ranges)
        checked_shapes.add(input_name)
    assert checked_shapes == set(case.example)


def test_decoder_next_token_matches_pytorch_on_20_prompts(tmp_path, run_cli):
    """Llama (causal mask, GQA, RoPE) on Core ML predicts PyTorch's next token for 20 random prompts.

    The prompts have random lengths and go in five right-padded batches of four, so the causal mask
    and the padding mask both decide which positions each token sees; the next token is read at each
    prompt's last real position.
    """
    from interop_coreml.runtime import load_interpreter

    torch.manual_seed(1)
    model = transformers.LlamaForCausalLM(llama_config()).eval()
    case = _text_case(model, output="logits", decoder=True)
    pt2 = export_pt2(case, tmp_path / "llama.pt2")
    onnx_path, package = tmp_path / "llama.onnx", tmp_path / "llama.mlpackage"
    assert run_cli("convert", pt2, "-o", onnx_path)[0] == 0
    assert run_cli("convert", onnx_path, "-o", package, "-O", f"input_shape={case.coreml_shape}")[0] == 0
    session = load_interpreter(package)

    rng = np.random.default_rng(20)
    agreed, prompts, worst = 0, 0, 0.0
    for _ in range(5):
        lengths = rng.integers(2, 25, 4)
        width = int(lengths.max())
        ids = rng.integers(0, VOCAB, (4, width)).astype(np.int64)
        mask = (np.arange(width)[None, :] < lengths[:, None]).astype(np.int64)
        ours = session.run({"input_ids": ids, "attention_mask": mask})["output"]
        with torch.no_grad():
            reference = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).logits.numpy()
        for row, length in enumerate(lengths):
            last_ours, last_reference = ours[row, length - 1], reference[row, length - 1]
            worst = max(worst, float(np.max(np.abs(last_ours - last_reference))))
            agreed += int(np.argmax(last_ours) == np.argmax(last_reference))
            prompts += 1
    assert prompts == 20
    assert agreed == 20, f"next token agrees on {agreed} of 20 prompts"
    assert worst < 1e-4, worst
