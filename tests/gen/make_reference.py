#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Reference data for tests/test_reference_torch.c: the Siamese network of docs/reference.md, built in
PyTorch on fixed weights and inputs, with its loss, every gradient and three Adam steps.

Regenerate (from the repository root; needs PyTorch >= 1.13 and numpy, no GPU):

    python3 tests/gen/make_reference.py            # writes tests/data/reference_<case>.bin
    python3 tests/gen/make_reference.py DIR gn     # only the named cases, into DIR

The output is deterministic for a given PyTorch version (a fixed generator seed per case);
commit the .bin files together with any change to this script. The script refuses data that
are ill-conditioned for a float32 check (see the float32 guard in make_case): if a change of
PyTorch version or of a case trips it, pick another seed in CASES. Bump VERSION when the layout
below changes; the C test refuses other versions.

What is computed (docs/reference.md), per case:
    F = sigmoid(subnet(x)); D = |F1 - F2|; z = D . w + b; s = clamp(sigmoid(z), eps, 1 - eps)
    with eps = 2^-23; loss = mean over pairs of -(y log s + (1 - y) log(1 - s)); backward to every
    parameter; then 3 Adam updates on the same batch with the reference's form
        m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
        p -= lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps_adam)
    (NOT torch.optim.Adam, which puts eps inside the bias correction differently).
The network and inputs are float32 values; the arithmetic is done in float64 so that the
expected numbers are the float32 network's exact results (rounded once when stored), and the
test measures only libsiamese's own rounding. The script also runs the same computation in
float32 torch and prints how far that lands from float64, for comparison.

Weights are NOT the narrow N(0, 0.01^2) init: each layer is drawn from N(0, s^2) with
s = sqrt(2 / fan_in) (biases: s = 0.1), and the head from a wider normal, so that activations are
O(1), features differ between images and the scores spread over (0, 1); with the narrow init
every gradient would be tiny and the check would prove little. GroupNorm layers ("gnG",
F.group_norm with eps 1e-5, as torch.nn.GroupNorm(G, C)) get weights 1 + N(0, 0.2^2) and biases
N(0, 0.1^2) rather than their 1 and 0 init, so that a wrong affine step cannot hide; the cases
without GroupNorm draw exactly what they drew before it existed (their files are unchanged).

File layout (little-endian):
    char[8]  magic "SMREF001"
    u32      format version (VERSION)
    u32      L, then L bytes: the arch string (no NUL)
    u32      n_pairs, channels, height, width
    u32      n_subnet_params P, n_head_params Q (= feature dim + 1), n_steps S
    f64      lr, beta1, beta2, eps (Adam)
    f32[P]   subnet params (state_dict order: per conv/fc/gn layer weight then bias)
    f32[Q]   head params (weights then bias)
    f32[N*C*H*W] left images, f32[N*C*H*W] right images, f32[N] labels
    f32[1]   loss at the initial params
    f32[P]   subnet gradients, f32[Q] head gradients (at the initial params)
    f32[S]   loss before each of the S Adam updates
    f32[P]   subnet params after S updates, f32[Q] head params after S updates
    char[8]  end marker "SMREFEND"
"""
import math
import os
import struct
import sys

import torch
import torch.nn.functional as F

MAGIC = b"SMREF001"
END = b"SMREFEND"
VERSION = 1
CLIP_EPS = 2.0 ** -23
LR, BETA1, BETA2, ADAM_EPS = 1e-3, 0.9, 0.99, 1e-8
N_STEPS = 3

CASES = [
    # name, arch, pairs, seed
    ("small", "1x20x20:conv6k5,relu,pool2,conv8k3,relu,pool2,conv8k2,relu,flatten,fc16", 6, 1),
    ("koch_like", "1x105x105:conv8k10,relu,pool2,conv16k7,relu,pool2,conv16k4,relu,pool2,"
                  "conv32k5,relu,flatten,fc64", 4, 9),
    # GroupNorm (0.4): two channels a group before relu + pool, four after the second conv
    ("gn", "1x12x12:conv8k3,gn4,relu,pool2,conv8k3,gn2,relu,flatten,fc16", 6, 3),
]


def parse_arch(text):
    """(C, H, W), [(kind, a, b)] from libsiamese's textual arch form."""
    shape, layers = text.split(":")
    c, h, w = (int(v) for v in shape.split("x"))
    out = []
    for tok in layers.split(","):
        if tok.startswith("conv"):
            k, ks = tok[4:].split("k")
            out.append(("conv", int(k), int(ks)))
        elif tok == "relu":
            out.append(("relu", 0, 0))
        elif tok.startswith("pool"):
            out.append(("pool", int(tok[4:]), 0))
        elif tok == "flatten":
            out.append(("flatten", 0, 0))
        elif tok.startswith("fc"):
            out.append(("fc", int(tok[2:]), 0))
        elif tok.startswith("gn"):
            out.append(("gn", int(tok[2:]), 0))
        else:
            raise ValueError(tok)
    return (c, h, w), out


