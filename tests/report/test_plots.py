"""The plots and the --metric / --out options (vae_lab/report/plots.py, command.py)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from vae_lab import report

from .jobs import make_job, make_latent_grid


def test_plots_metric_selection_and_out_dir(tmp_path, capsys):
    for estimator in ("implicit", "score"):
        for seed in (0, 1):
            make_job(
                tmp_path / "sweep",
                f"{estimator}{seed}",
                [f"estimator={estimator}", f"seed={seed}"],
                metrics={"test/elbo": -100.0 - seed, "test/nll": 99.0},
                best=-99.0,
                curves={
                    "train/elbo": [-120.0, -110.0, -105.0],
                    "val/elbo": [-118.0, -108.0, -104.0],
                    "grad/var/encoder": [1e3, 1e2, 1e1],
                    "grad/var/decoder": [1.0, 0.5, 0.1],
                },
            )
    out = tmp_path / "report"
    assert (
        report.main(
            [
                str(tmp_path / "sweep"),
                "--out",
                str(out),
                "--metric",
                "test/elbo",
                "--metric",
                "grad/var/decoder",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "| estimator | n | seeds | test/elbo | grad/var/decoder |" in printed
    table = pd.read_csv(out / "summary.csv")
    assert "test/nll_mean" not in table and table["grad/var/decoder_mean"].tolist() == [0.1, 0.1]
    for name in ("curves.png", "grad_variance.png", "final.png", "summary.md", "jobs.csv"):
        assert (out / name).stat().st_size > 0, name
    assert not (tmp_path / "sweep" / "summary.csv").exists()

    assert report.main([str(tmp_path / "sweep"), "--metric", "test/elbow", "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vae-lab report: error: --metric test/elbow: no job has it; choose from: ")
    assert len(err.strip().splitlines()) == 1


def test_final_plot_by_columns_draws_the_two_way_table(tmp_path, monkeypatch):
    """With --columns model.latent_dim, final.png draws each metric against the latent sizes in natural
    order (2, 3, 10, not 10, 2, 3), one line per posterior with the means over seeds and their sample
    standard deviations as error bars; a cell without a completed job is left out of its line."""
    import matplotlib.axes

    nll = {("gaussian", 2): [130.0, 132.0], ("gaussian", 10): [95.0, 97.0], ("gaussian", 3): [120.0, 124.0]}
    nll[("vonmises", 2)] = [131.0]
    make_latent_grid(tmp_path / "sweep", nll)
    make_job(
        tmp_path / "sweep", "vonmises3_0", ["posterior=vonmises", "model.latent_dim=3", "seed=0"], "running"
    )
    drawn = {}
    original = matplotlib.axes.Axes.errorbar

    def record(self, x, y, yerr=None, **kwargs):
        drawn[kwargs.get("label")] = (list(x), list(y), list(yerr))
        return original(self, x, y, yerr=yerr, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "errorbar", record)
    out = tmp_path / "report"
    argv = [
        str(tmp_path / "sweep"),
        "--out",
        str(out),
        "--metric",
        "test/nll",
        "--columns",
        "model.latent_dim",
    ]
    assert report.main(argv) == 0
    assert (out / "final.png").stat().st_size > 0
    assert drawn.keys() == {"posterior=gaussian", "posterior=vonmises"}
    x, y, err = drawn["posterior=gaussian"]
    assert x == [0, 1, 2] and y == [131.0, 122.0, 96.0]
    assert err == pytest.approx([2**0.5, 8**0.5, 2**0.5])
    assert drawn["posterior=vonmises"] == ([0], [131.0], [0.0])  # one seed: no error bar


@pytest.fixture
def saved_figures(monkeypatch):
    """The figures the report saves, by file name, kept open for inspection."""
    import matplotlib.figure

    figures = {}
    original = matplotlib.figure.Figure.savefig

    def keep(self, path, *args, **kwargs):
        figures[Path(path).name] = self
        return original(self, path, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", keep)
    return figures


def test_curves_by_columns_one_panel_per_value_smoothed_and_focused(tmp_path, saved_figures):
    """--columns model.latent_dim: curves.png has a panel per metric and latent size, one line per
    posterior (coloured as in final.png); a 1,000-point curve is drawn as its running mean over 10 points;
    the y axis leaves out the first 5% of the points (a start at -500 nats) but keeps the rest."""
    steps = 1000
    train = [-500.0] * 20 + [-100.0 + (i % 2) * 10.0 for i in range(steps - 20)]
    for posterior in ("gaussian", "vonmises"):
        for dim in (2, 10):
            make_job(
                tmp_path / "sweep",
                f"{posterior}-{dim}",
                [f"posterior={posterior}", f"model.latent_dim={dim}", "seed=0"],
                metrics={"test/nll": float(dim)},
                curves={
                    "train/elbo": train,
                    "val/elbo": [-110.0 + dim] * steps,
                    "grad/var/encoder": [1e-3 * dim] * steps,
                },
            )
    argv = [str(tmp_path / "sweep"), "--out", str(tmp_path / "r"), "--columns", "model.latent_dim"]
    assert report.main(argv) == 0
    axes = saved_figures["curves.png"].axes
    titles = [ax.get_title() for ax in axes]
    assert titles == [
        "train/elbo, model.latent_dim=2\n(running mean over 1% of the points)",
        "train/elbo, model.latent_dim=10\n(running mean over 1% of the points)",
        "val/elbo, model.latent_dim=2\n(running mean over 1% of the points)",
        "val/elbo, model.latent_dim=10\n(running mean over 1% of the points)",
    ]
    lines = {line.get_label(): line for line in axes[0].get_lines()}
    assert lines.keys() == {"posterior=gaussian", "posterior=vonmises"}
    y = lines["posterior=gaussian"].get_ydata()
    assert y[-1] == pytest.approx(-95.0)  # the running mean of 10 alternating -100, -90
    low, high = axes[0].get_ylim()
    assert -101.0 < low < -95.0 and -95.0 < high < -89.0  # not stretched to -500
    variance = saved_figures["grad_variance.png"].axes
    assert [ax.get_title() for ax in variance] == [
        "grad/var/encoder, model.latent_dim=2\n(running geometric mean over 1% of the points)",
        "grad/var/encoder, model.latent_dim=10\n(running geometric mean over 1% of the points)",
    ]
    assert variance[1].get_yscale() == "log" and len(variance[1].get_lines()) == 2
    final = {
        bars.get_label(): bars.lines[0].get_color() for bars in saved_figures["final.png"].axes[0].containers
    }
    assert final.keys() == lines.keys() and len(set(final.values())) == 2
    for label, line in lines.items():
        assert line.get_color() == final[label]


def test_gradient_variance_curves_are_geometric_means_with_a_band_above_zero(tmp_path, saved_figures):
    """Three seeds with variances 1, 10 and 100 at a step: the arithmetic mean - sd is -18 (nothing to
    draw on a log scale); the line is their geometric mean, 10, and the band [10 / g, 10 g] with g the
    geometric sd, exp(sd of the logs) = 10, i.e. [1, 100]. train/elbo keeps the arithmetic mean ± sd.
    A zero variance (a frozen group) is left out of the logs."""
    for seed, scale in enumerate((1.0, 10.0, 100.0)):
        make_job(
            tmp_path / "sweep",
            f"implicit{seed}",
            ["estimator=implicit", f"seed={seed}"],
            metrics={"test/elbo": -100.0},
            curves={
                "grad/var/encoder": [scale, scale, 0.0 if seed == 0 else scale],
                "train/elbo": [-110.0 + seed, -100.0 + seed, -90.0 + seed],
            },
        )
    assert report.main([str(tmp_path / "sweep"), "--out", str(tmp_path / "r")]) == 0
    (ax,) = saved_figures["grad_variance.png"].axes
    assert ax.get_title() == "grad/var/encoder: geometric mean ×/÷ geometric sd over seeds"
    (line,) = ax.get_lines()
    y = line.get_ydata()
    assert y[:2] == pytest.approx([10.0, 10.0])
    assert y[2] == pytest.approx(1000.0**0.5)  # seed 0's zero left out: seeds 1 and 2, 10 and 100
    (band,) = ax.collections
    vertices = band.get_paths()[0].vertices
    first = vertices[vertices[:, 0] == vertices[:, 0].min(), 1]
    assert sorted({round(v, 9) for v in first}) == pytest.approx([1.0, 100.0])  # a closed polygon
    (elbo_ax, *_) = saved_figures["curves.png"].axes
    (elbo_band,) = elbo_ax.collections
    elbo_vertices = elbo_band.get_paths()[0].vertices
    start = {round(v, 9) for v in elbo_vertices[elbo_vertices[:, 0] == elbo_vertices[:, 0].min(), 1]}
    assert sorted(start) == pytest.approx([-110.0, -108.0])  # -109 ± 1
