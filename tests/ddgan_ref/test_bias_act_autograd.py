"""bias_act's eager autograd in C++ (csrc/bias_act.cpp): the graph node the extension builds on the torch version it
was written for (BiasActNode) and the torch::autograd::Function other versions build (BiasAct), both checked here:
float64 gradcheck and gradgradcheck, the reference's values and gradients, the graph's bookkeeping (a second
backward, in-place changes, forward-mode AD and vmap are refused with an error), and torch's compiled autograd."""

from __future__ import annotations

import pytest
import torch
import torch.autograd.forward_ad as fwad

from ddgan_ref.ops import ACTIVATIONS, _build, bias_act, bias_act_ref

ENTRIES = ["bias_act_autograd", "bias_act_function"]  # the extension's eager entry points (node or Function)


def entry(name: str):
    """The entry point `name` as f(x, b, dim, act, alpha, gain, clamp) with bias_act's defaults filled in."""
    fn = getattr(_build.extension("bias_act", "cpu"), name)

    def call(x, b, dim, act, alpha=None, gain=None, clamp=None):
        spec = ACTIVATIONS[act]
        b = x.new_empty(0) if b is None else b
        return fn(x, b, dim, spec.id, spec.alpha if alpha is None else alpha, spec.gain if gain is None else gain,
                  -1.0 if clamp is None else clamp)

    return call


def leaf(*shape, seed=0):
    return torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)).requires_grad_()


def test_the_graph_node_is_built_on_the_torch_it_was_written_for():
    """torch 2.14 (what CI installs) builds BiasActNode; the Function is the path of other torch versions."""
    ext = _build.extension("bias_act", "cpu")
    assert ext.autograd_node == torch.__version__.startswith("2.14.")
    x = leaf(2, 3)
    y = bias_act(x, None, 1, "lrelu", impl="cpu")
    assert (y.grad_fn.name() == "BiasActBackward") == ext.autograd_node


@pytest.mark.parametrize("name", ENTRIES)
@pytest.mark.parametrize("act,clamp", [("lrelu", None), ("silu", 0.8), ("tanh", None), ("linear", None),
                                       ("linear", 0.5)])
@pytest.mark.parametrize("wrt", ["x", "b", "xb"])
def test_entry_gradcheck_and_gradgradcheck(name, act, clamp, wrt):
    """First and second derivatives against finite differences, with gradients wanted for x, b or both."""
    x, b = leaf(3, 4, 2), leaf(4, seed=1)
    x.requires_grad_("x" in wrt)
    b.requires_grad_("b" in wrt)
    fn = lambda x, b: entry(name)(x, b, 1, act, clamp=clamp)
    assert torch.autograd.gradcheck(fn, (x, b))
    assert torch.autograd.gradgradcheck(fn, (x, b))


@pytest.mark.parametrize("name", ENTRIES)
@pytest.mark.parametrize("act", ["lrelu", "sigmoid", "elu"])
@pytest.mark.parametrize("bias", [True, False])
def test_entry_matches_ref_to_second_order(name, act, bias):
    """Values, gradients and the gradient of a gradient penalty (R1's shape: d/dx |dy/dx|^2) against the reference."""
    x, b = leaf(4, 3, 5, 5), leaf(3, seed=1) if bias else None
    dy = torch.randn(4, 3, 5, 5, dtype=torch.float64)
    inputs = [x] + ([b] if bias else [])
    results = []
    for fn in (entry(name), bias_act_ref):
        y = fn(x, b, 1, act)
        grads = torch.autograd.grad(y, inputs, dy, create_graph=True)
        penalty = sum(g.square().sum() for g in grads)
        results.append([y, *grads, *torch.autograd.grad(penalty, inputs, allow_unused=True, materialize_grads=True)])
    for got, want in zip(*results, strict=True):
        torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("name", ENTRIES)
def test_entry_refuses_a_second_backward_and_in_place_changes(name):
    x, b = leaf(2, 3), leaf(3, seed=1)
    y = entry(name)(x, b, 1, "lrelu")
    torch.autograd.grad(y.sum(), [x, b], retain_graph=True)
    torch.autograd.grad(y.sum(), [x, b])  # the graph was kept once; this pass frees it
    with pytest.raises(RuntimeError, match="second time"):
        torch.autograd.grad(y.sum(), [x, b])
    h = x * 1  # not a leaf, so it may be changed in place
    y = entry(name)(h, b, 1, "silu")
    h.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        torch.autograd.grad(y.sum(), [x, b])


@pytest.mark.parametrize("name", ENTRIES)
def test_entry_without_grad_builds_no_graph(name):
    x, b = leaf(2, 3), leaf(3, seed=1)
    with torch.no_grad():
        y = entry(name)(x, b, 1, "lrelu")
    assert y.grad_fn is None and not y.requires_grad
    with torch.inference_mode():
        assert not entry(name)(x, b, 1, "lrelu").requires_grad


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")  # from inside torch.func
@pytest.mark.parametrize("name", ENTRIES)
def test_entry_refuses_forward_mode_ad_and_vmap(name):
    """No forward-mode derivative is implemented: a dual input raises instead of losing its tangent; functorch
    transforms raise too (impl='ref' supports both)."""
    x, b = torch.randn(2, 3), torch.randn(3)
    with fwad.dual_level(), pytest.raises(RuntimeError, match="forward-mode|jvp"):
        entry(name)(fwad.make_dual(x, torch.ones_like(x)), b, 1, "lrelu")
    with pytest.raises(RuntimeError, match="functorch|C\\+\\+ Function"):
        torch.func.vmap(lambda t: entry(name)(t, b, 0, "lrelu"))(x)


def compiled_autograd():
    """torch's compiled autograd on, compiling the backward graph with the eager backend (no C compiler involved)."""
    from torch._dynamo import compiled_autograd as ca

    return ca._enable(torch.compile(backend="eager"))


def test_compiled_autograd_runs_an_eager_bias_act_built_inside_it():
    """With compiled autograd on, eager bias_act builds the torch::autograd::Function node, which its tracer
    takes; the gradients equal the plain eager ones."""
    x, b = leaf(4, 6), leaf(6, seed=1)
    want = torch.autograd.grad(bias_act(x, b, 1, "silu", impl="cpu").square().sum(), [x, b])
    x.grad = b.grad = None
    torch._dynamo.reset()
    with compiled_autograd():
        bias_act(x, b, 1, "silu", impl="cpu").square().sum().backward()
    for got, expected in zip((x.grad, b.grad), want, strict=True):
        torch.testing.assert_close(got, expected, atol=1e-12, rtol=1e-12)


def test_compiled_autograd_explains_a_graph_node_built_before_it_was_on():
    ext = _build.extension("bias_act", "cpu")
    if not ext.autograd_node:
        pytest.skip("this torch builds the Function node, which compiled autograd takes")
    x, b = leaf(4, 6), leaf(6, seed=1)
    y = bias_act(x, b, 1, "lrelu", impl="cpu")
    torch._dynamo.reset()
    with compiled_autograd(), pytest.raises(NotImplementedError, match="compiled autograd cannot trace"):
        y.sum().backward()
