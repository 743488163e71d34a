"""The record contract: what every written record satisfies, checked where records are written and by ``validate``.

``check_record`` is the one check: the TYPE tag equals the applied degradations, the answer matches the ground
truth, the reasoning sits inside the length band its total severity asks for, no refusal text, the quality gate
passes, the response is the chain's rendering, and every recorded degradation can be replayed. A teacher
(built-in or plugin) cannot get a record written that ``validate`` rejects: both call this. ``check_chain`` stays
the re-ask helper teachers use on a chain before it is a record.
"""

from __future__ import annotations

from robustgen.annotate.gate import Finding, gate_chain
from robustgen.annotate.validate import check_chain
from robustgen.degrade.apply import checked_params
from robustgen.errors import RobustgenError, first_line
from robustgen.schemas import DatasetRecord, LengthBand, parse_chain, render_chain
from robustgen.schemas.recipe import ChainGate


def check_record(
    rec: DatasetRecord, band: LengthBand, gate: ChainGate, findings: list[Finding] | None = None
) -> list[str]:
    """Every way ``rec`` breaks the contract, one short line each (empty: it may be written). ``findings``: the
    gate's findings when the caller already has them (computed otherwise); each is reported as
    ``chain quality CODE: reason``."""
    problems = check_chain(rec.chain, rec.degradations, rec.answer, rec.choices, band)
    if findings is None:
        findings = gate_chain(rec.chain, rec.degradations, rec.question, rec.choices, gate)
    problems += [f"chain quality {f}" for f in findings]
    try:
        if parse_chain(rec.response) != rec.chain or render_chain(rec.chain) != rec.response:
            problems.append("response text and chain differ")
    except ValueError as exc:
        problems.append(f"response does not parse: {first_line(exc)}")
    for d in [*rec.degradations, *(d for x in rec.extra_images for d in x.degradations)]:
        try:  # what replay would refuse: an unknown degrader, a parameter outside its bounds
            checked_params(d)
        except RobustgenError as exc:
            problems.append(f"cannot be replayed: {first_line(exc)}")
    if len(set(rec.images)) != len(rec.images):
        problems.append("the record names one image file twice")
    return problems
