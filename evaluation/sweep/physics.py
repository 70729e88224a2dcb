"""The physical diagnostics in the sweep report, per configuration across seeds, with their tests: invariant drift
and stability at the last lead every job reached, the energy above the band edge, the latitude bands and the
authors' metric at the report's leads. Each question is one family of Holm's correction (`verdicts.compare`).

From each job's test_physics.npz (`evaluation.sweep.quantities.physics`); jobs without one are left out here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from evaluation.statistics import ALPHA
from evaluation.sweep.markdown import table_header, table_line, verdict_table
from evaluation.sweep.quantities import (
    AUTHORS,
    EXCESS_ABOVE,
    FRACTION_ABOVE,
    UNSTABLE,
    Quantity,
    configuration_summary,
    drift_error,
    invariant_drift,
    latitude_band,
    physics,
)
from evaluation.sweep.verdicts import Verdict, compare
from models import MODEL, TRUTH
from sphere import INVARIANTS


@dataclass(frozen=True)
class PhysicsReport:
    """What the physics sections report: ``last_lead`` (every job with physics reached it), the latitude ``bands``,
    the authors' leads, and the verdicts of each question by name."""

    last_lead: int
    leads: list[int]
    bands: list[str]
    authors_leads: list[int]
    found: dict[str, list[Verdict]]

    @property
    def every_verdict(self) -> list[Verdict]:
        return [verdict for verdicts in self.found.values() for verdict in verdicts]


def physics_report(configurations: list[dict[str, Any]], leads: list[int]) -> PhysicsReport | None:
    """The tests of every question at the report's ``leads`` (those the jobs reached); None where no completed job
    has a test_physics.npz."""
    with_physics = [job for config in configurations for job in config["jobs"] if physics(job) is not None]
    if not with_physics:
        return None
    last_lead = min(physics(job)["leads"] for job in with_physics)
    leads = [lead for lead in leads if lead <= last_lead]
    bands = physics(with_physics[0])["bands"]
    authors_leads = sorted(
        {lead for job in with_physics for lead in job["metrics"].get("authors_pooled_rel_l2", {}).get("lead_hours", [])}
    )
    authors_leads = [lead for lead in authors_leads if lead <= last_lead]
    found = {
        "invariant drift": compare(configurations, [(drift_error(name), last_lead) for name in INVARIANTS]),
        "stability": compare(configurations, [(UNSTABLE, last_lead)]),
        "energy above the band edge": compare(configurations, [(EXCESS_ABOVE, lead) for lead in leads]),
        "latitude bands": compare(configurations, [(latitude_band(band), lead) for lead in leads for band in bands]),
        "authors' metric": compare(configurations, [(AUTHORS, lead) for lead in authors_leads]),
    }
    return PhysicsReport(last_lead, leads, bands, authors_leads, found)


