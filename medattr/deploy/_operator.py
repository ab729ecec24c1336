"""The MONAI Deploy App SDK operator (imported only on first use of ``MedattrOperator``)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from medattr.deploy._sdk import missing
from medattr.deploy.runner import DEFAULT_FORMATS, ExplainedSeries, SeriesExplainer
from medattr.models import LoadedModel

try:
    from monai.deploy.core import ConditionType, Fragment, Operator, OperatorSpec
except ImportError as _exc:  # not installed, or Holoscan's libraries do not load
    missing(_exc)

__all__ = ["MedattrOperator"]


class MedattrOperator(Operator):
    """Explain the selected DICOM series and write DICOM outputs into the app's output folder.

    Named input
        ``study_selected_series_list``: the list of ``StudySelectedSeries`` emitted by
        ``DICOMSeriesSelectorOperator`` (the port of the same name). medattr reads each
        selected series from its files with its own reader, which orders slices along the
        normal and refuses gaps, tilt or mixed geometry unless ``resample=True``.
    Named output
        ``explained_series``: a list of :class:`~medattr.deploy.ExplainedSeries` (output
        folder, manifest, DICOM files); no receiver is required.

    Each series gets ``<output_folder>/<name>/`` (``name`` as in ``medattr explain``, e.g.
    ``CT_series3``) holding ``manifest.json`` and ``<name>_dicom/`` with the RGB overlay,
    the float Parametric Map and the SEG of the strongest attributions, each a new series in the
    source study sharing its FrameOfReferenceUID, ready to send to a PACS.

    Parameters
    ----------
    fragment
        The application (or fragment) the operator belongs to.
    model
        TorchScript file, MONAI bundle folder, ``builtin:NAME``, or a loaded model; loaded
        when the operator is created, so a bad model fails before any study is read.
    output_folder
        The application's output folder (``app_context.output_path``).
    method, baseline, n_steps, formats, device, options, resample, on_error, require_series
        See :class:`~medattr.deploy.SeriesExplainer`.
    *args, **kwargs
        Passed to ``monai.deploy.core.Operator`` (conditions, ``name=``).

    Examples
    --------
    In ``Application.compose``::

        loader = DICOMDataLoaderOperator(self, CountCondition(self, 1), input_folder=in_dir)
        selector = DICOMSeriesSelectorOperator(self, rules=RULES, all_matched=True)
        explain = MedattrOperator(self, model="model.ts", output_folder=out_dir, n_steps=32)
        self.add_flow(loader, selector, {("dicom_study_list", "dicom_study_list")})
        self.add_flow(
            selector, explain, {("study_selected_series_list", "study_selected_series_list")}
        )
    """

    INPUT_NAME = "study_selected_series_list"
    OUTPUT_NAME = "explained_series"

    def __init__(
        self,
        fragment: Fragment,
        *args: Any,
        model: LoadedModel | str | os.PathLike[str],
        output_folder: str | os.PathLike[str],
        method: str = "ig",
        baseline: str = "blur",
        n_steps: int = 32,
        formats: Sequence[str] = DEFAULT_FORMATS,
        device: str = "auto",
        options: Mapping[str, Any] | None = None,
        resample: bool = False,
        on_error: str = "raise",
        require_series: bool = True,
        **kwargs: Any,
    ) -> None:
        # set before Operator.__init__, which calls setup()
        self.series_explainer = SeriesExplainer(
            model,
            output_folder,
            method=method,
            baseline=baseline,
            n_steps=n_steps,
            formats=formats,
            device=device,
            options=options,
            resample=resample,
            on_error=on_error,
            require_series=require_series,
        )
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        spec.input(self.INPUT_NAME)
        spec.output(self.OUTPUT_NAME).condition(ConditionType.NONE)  # receiver optional

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        selections = op_input.receive(self.INPUT_NAME)
        results: list[ExplainedSeries] = self.series_explainer(selections)
        op_output.emit(results, self.OUTPUT_NAME)