def init_params(shape, layers, gen):
    """Float32 parameters in state_dict order; also checks and prints the shapes."""
    c, h, w = shape
    params, flat, shapes = [], None, [f"{c}x{h}x{w}"]
    for kind, a, b in layers:
        if kind == "conv":
            fan_in = c * b * b
            params.append(torch.randn(a, c, b, b, generator=gen) * math.sqrt(2.0 / fan_in))
            params.append(torch.randn(a, generator=gen) * 0.1)
            c, h, w = a, h - b + 1, w - b + 1
        elif kind == "pool":
            h, w = h // a, w // a
        elif kind == "gn":
            assert c % a == 0, f"gn{a} on {c} channels"
            params.append(1.0 + torch.randn(c, generator=gen) * 0.2)
            params.append(torch.randn(c, generator=gen) * 0.1)
        elif kind == "flatten":
            flat = c * h * w
        elif kind == "fc":
            params.append(torch.randn(a, flat, generator=gen) * math.sqrt(2.0 / flat))
            params.append(torch.randn(a, generator=gen) * 0.1)
            flat = a
        shapes.append(f"{c}x{h}x{w}" if flat is None else str(flat))
    print("  shapes:", " -> ".join(shapes))
    return [p.float() for p in params], flat


def subnet(x, layers, params):
    i = 0
    for kind, a, _ in layers:
        if kind == "conv":
            x = F.conv2d(x, params[i], params[i + 1])
            i += 2
        elif kind == "relu":
            x = F.relu(x)
        elif kind == "pool":
            x = F.max_pool2d(x, a)  # floor mode: a trailing odd row/column is dropped
        elif kind == "gn":
            x = F.group_norm(x, a, params[i], params[i + 1], eps=1e-5)  # nn.GroupNorm(a, C)
            i += 2
        elif kind == "flatten":
            x = x.flatten(1)
        elif kind == "fc":
            x = F.linear(x, params[i], params[i + 1])
            i += 2
    return x


def forward(sub, head, left, right, labels, layers, with_scores=False):
    n = left.shape[0]
    f = torch.sigmoid(subnet(torch.cat([left, right]), layers, sub))
    d = (f[:n] - f[n:]).abs()
    z = d @ head[:-1] + head[-1]
    s = torch.sigmoid(z).clamp(CLIP_EPS, 1.0 - CLIP_EPS)
    loss = -(labels * torch.log(s) + (1.0 - labels) * torch.log(1.0 - s)).mean()
    return (loss, s, d) if with_scores else loss


def grads(sub, head, left, right, labels, layers):
    ps = [p.detach().clone().requires_grad_(True) for p in sub + [head]]
    loss = forward(ps[:-1], ps[-1], left, right, labels, layers)
    loss.backward()
    return loss.detach(), [p.grad for p in ps[:-1]], ps[-1].grad


def run(sub, head, left, right, labels, layers, dtype):
    """Loss, gradients, and S Adam steps (losses, final params) computed in `dtype`."""
    cast = lambda t: t.to(dtype)
    sub, head = [cast(p) for p in sub], cast(head)
    left, right, labels = cast(left), cast(right), cast(labels)
    loss0, g_sub, g_head = grads(sub, head, left, right, labels, layers)
    params = sub + [head]
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    losses = []
    for t in range(1, N_STEPS + 1):
        loss, gs, gh = grads(params[:-1], params[-1], left, right, labels, layers)
        losses.append(loss)
        step = LR * math.sqrt(1.0 - BETA2 ** t) / (1.0 - BETA1 ** t)
        for i, g in enumerate(gs + [gh]):
            m[i] = BETA1 * m[i] + (1.0 - BETA1) * g
            v[i] = BETA2 * v[i] + (1.0 - BETA2) * g * g
            params[i] = params[i] - step * m[i] / (v[i].sqrt() + ADAM_EPS)
    return loss0, g_sub, g_head, torch.stack(losses), params[:-1], params[-1]


def make_images(gen, n, c, h, w, p_ink=0.35):
    """Binary-ish patterns: ink (0) or paper (1) per pixel, a fifth of them fractional. No
    uniform regions, so max-pool windows hold no exact ties that could route gradients
    differently in two correct implementations."""
    ink = (torch.rand(n, c, h, w, generator=gen) < p_ink).float()
    img = 1.0 - ink
    frac = torch.rand(n, c, h, w, generator=gen) < 0.2
    return torch.where(frac, torch.rand(n, c, h, w, generator=gen), img)


def flat(ts):
    return torch.cat([t.reshape(-1) for t in ts]).to(torch.float32).numpy()


def rel(a, b):
    return float((a - b).abs().max() / b.abs().max())


