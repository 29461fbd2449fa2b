"""Examples 1 and 2 of Haber & Ruthotto 2017 (Figures 1 and 2), run with the zoo's own blocks.

Example 1: forward-Euler ResNet, N = 10, h = 0.1, tanh, b = 0, constant K in {K+, K-, K0};
the ratio `|y1_N - y2_N| / |y1_0 - y2_0|` measures growth (K+), decay (K-) or preservation (K0).
Example 2: leapfrog (K-, h = 1) and Verlet (3x2 K_v, h = 0.1) over N = 5,000 identical layers.

Matrices are the paper's (Eq. 3.10, reconstructed in the paper notes) in its column form; the
row-form blocks here apply `Y @ K`, so the paper's `K` is passed transposed where the
orientation matters (Verlet: `z -= h tanh(K_v y)`, `y += h tanh(K_v^T z)`).
"""

from __future__ import annotations

import os

import numpy as np

from zoo.blocks import leapfrog_block, resnet_block, verlet_block
from zoo.diagnostics import full_trajectory
from zoo.operators import Free

__all__ = ["K_PLUS", "K_MINUS", "K_ZERO", "K_V", "example1", "example2", "plot_example1", "plot_example2"]

K_PLUS = np.array([[2.0, -2.0], [0.0, 2.0]])
K_MINUS = np.array([[-2.0, 0.0], [2.0, -2.0]])
K_ZERO = np.array([[0.0, -1.0], [1.0, 0.0]])
K_V = np.array([[2.0, 1.0], [-1.0, 2.0], [0.0, 1.0]])

EXAMPLE1_FEATURES = np.array([[0.1, 0.1], [-0.1, -0.1], [0.0, 0.5]])
EXAMPLE2_FEATURES = np.array([[0.1, 0.1], [-0.1, -0.1]])


def _constant_block(block, kernel, dtype):
    block.build((None, kernel.shape[0]))
    block.kernel.assign(np.broadcast_to(kernel, block.kernel.shape).astype(dtype))
    return block


def example1(dtype="float64"):
    """Trajectories `(N + 1, 3, 2)` and distance ratios for K+, K-, K0 (Figure 1)."""
    results = {}
    for label, column_kernel in (("K+", K_PLUS), ("K-", K_MINUS), ("K0", K_ZERO)):
        block = resnet_block(10, 1.0, bias="none", dtype=dtype)
        _constant_block(block, column_kernel.T, dtype)
        (ys,) = full_trajectory(block, EXAMPLE1_FEATURES.astype(dtype))
        ratio = np.linalg.norm(ys[-1, 0] - ys[-1, 1]) / np.linalg.norm(ys[0, 0] - ys[0, 1])
        results[label] = {"trajectory": ys, "ratio": float(ratio), "kernel": column_kernel}
    return results


def example2(depth=5000, dtype="float64"):
    """Leapfrog (K-, h = 1) and Verlet (K_v, h = 0.1) trajectories and norms (Figure 2)."""
    leapfrog = leapfrog_block(depth, float(depth), parametrization=Free(), bias="none", dtype=dtype)
    _constant_block(leapfrog, K_MINUS.T, dtype)
    y_leap, _ = full_trajectory(leapfrog, EXAMPLE2_FEATURES.astype(dtype))

    verlet = verlet_block(depth, 0.1 * depth, momentum_channels=3, bias="none", dtype=dtype)
    _constant_block(verlet, K_V.T, dtype)
    y_ver, z_ver = full_trajectory(verlet, EXAMPLE2_FEATURES.astype(dtype))
    verlet_norm = np.sqrt(np.sum(y_ver**2, axis=-1) + np.sum(z_ver**2, axis=-1))
    return {
        "leapfrog": {"trajectory": y_leap, "norm": np.linalg.norm(y_leap, axis=-1)},
        "verlet": {"trajectory": y_ver, "momentum": z_ver, "norm": verlet_norm},
    }


def _force_field(ax, column_kernel, lim):
    grid = np.linspace(-lim, lim, 15)
    gx, gy = np.meshgrid(grid, grid)
    points = np.stack([gx.ravel(), gy.ravel()], axis=1)
    field = np.tanh(points @ column_kernel.T)
    ax.quiver(gx, gy, field[:, 0].reshape(gx.shape), field[:, 1].reshape(gx.shape), color="k", alpha=0.5)


