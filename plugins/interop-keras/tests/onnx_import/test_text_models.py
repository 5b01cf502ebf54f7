"""Keras text models (Embedding, attention, masks) through keras -> onnx (tf2onnx) -> keras.

tf2onnx writes Embedding's negative-index handling, ``mask_zero`` masks, causal masks
(``ones_like`` as Expand of a constant to a computed shape) and ``keras.ops.where``
and ``Masking`` with comparisons, logic and casts to and from bool, and MultiHeadAttention's einsums
with shape arithmetic that merges batch and heads. Each model goes the user's way
(``interop.convert`` twice), passes ``interop.check`` against the original Keras
model and onnxruntime, loads through interop's safety check and Keras' safe mode, has as
many trainable weights as the original, each with a gradient, and one SGD step lowers a loss.
"""

from __future__ import annotations

import numpy as np
import pytest

import interop

from .test_models import one_step_lowers_the_loss

pytestmark = pytest.mark.slow


def _transformer_classifier():
    """The model of the bug report: Embedding, MultiHeadAttention, residual LayerNorms, pooling."""
    import keras
    from keras import layers

    tok = keras.Input((16,), dtype="int32", name="tokens")
    x = layers.Embedding(50, 32)(tok)
    a = layers.MultiHeadAttention(num_heads=4, key_dim=8)(x, x)
    x = layers.LayerNormalization()(x + a)
    f = layers.Dense(64, activation="relu")(x)
    x = layers.LayerNormalization()(x + layers.Dense(32)(f))
    x = layers.GlobalAveragePooling1D()(x)
    return keras.Model(tok, layers.Dense(3, name="logits")(x))


def _masked_average():
    """Embedding(mask_zero=True): GlobalAveragePooling1D averages over the nonzero tokens only."""
    import keras
    from keras import layers

    tok = keras.Input((12,), dtype="int32", name="tokens")
    x = layers.GlobalAveragePooling1D()(layers.Embedding(30, 16, mask_zero=True)(tok))
    return keras.Model(tok, layers.Dense(4, name="logits")(x))


def _causal_attention_with_padding_mask():
    """Causal self-attention whose padding mask comes from Embedding(mask_zero=True)."""
    import keras
    from keras import layers

    tok = keras.Input((8,), dtype="int32", name="tokens")
    x = layers.Embedding(40, 16, mask_zero=True)(tok)
    a = layers.MultiHeadAttention(num_heads=2, key_dim=8)(x, x, use_causal_mask=True)
    x = layers.GlobalMaxPooling1D()(layers.LayerNormalization()(x + a))
    return keras.Model(tok, layers.Dense(2, name="logits")(x))


def _ops_where():
    """keras.ops.where over comparisons and logical_and in a functional model."""
    import keras
    from keras import layers, ops

    inp = keras.Input((10,), name="x")
    h = layers.Dense(10)(inp)
    inside = ops.logical_and(ops.greater(h, -0.5), ops.less(h, 0.5))
    w = ops.where(inside, ops.multiply(h, 2.0), ops.where(ops.equal(h, 0.0), 1.0, ops.negative(h)))
    return keras.Model(inp, layers.Dense(3, name="logits")(w))


def _masking():
    """keras.layers.Masking: time steps equal to the mask value drop out of the average."""
    import keras
    from keras import layers

    inp = keras.Input((6, 4), name="x")
    x = layers.GlobalAveragePooling1D()(layers.Dense(8, activation="relu")(layers.Masking(mask_value=0.0)(inp)))
    return keras.Model(inp, layers.Dense(2, name="logits")(x))


MODELS = {"transformer_classifier": _transformer_classifier, "masked_average": _masked_average,
          "causal_attention_with_padding_mask": _causal_attention_with_padding_mask, "ops_where": _ops_where,
          "masking": _masking}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_keras_text_model_round_trips_through_onnx(name, tmp_path):
    import keras

    from interop_keras.loading import load_keras_model

    keras.utils.set_random_seed(0)
    original = MODELS[name]()
    source = tmp_path / "model.keras"
    original.save(source)
    exported = tmp_path / "model.onnx"
    interop.convert(source, exported)
    imported = tmp_path / "imported.keras"
    interop.convert(exported, imported)
    report = interop.check(source, [imported, exported], batch_sizes=(1, 5))
    assert report.passed, report.to_dict()
    loaded = load_keras_model(imported)  # interop's safety check, then keras.saving.load_model(safe_mode=True)
    count = int(sum(int(np.prod(w.shape)) for w in loaded.trainable_weights))
    assert count == int(sum(int(np.prod(w.shape)) for w in original.trainable_weights))
    if name in ("ops_where", "masking"):
        x = np.random.default_rng(0).standard_normal((4, *original.input.shape[1:])).astype(np.float32)
        if name == "masking":
            x[:, 2:4] = 0.0  # masked time steps, which random inputs never have
    else:  # integer token ids, zeros (padding) and a negative id among them
        x = np.array([[3, 0, 7, -1] + [0] * (original.input.shape[1] - 4)], np.int32)
        x = np.concatenate([x, np.arange(1, x.shape[1] + 1, dtype=np.int32)[None] % 9])
    got = np.asarray(loaded(x if not isinstance(loaded.input, dict) else {original.input.name: x}))
    np.testing.assert_allclose(got, np.asarray(original(x)), rtol=1e-4, atol=1e-5)
    one_step_lowers_the_loss(loaded, x, training=True)  # every trainable weight gets a gradient


def test_torch_transformer_encoder_layer_is_routed_through_onnx_into_keras(tmp_path):
    """torch.onnx writes attention's batch * heads as Shape * heads (symbolic arithmetic the import resolves)."""
    torch = pytest.importorskip("torch")

    class Classifier(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = torch.nn.Embedding(30, 16)
            self.encoder = torch.nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
            self.head = torch.nn.Linear(16, 3)

        def forward(self, tokens):
            return self.head(self.encoder(self.embedding(tokens)).mean(1))

    torch.manual_seed(0)
    model = Classifier().eval()
    with torch.no_grad():  # as if trained: torch.onnx shares initializers that are equal (fresh LayerNorms, zero biases)
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    tokens = torch.randint(0, 30, (2, 7))
    program = torch.export.export(model, (tokens,), dynamic_shapes=({0: torch.export.Dim("batch", max=1024)},))
    source = tmp_path / "model.pt2"
    torch.export.save(program, source)
    result = interop.convert(source, tmp_path / "model.keras")
    assert result.route == ["torch", "onnx", "keras"]
    report = interop.check(source, [tmp_path / "model.keras"], batch_sizes=(1, 5))
    assert report.passed, report.to_dict()
    from interop_keras.loading import load_keras_model

    loaded = load_keras_model(tmp_path / "model.keras")
    count = int(sum(int(np.prod(w.shape)) for w in loaded.trainable_weights))
    assert count == sum(p.numel() for p in model.parameters())
