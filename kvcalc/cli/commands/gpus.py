"""`kvcalc gpus`."""

from kvcalc.cli.options import JsonOpt

SCHEMA = ("kvcalc.report.catalogue", "GpusReport")


def command(json_out: JsonOpt = False) -> None:
    """The accelerator catalogue (hardware/*.yaml): memory, bandwidth, dense peaks, price."""
    from kvcalc.cli.output import emit
    from kvcalc.report.catalogue import GpusReport
    from kvcalc.sources.hardware import list_gpus

    emit(GpusReport(gpus=list_gpus()), as_json=json_out, explain=False, render="kvcalc.report.catalogue:render_gpus")