def plot_example1(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 4.3))
    titles = {"K+": "K+, λ = 2 (unstable)", "K-": "K−, λ = −2 (decay)", "K0": "K0, λ = ±i (rotation)"}
    for ax, (label, res) in zip(axes, results.items()):
        ys = res["trajectory"]
        lim = max(0.6, float(np.abs(ys).max()) * 1.1)
        _force_field(ax, res["kernel"], lim)
        for k, colour in zip(range(ys.shape[1]), ("tab:blue", "tab:red", "tab:green")):
            ax.plot(ys[:, k, 0], ys[:, k, 1], "-o", ms=2.5, color=colour)
        ax.set_title(f"{titles[label]}\ndistance ratio {res['ratio']:.4f}")
        ax.set_xlim(-lim, lim), ax.set_ylim(-lim, lim), ax.set_aspect("equal")
    fig.suptitle("Haber & Ruthotto 2017, Example 1 / Figure 1: ResNet, N = 10, h = 0.1")
    _save(fig, path)


def plot_example2(results, path, short=500):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 5, figsize=(22, 4.3))
    panels = [("leapfrog", short), ("leapfrog", None), ("verlet", short), ("verlet", None)]
    for ax, (net, n) in zip(axes, panels):
        ys = results[net]["trajectory"][: (n + 1 if n else None)]
        for k, colour in zip(range(ys.shape[1]), ("tab:blue", "tab:red")):
            ax.plot(ys[:, k, 0], ys[:, k, 1], "-", lw=0.6, color=colour)
        steps = ys.shape[0] - 1
        ax.set_title(f"{net}, {'K−' if net == 'leapfrog' else 'K_v'}, N = {steps:,}")
        ax.set_aspect("equal", adjustable="datalim")
    for net, colour in (("leapfrog", "tab:purple"), ("verlet", "tab:orange")):
        norm = results[net]["norm"]
        axes[-1].semilogy(norm.max(axis=1), color=colour, label=f"{net}: max over features")
    axes[-1].set_xlabel("step j"), axes[-1].set_title("state norm"), axes[-1].legend()
    fig.suptitle("Haber & Ruthotto 2017, Example 2 / Figure 2: constant weights, b = 0, tanh")
    _save(fig, path)


def _save(fig, path):
    """Write through a temporary file and rename, so a failed run leaves no half-written PNG."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp.png"
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    os.replace(tmp, path)
    import matplotlib.pyplot as plt

    plt.close(fig)


def main(out_dir="docs/figures", depth=5000):
    """Run both examples, write the PNGs, print the measured figures; returns them."""
    ex1 = example1()
    ex2 = example2(depth)
    plot_example1(ex1, os.path.join(out_dir, "hr17_example1.png"))
    plot_example2(ex2, os.path.join(out_dir, "hr17_example2.png"))
    print("Example 1 (Figure 1): |y1_N - y2_N| / |y1_0 - y2_0|, N = 10, h = 0.1")
    for label, target in (("K+", 4.2679), ("K-", 0.2781), ("K0", 1.0513)):
        print(f"  {label}: {ex1[label]['ratio']:.4f}   (paper notes: {target})")
    verlet, leap = ex2["verlet"]["norm"], ex2["leapfrog"]["norm"]
    print(f"Example 2 (Figure 2), N = {depth:,} constant layers")
    print(f"  Verlet   ||(y, z)|| in [{verlet.min():.4f}, {verlet.max():.4f}]   (notes: [0.1334, 0.1499])")
    print(f"  leapfrog ||y|| running max {leap.max():.1f}, final {leap[-1].max():.1f}, "
          f"min over j >= 1000 {leap[1000:].min():.3g} (chaotic: bounded growth, no collapse)")
    print(f"  figures: {out_dir}/hr17_example1.png, {out_dir}/hr17_example2.png")
    return {"example1": {k: v["ratio"] for k, v in ex1.items()},
            "verlet_norm_range": (float(verlet.min()), float(verlet.max())),
            "leapfrog_norm_max": float(leap.max())}


if __name__ == "__main__":
    main()
