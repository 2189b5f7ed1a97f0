"""The sweep report ranks: sorted by a chosen metric within each data set, the best run and the Pareto set (size vs
flips) marked, size as a ratio with bits and sparsity; runs of several data sets are said so and grouped."""
import itertools
import logging
import re

import numpy as np
import pandas as pd
from test_summary import fake_run

from uqcompress.report.__main__ import main
from uqcompress.report.summary import pareto_front, write_report


def brute_pareto(points):
    """Reference: a point is on the front when no other point is at least as good on both and better on one."""
    out = []
    for i, (a, b) in enumerate(points):
        dominated = any((c <= a and d <= b) and (c < a or d < b) for j, (c, d) in enumerate(points) if j != i)
        out.append(not dominated)
    return out


def test_pareto_front_matches_a_brute_force_reference():
    rng = np.random.default_rng(0)
    for _ in range(50):
        pts = [(float(a), float(b)) for a, b in rng.integers(0, 6, size=(12, 2))]  # ties on purpose
        assert pareto_front(*zip(*pts)) == brute_pareto(pts)
    assert pareto_front([1.0, float("nan")], [0.1, 0.0]) == [True, False]


RUNS = {  # quant: (flips, accuracy, size bytes, bits, sparsity)
    "int8": (0.03, 0.90, 250, 8, 0.0), "int4": (0.08, 0.85, 130, 4, 0.0), "fp16": (0.01, 0.91, 500, 16, 0.0),
    "prune": (0.05, 0.88, 600, 32, 0.5), "w6": (0.09, 0.84, 200, 6, 0.0),
}


def make_sweep(root, datasets=("mnist",)):
    for (d, (q, (flips, acc, size, bits, sparsity))), seed in zip(itertools.product(datasets, RUNS.items()),
                                                                  itertools.count(1)):
        fake_run(root / f"data={d},quant={q}", [f"data={d}", f"quant={q}"],
                 {"config.data": d, "config.quant": q, "compressed.flips": flips, "compressed.accuracy": acc,
                  "baseline.accuracy": 0.92, "baseline.model_size_bytes": 1000, "compressed.model_size_bytes": size,
                  "compressed.bits": bits, "compressed.sparsity": sparsity}, seed=seed, ci=False)
    return root


def test_default_rank_is_fewest_flips_with_best_and_pareto_marked(tmp_path):
    sweep = make_sweep(tmp_path / "sweep")
    write_report([sweep], n_boot=0)
    summary = pd.read_csv(sweep / "report" / "summary.csv")
    assert summary["compressed.flips"].tolist() == sorted(v[0] for v in RUNS.values())
    assert summary["rank"].tolist() == [1, 2, 3, 4, 5]
    assert summary.loc[summary["best"], "config.quant"].tolist() == ["fp16"]
    pts = [(RUNS[q][2] / 1000, RUNS[q][0]) for q in summary["config.quant"]]
    assert summary["pareto"].tolist() == brute_pareto(pts)
    assert set(summary.loc[summary["pareto"], "config.quant"]) == {"fp16", "int8", "int4"}  # prune, w6: dominated
    assert summary["size_ratio"].tolist() == [RUNS[q][2] / 1000 for q in summary["config.quant"]]
    page = (sweep / "report" / "report.html").read_text()
    assert page.count("★ best</span>") == 1 and page.count("◆ Pareto</span>") == 3
    assert ('<span class="nw">×0.60</span><br><span class="nw">32-bit</span><br><span class="nw">50% sparse</span>'
            in page) and '<span class="nw">×0.25</span><br><span class="nw">8-bit</span><' in page
    md = (sweep / "report" / "summary.md").read_text()
    assert "Ranked by flips (ascending)" in md and "| quant=fp16 ★◆ |" in md


def test_sort_option_ranks_by_the_chosen_metric_and_refuses_an_unknown_one(tmp_path, capsys):
    sweep = make_sweep(tmp_path / "sweep")
    assert main([str(sweep), "--sort", "compressed.accuracy", "--n-boot", "0"]) == 0
    summary = pd.read_csv(sweep / "report" / "summary.csv")
    assert summary["compressed.accuracy"].tolist() == sorted((v[1] for v in RUNS.values()), reverse=True)
    assert main([str(sweep), "--sort", "compressed.flipz", "--n-boot", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--sort compressed.flipz" in err[0] and "compressed.flips" in err[0]


def test_runs_of_two_data_sets_are_said_so_and_grouped(tmp_path, caplog):
    sweep = make_sweep(tmp_path / "sweep", datasets=("mnist", "fashion_mnist"))
    with caplog.at_level(logging.WARNING):
        write_report([sweep], n_boot=0)
    lines = [r.getMessage() for r in caplog.records if "data sets" in r.getMessage()]
    assert len(lines) == 1 and "2 data sets (" in lines[0]
    assert "mnist: 5 runs" in lines[0] and "fashion_mnist: 5 runs" in lines[0]
    summary = pd.read_csv(sweep / "report" / "summary.csv")
    for d in ("mnist", "fashion_mnist"):
        part = summary[summary["dataset"] == d]
        assert part["rank"].tolist() == [1, 2, 3, 4, 5] and part["best"].sum() == 1  # ranked within its data set
    order = list(dict.fromkeys(summary["dataset"]))
    assert sorted(order) == ["fashion_mnist", "mnist"]
    assert summary["dataset"].tolist() == [order[0]] * 5 + [order[1]] * 5  # grouped, not interleaved
    page = (sweep / "report" / "report.html").read_text()
    heads = re.findall(r'<h3 class="dataset">Data set: (\w+) \((\d+) runs\)</h3>', page)
    assert heads == [(order[0], "5"), (order[1], "5")]
    assert page.count('<table class="sortable runs">') == 2
    md = (sweep / "report" / "summary.md").read_text()
    assert md.count("## Data set: ") == 2


def test_one_data_set_gets_no_data_set_line(tmp_path, caplog):
    sweep = make_sweep(tmp_path / "sweep")
    with caplog.at_level(logging.WARNING):
        write_report([sweep], n_boot=0)
    assert not [r for r in caplog.records if "data sets" in r.getMessage()]
    assert "Data set:" not in (sweep / "report" / "report.html").read_text()