def physics_sections(configurations: list[dict[str, Any]], report: PhysicsReport | None) -> str:
    """comparison.md's physics: a table per question (mean ± standard error: across seeds where a configuration has
    several, else over its test trajectories) and its verdicts."""
    if report is None:
        return ""
    last = report.last_lead
    seeds = [len(config["jobs"]) for config in configurations]
    lines = [
        "## Physics",
        "",
        "From each job's `test_physics.npz`: mean ± one standard error, across seeds where a configuration has "
        "several, else over its test trajectories. The verdicts test as *Who wins* does (Welch across seeds, or "
        "paired over the test trajectories, blind to seed variance, with one seed), lower is better, Holm's "
        "correction per pair over the points of each question.",
        "",
        f"### Invariant drift at +{last} h",
        "",
        "Relative drift from the initial state, (value - value at 0 h) / |value at 0 h|, of the model and of the "
        "truth on the same test trajectories (the solver keeps the mass and loses energy and potential enstrophy to "
        "its hyperdiffusion), the model's over its rollouts still stable at that lead (see *Stability*: one rollout "
        "that blew up would stand for all). Tested: |the model's drift - the truth's| per trajectory.",
        "",
        table_header(
            ["configuration", "seeds", *(header for name in INVARIANTS for header in (name, f"{name} (truth)"))]
        ),
    ]
    for config, count in zip(configurations, seeds, strict=True):
        cells = [_cell(config, invariant_drift(name), source, last) for name in INVARIANTS for source in (MODEL, TRUTH)]
        lines.append(table_line([config["label"], count, *cells]))
    lines += ["", *verdict_table(report.found["invariant drift"], what="invariant")]
    lines += [
        "",
        f"### Stability to +{last} h",
        "",
        "`stable_fraction`: rollouts finite with total energy within a factor 2 of the truth's at every lead; the "
        "median lead at which the others leave that range, pooled over the configuration's seeds. Tested: the "
        "fraction of unstable rollouts.",
        "",
        table_header(["configuration", "seeds", "stable_fraction", "unstable rollouts", "median exit lead"]),
    ]
    for config, count in zip(configurations, seeds, strict=True):
        lines.append(table_line([config["label"], count, *_stability_cells(config, last)]))
    lines += ["", *verdict_table(report.found["stability"])]
    lines += [
        "",
        "### Energy above the band edge",
        "",
        "The fraction of the energy (channel mean) at and above the data's band edge, where the truth has none to "
        "rounding: energy a forecast made up at scales the data never has, over the model's rollouts still stable "
        "at the lead; the truth's in brackets. Tested: the model's fraction - the truth's per trajectory.",
        "",
        table_header(["configuration", "seeds", *(f"+{lead} h" for lead in report.leads)]),
    ]
    for config, count in zip(configurations, seeds, strict=True):
        cells = [
            f"{_cell(config, FRACTION_ABOVE, MODEL, lead)} ({_cell(config, FRACTION_ABOVE, TRUTH, lead, error=False)})"
            for lead in report.leads
        ]
        lines.append(table_line([config["label"], count, *cells]))
    lines += ["", *verdict_table(report.found["energy above the band edge"])]
    lines += [
        "",
        "### Latitude bands",
        "",
        "Relative L2 error (channel mean) in six bands of |latitude|, poles to equator, area-weighted within each. "
        "The verdicts: per lead and band the best configuration against each other one, Holm over leads x bands; "
        "the full tests are in comparison_physics_tests.csv.",
    ]
    for lead in report.leads:
        lines += ["", f"+{lead} h:", "", table_header(["configuration", "seeds", *report.bands])]
        for config, count in zip(configurations, seeds, strict=True):
            cells = [_cell(config, latitude_band(band), MODEL, lead) for band in report.bands]
            lines.append(table_line([config["label"], count, *cells]))
    lines += ["", *_band_verdicts(report.found["latitude bands"])]
    if report.authors_leads:
        lines += [
            "",
            "### The authors' metric",
            "",
            "torch-harmonics' example's relative L2 in physical units, channels pooled before the ratio "
            "(test_metrics.json's `authors_pooled_rel_l2` says how it and their data differ from ours).",
            "",
            table_header(["configuration", "seeds", *(f"+{lead} h" for lead in report.authors_leads)]),
        ]
        for config, count in zip(configurations, seeds, strict=True):
            cells = [_cell(config, AUTHORS, MODEL, lead) for lead in report.authors_leads]
            lines.append(table_line([config["label"], count, *cells]))
        lines += ["", *verdict_table(report.found["authors' metric"])]
    return "\n".join(lines)


def _cell(config: dict[str, Any], quantity: Quantity, source: str, lead: int, error: bool = True) -> str:
    found = configuration_summary(config, quantity, source, lead)
    if found is None:
        return ""
    mean, standard_error = found
    return f"{mean:.3g}" if standard_error is None or not error else f"{mean:.3g} ± {standard_error:.2g}"


def _stability_cells(config: dict[str, Any], lead: int) -> list[str]:
    """stable_fraction ± standard error, the unstable rollouts of all seeds (count / total) and their median exit."""
    summary = configuration_summary(config, UNSTABLE, MODEL, lead)
    if summary is None:
        return ["", "", ""]
    unstable, standard_error = summary
    exits = np.concatenate(
        [physics(job)["exit_lead"][physics(job)["forecasts"].index(MODEL)] for job in config["jobs"]]
    )
    left = exits[exits <= lead]
    fraction = f"{1 - unstable:.3g}" + ("" if standard_error is None else f" ± {standard_error:.2g}")
    median = f"+{np.median(left):g} h" if len(left) else "never"
    return [fraction, f"{len(left)} / {len(exits)}", median]


def _band_verdicts(found: list[Verdict]) -> list[str]:
    """Per lead and band, the best configuration and those it is significantly better than, or not."""
    rows: dict[tuple[int, str], dict[str, Any]] = {}
    for verdict in found:
        row = rows.setdefault((verdict.lead, verdict.part), {"best": verdict.config, "better": [], "not": []})
        if verdict.comparison is None:
            row["not"].append(f"{verdict.other} (no test)")
            continue
        significant = verdict.p_holm <= ALPHA and verdict.difference < 0
        row["better" if significant else "not"].append(f"{verdict.other} (p Holm {verdict.p_holm:.2g})")
    lines = [table_header(["lead", "band", "best", "significantly better than", "not significantly better than"])]
    for (lead, band), row in rows.items():
        lines.append(table_line([f"+{lead} h", band, row["best"], ", ".join(row["better"]), ", ".join(row["not"])]))
    return lines
