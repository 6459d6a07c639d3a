"""The sweep figures, pure: a sweep's means in, a plotly Figure out; assertions on the
traces' data (x = loads, y = means, error bars = confidence intervals), never on pixels."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from sim import sweeps as sw
from sim.advisor import Needs, advise
from ui.figures import sweep as views
from ui.figures.common import PROTOCOL_COLORS


@pytest.fixture(scope="module")
def loads(tiny_spec: dict[str, Any]) -> list[float]:
    """The tiny sweep's offered loads (`tiny_spec` and `tiny_rows` are tests/conftest.py's)."""
    return next(axis["values"] for axis in tiny_spec["axes"] if axis["name"] == "load")


@pytest.fixture(scope="module")
def means(tiny_rows: pd.DataFrame) -> pd.DataFrame:
    """Its per-cell means and confidence intervals."""
    return sw.means(tiny_rows)


def values(array: Any) -> np.ndarray:
    """A trace's data as floats (plotly keeps numpy arrays as they are)."""
    return np.asarray(array, dtype=float)


def traces(fig: Any, **meta: Any) -> list[Any]:
    """The traces whose `meta` matches every given key."""
    return [t for t in fig.data if all((t.meta or {}).get(k) == v for k, v in meta.items())]


def cell(means: pd.DataFrame, protocol: str, faults: str) -> pd.DataFrame:
    """One protocol's cells under one fault case, by load."""
    out = means[(means["protocol"] == protocol) & (means["faults"] == faults)]
    return out.sort_values("load")


def test_latency_has_three_percentiles_per_protocol_in_one_panel_per_fault_case(
    means: pd.DataFrame,
) -> None:
    fig = views.latency_vs_load(means)

    seen = {(t.meta["series"], t.meta["metric"], t.meta["facet"]) for t in fig.data}
    assert seen == {
        (p, m, f)
        for p in ("http", "queue")
        for m in ("p50", "p95", "p99")
        for f in ("none", "partition")
    }
    assert [a.text for a in fig.layout.annotations] == ["faults: none", "faults: partition"]
    assert fig.layout.yaxis.type == "log" and "ms" in fig.layout.yaxis.title.text
    assert fig.layout.xaxis.tickformat == ".0%"
    # One legend entry per line, not one per panel.
    assert sum(bool(t.showlegend) for t in fig.data) == 6
    dashes = {t.meta["metric"]: t.line.dash for t in traces(fig, series="http", facet="none")}
    assert len(set(dashes.values())) == 3
    for trace in fig.data:
        assert trace.line.color == PROTOCOL_COLORS[trace.meta["series"]]


def test_latency_points_are_the_means_in_ms_with_their_confidence_intervals(
    means: pd.DataFrame, loads: list[float]
) -> None:
    fig = views.latency_vs_load(means)

    for protocol in ("http", "queue"):
        for faults in ("none", "partition"):
            expected = cell(means, protocol, faults)
            for metric in ("p50", "p95", "p99"):
                (trace,) = traces(fig, series=protocol, facet=faults, metric=metric)
                assert values(trace.x).tolist() == loads
                np.testing.assert_allclose(values(trace.y), expected[metric] * 1000)
                np.testing.assert_allclose(
                    values(trace.error_y.array), expected[f"{metric}_ci"] * 1000
                )
                assert trace.error_y.visible


def test_one_fault_case_draws_one_panel(means: pd.DataFrame) -> None:
    fig = views.latency_vs_load(means, faults="partition")

    assert {t.meta["facet"] for t in fig.data} == {None}
    assert len(fig.data) == 6
    (trace,) = traces(fig, series="http", metric="p99")
    np.testing.assert_allclose(values(trace.y), cell(means, "http", "partition")["p99"] * 1000)


@pytest.mark.parametrize(
    ("builder", "metric"),
    [
        (views.goodput_vs_load, "goodput"),
        (views.amplification_vs_load, "amplification"),
        (views.dead_letters_vs_load, "dead_lettered"),
        (views.lost_vs_load, "lost_rate"),
    ],
)
def test_each_view_draws_its_metric_per_protocol_and_fault_case(
    means: pd.DataFrame, loads: list[float], builder: Any, metric: str
) -> None:
    fig = builder(means)

    assert {t.meta["metric"] for t in fig.data} == {metric}
    assert len(fig.data) == 4  # 2 protocols x 2 fault cases
    for trace in fig.data:
        expected = cell(means, trace.meta["series"], trace.meta["facet"])
        assert values(trace.x).tolist() == loads
        np.testing.assert_allclose(values(trace.y), expected[metric])
    assert fig.layout.title.text and fig.layout.yaxis.title.text


def test_the_queue_loses_nothing_to_the_partition_and_http_does(means: pd.DataFrame) -> None:
    fig = views.lost_vs_load(means, faults="partition")

    lost = {t.meta["series"]: values(t.y) for t in fig.data}
    assert (lost["queue"] == 0).all() and (lost["http"] > 0).all()
    assert fig.layout.yaxis.tickformat.endswith("%")