def make_case(name, arch, n, seed, out_dir):
    print(f"{name}: {arch}, {n} pairs")
    gen = torch.Generator().manual_seed(seed)
    (c, h, w), layers = parse_arch(arch)
    sub, dim = init_params((c, h, w), layers, gen)
    # Wide head weights with a negative mean (|F1 - F2| is about 0.07 on these images): pairs
    # with close features score high, others low, and the scores spread over (0, 1).
    head = torch.cat([torch.randn(dim, generator=gen) * 12.0 / math.sqrt(dim) - 30.0 / dim,
                      torch.tensor([2.5])]).float()
    left = make_images(gen, n, c, h, w)
    right = make_images(gen, n, c, h, w)
    labels = torch.tensor([float(i % 2) for i in range(n)])
    # Two pairs whose scores land far from 0.5: near-copies (a dozen pixels of the left image
    # changed), so the features differ only a little; and mostly paper against mostly ink.
    right[1] = left[1]
    right[1].view(-1)[:: h * w // 12] = 1.0 - right[1].view(-1)[:: h * w // 12]
    left[0] = make_images(gen, 1, c, h, w, 0.05)[0]
    right[0] = make_images(gen, 1, c, h, w, 0.9)[0]

    loss0, g_sub, g_head, losses, p_sub, p_head = run(sub, head, left, right, labels, layers,
                                                      torch.float64)
    _, s, d = forward([p.double() for p in sub], head.double(), left.double(), right.double(),
                      labels.double(), layers, with_scores=True)
    print("  scores:", " ".join(f"{v:.4f}" for v in s.tolist()), " labels:", labels.tolist())
    print(f"  loss {loss0.item():.6f}; losses over {N_STEPS} steps:",
          " ".join(f"{v:.6f}" for v in losses.tolist()))
    # Guards for a meaningful, stable check: some score far from 0.5, none inside the clip,
    # and no |F1 - F2| so small that float rounding could flip its sign (and its gradient).
    assert (s - 0.5).abs().max() > 0.3, "no score far from 0.5"
    assert ((s > 1e-4) & (s < 1 - 1e-4)).all(), "a score is near the clip"
    assert d.min() > 1e-5, f"|F1 - F2| down to {d.min().item():g}"
    gmax = max(g.abs().max().item() for g in g_sub + [g_head])
    print(f"  largest |grad| {gmax:.3g}; per tensor:",
          " ".join(f"{g.abs().max().item():.2g}" for g in g_sub + [g_head]))

    # The same in float32 torch: how far a correct float32 implementation lands. Some data are
    # ill-conditioned for such a check: a pre-ReLU value or a max-pool runner-up within
    # rounding of the decision flips a gradient path, and a gradient element near zero gets a
    # ~lr-sized Adam step whose size rounding decides (m / (sqrt(v) + 1e-8) is ~sign(g)). The
    # seeds above were picked so that float32 torch stays well inside the C test's 1e-4.
    f32 = run(sub, head, left, right, labels, layers, torch.float32)
    e_loss = rel(f32[0].double(), loss0)
    e_grad = max(rel(a.double(), b) for a, b in zip(f32[1] + [f32[2]], g_sub + [g_head]))
    e_par = max(rel(a.double(), b) for a, b in zip(f32[4] + [f32[5]], p_sub + [p_head]))
    print(f"  torch float32 vs float64: loss {e_loss:.2e}, grads {e_grad:.2e}, "
          f"params after {N_STEPS} steps {e_par:.2e}")
    assert e_grad < 2e-5 and e_par < 3e-5, "ill-conditioned data for float32: change the seed"

    n_sub = sum(p.numel() for p in sub)
    arch_b = arch.encode()
    blob = bytearray(MAGIC)
    blob += struct.pack("<II", VERSION, len(arch_b)) + arch_b
    blob += struct.pack("<7I", n, c, h, w, n_sub, dim + 1, N_STEPS)
    blob += struct.pack("<4d", LR, BETA1, BETA2, ADAM_EPS)
    arrays = [flat(sub), flat([head]), flat([left]), flat([right]), flat([labels]),
              flat([loss0]), flat(g_sub), flat([g_head]), flat([losses]), flat(p_sub),
              flat([p_head])]
    for a in arrays:
        blob += a.astype("<f4").tobytes()
    blob += END
    path = os.path.join(out_dir, f"reference_{name}.bin")
    with open(path, "wb") as fh:
        fh.write(blob)
    print(f"  wrote {path} ({len(blob)} bytes, {n_sub} subnet params)")


def main():
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    here = os.path.dirname(os.path.abspath(__file__))
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "data")
    os.makedirs(out_dir, exist_ok=True)
    only = set(sys.argv[2:])
    unknown = only - {name for name, _, _, _ in CASES}
    if unknown:
        sys.exit(f"unknown case(s): {', '.join(sorted(unknown))}")
    for name, arch, n, seed in CASES:
        if not only or name in only:
            make_case(name, arch, n, seed, os.path.normpath(out_dir))


if __name__ == "__main__":
    main()
