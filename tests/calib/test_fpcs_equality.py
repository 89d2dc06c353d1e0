"""The fast FPCS chooses exactly the parameters of the straightforward one (every candidate scored
on its own), for every layer search, on small random layers of several shapes, widths and seeds.

Each test also checks the evidence for the selection's radii: every fast score that was re-scored
used less than a tenth of its stated radius.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from calib.fpcs import (
    SearchContext,
    search_attention_value,
    search_gelu_fc2,
    search_linear,
    search_patch_embedding,
    search_post_layernorm_linear,
    search_query_key,
)


def flatten(result) -> list:
    """Every tensor and number of a (nested) result dataclass, in field order."""
    if isinstance(result, torch.Tensor):
        return [result]
    if dataclasses.is_dataclass(result):
        return [item for field in dataclasses.fields(result) for item in flatten(getattr(result, field.name))]
    if isinstance(result, tuple):
        return [item for part in result for item in flatten(part)]
    return [result]


def both(search) -> tuple:
    fast_context, slow_context = SearchContext(fast=True), SearchContext(fast=False)
    fast, slow = search(fast_context), search(slow_context)
    return fast, slow, fast_context


def assert_same(fast, slow, context) -> None:
    for a, b in zip(flatten(fast), flatten(slow), strict=True):
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b), (a, b)
        else:
            assert a == b
    assert context.stats.worst_radius_use < 0.1


def linear_layer(seed: int, tokens: int, features: int, outputs: int):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(3, tokens, features, generator=generator) * (1 + seed % 3)
    weight = torch.randn(outputs, features, generator=generator) * 0.2
    bias = torch.randn(outputs, generator=generator) * 0.1
    return x, F.linear(x, weight, bias), weight, bias


@pytest.mark.parametrize("bits,seed,shape", [(4, 0, (9, 16, 12)), (3, 1, (7, 12, 20)), (6, 2, (5, 20, 8))])
def test_linear(bits, seed, shape):
    x, raw, weight, bias = linear_layer(seed, *shape)
    fast, slow, context = both(lambda c: search_linear(x, raw, weight, bias, bits, bits, c))
    assert_same(fast, slow, context)


def test_linear_without_token_axis():
    x, raw, weight, bias = linear_layer(3, 1, 16, 10)
    x, raw = x[:, 0], raw[:, 0]  # the classifier head: (images, features)
    fast, slow, context = both(lambda c: search_linear(x, raw, weight, bias, 4, 4, c))
    assert_same(fast, slow, context)


@pytest.mark.parametrize("bits,seed", [(4, 4), (6, 5)])
def test_post_layernorm_linear(bits, seed):
    x, raw, weight, bias = linear_layer(seed, 8, 16, 24)
    generator = torch.Generator().manual_seed(seed)
    ln_weight, ln_bias = torch.rand(16, generator=generator) + 0.5, torch.randn(16, generator=generator) * 0.1
    x = x * torch.rand(16, generator=generator) * 3  # channels of different ranges, as after LayerNorm
    fast, slow, context = both(
        lambda c: search_post_layernorm_linear(x, raw, weight, bias, ln_weight, ln_bias, bits, bits, c)
    )
    assert_same(fast, slow, context)


@pytest.mark.parametrize(
    "bits,seed,shape",
    [(4, 6, (3, 8, 24, 10)), (3, 7, (3, 8, 24, 10)), (4, 11, (4, 20, 32, 16)), (3, 12, (2, 30, 40, 24))],
)
def test_gelu_fc2(bits, seed, shape):
    # The larger shapes use every route of the fast score: exact int8 planes, float64 products and
    # sparse updates of pooled bases; (4, 11) keeps its weights between rounds (a reused objective).
    images, tokens, features, outputs = shape
    generator = torch.Generator().manual_seed(seed)
    x = F.gelu(torch.randn(images, tokens, features, generator=generator) * (1 + seed % 2))
    weight = torch.randn(outputs, features, generator=generator) * 0.2
    bias = torch.randn(outputs, generator=generator) * 0.1
    fast, slow, context = both(
        lambda c: search_gelu_fc2(x, F.linear(x, weight, bias), weight, bias, bits, bits, c)
    )
    assert_same(fast, slow, context)


@pytest.mark.parametrize("bits,seed,per_head", [(4, 8, True), (3, 9, True), (4, 10, False)])
def test_query_key(bits, seed, per_head):
    generator = torch.Generator().manual_seed(seed)
    q, k = torch.randn(2, 2, 11, 6, generator=generator), torch.randn(2, 2, 11, 6, generator=generator) * 2
    raw = q @ k.transpose(-1, -2)
    fast, slow, context = both(lambda c: search_query_key(q, k, raw, bits, c, per_head))
    assert_same(fast, slow, context)


@pytest.mark.parametrize("bits,seed,per_head", [(4, 11, True), (6, 12, True), (4, 13, False)])
def test_attention_value(bits, seed, per_head):
    generator = torch.Generator().manual_seed(seed)
    scores = torch.randn(2, 2, 10, 10, generator=generator) * 3
    attention, v = scores.softmax(dim=-1), torch.randn(2, 2, 10, 6, generator=generator)
    fast, slow, context = both(
        lambda c: search_attention_value(attention, v, attention @ v, bits, bits, c, per_head)
    )
    assert_same(fast, slow, context)


def test_patch_embedding():
    generator = torch.Generator().manual_seed(14)
    patches, weight = torch.randn(3, 4, 12, generator=generator), torch.randn(6, 3, 2, 2, generator=generator)
    bias = torch.randn(6, generator=generator)
    raw = F.linear(patches, weight.reshape(6, -1), bias)
    fast, slow, context = both(lambda c: search_patch_embedding(patches, raw, weight, bias, 4, c))
    assert_same(fast, slow, context)