def test_rows_are_averaged_into_means_first(tiny_rows: pd.DataFrame, means: pd.DataFrame) -> None:
    from_rows = views.metric_vs_load(tiny_rows, "goodput")
    from_means = views.metric_vs_load(means, "goodput")

    for a, b in zip(from_rows.data, from_means.data, strict=True):
        np.testing.assert_allclose(values(a.y), values(b.y))


def test_any_metric_of_the_sweep_can_be_drawn(means: pd.DataFrame) -> None:
    fig = views.metric_vs_load(means, "errors.timeout", title="timeouts")

    assert fig.layout.title.text == "timeouts"
    assert "timeout" in fig.layout.yaxis.title.text


def test_a_sweep_over_other_axes_falls_back_to_its_numeric_and_other_axis() -> None:
    # A user's sweep: worker counts x retry policy, saved as means without its spec.
    table = pd.DataFrame(
        {
            "retries": ["none", "none", "none", "backoff", "backoff", "backoff"],
            "workers": [2, 4, 8, 2, 4, 8],
            "runs": 3,
            "errors": 0,
            "goodput": [10.0, 19.0, 30.0, 11.0, 20.0, 31.0],
            "goodput_ci": [1.0, 0.5, 0.2, 1.1, 0.6, 0.3],
        }
    )

    fig = views.goodput_vs_load(table)

    assert {t.meta["series"] for t in fig.data} == {"none", "backoff"}
    assert fig.layout.xaxis.title.text == "workers"
    (backoff,) = traces(fig, series="backoff")
    assert values(backoff.x).tolist() == [2, 4, 8]
    assert values(backoff.y).tolist() == [11.0, 20.0, 31.0]
    assert values(backoff.error_y.array).tolist() == [1.1, 0.6, 0.3]
    # Asked for by name, the axes swap.
    swapped = views.goodput_vs_load(table, x="retries", color="workers")
    assert {t.meta["series"] for t in swapped.data} == {"2", "4", "8"}


def test_a_single_replication_has_no_error_bars(tiny_rows: pd.DataFrame) -> None:
    first = sw.means(tiny_rows[tiny_rows["replication"] == 0])

    fig = views.goodput_vs_load(first)

    assert not any(t.error_y.visible for t in fig.data)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (pd.DataFrame(), "no runs"),
        (pd.DataFrame({"runs": [2], "errors": [0], "p99": [0.1], "p99_ci": [0.01]}), "no axis"),
    ],
)
def test_a_sweep_with_nothing_to_plot_says_so(table: pd.DataFrame, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        views.latency_vs_load(table)


def test_a_sweep_whose_runs_all_failed_says_so(means: pd.DataFrame) -> None:
    failed = means.assign(goodput=np.nan, runs=0)

    with pytest.raises(ValueError, match="no values of goodput"):
        views.goodput_vs_load(failed)
    with pytest.raises(ValueError, match="no metric named 'nope'"):
        views.metric_vs_load(means, "nope")
    with pytest.raises(ValueError, match="no faults case named 'flood'"):
        views.latency_vs_load(means, faults="flood")


def test_the_advice_figure_highlights_the_recommended_stack(tiny_rows: pd.DataFrame) -> None:
    needs = Needs(loss_tolerable=False, p99=2.0, load=0.9)
    advice = advise(tiny_rows, needs)
    assert advice.stack == ["queue"]

    fig = views.advice_figure(advice, needs)

    recommended = {t.meta["protocol"] for t in fig.data if t.meta["recommended"]}
    assert recommended == {"queue"}
    for trace in fig.data:
        outlined = trace.marker.line.width > 0
        assert outlined == (trace.meta["protocol"] == "queue")
    (http_p99, http_lost) = [t for t in fig.data if t.meta["protocol"] == "http"]
    assert http_p99.meta["misses"] == ["loss"] and http_p99.marker.opacity < 1
    verdict = advice.verdicts.set_index("protocol")
    assert http_p99.y[0] == pytest.approx(verdict.loc["http", "p99"] * 1000)
    assert http_lost.y[0] == pytest.approx(verdict.loc["http", "lost_rate_faults"])
    assert http_lost.y[0] > 0
    # The p99 target and the loss allowed are drawn as lines.
    lines = [s for s in fig.layout.shapes if s.type == "line"]
    assert sorted(s.y0 for s in lines) == [needs.max_loss, needs.p99 * 1000]


def test_with_loss_tolerable_plain_http_is_recommended(tiny_rows: pd.DataFrame) -> None:
    advice = advise(tiny_rows, Needs(load=0.5))

    fig = views.advice_figure(advice)

    assert {t.meta["protocol"] for t in fig.data if t.meta["recommended"]} == {"http"}
    assert "http" in fig.layout.title.text and "50%" in fig.layout.title.text
    assert not [s for s in fig.layout.shapes if s.type == "line"]
