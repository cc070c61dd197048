"""`kvcalc models`."""

from kvcalc.cli.options import JsonOpt

SCHEMA = ("kvcalc.report.catalogue", "ModelsReport")


def command(json_out: JsonOpt = False) -> None:
    """The shipped model profiles, with aliases and Hub repo ids (each resolves offline)."""
    from kvcalc.cli.output import emit
    from kvcalc.report.catalogue import models_report
    from kvcalc.sources.profiles import profile_headers

    report = models_report(profile_headers())
    emit(report, as_json=json_out, explain=False, render="kvcalc.report.catalogue:render_models")
