"""MONAI Deploy application: explain the CT and MR series of DICOM studies with medattr.

DICOMDataLoaderOperator -> DICOMSeriesSelectorOperator (CT or MR image series)
-> MedattrOperator (attribution; DICOM RGB overlay, Parametric Map and SEG per series).

Run it with the SDK's standard arguments::

    python examples/deploy_app/app.py -i DICOM_DIR -o OUT_DIR -m MODEL

``MODEL`` is a TorchScript file or a MONAI bundle folder (a folder holding exactly one of
these also works, as in a packaged app); without ``-m``, ``MEDATTR_MODEL`` (a path or
``builtin:NAME``) is used. Further settings come from ``MEDATTR_*`` variables (see
``medattr.deploy.settings``), e.g. ``MEDATTR_N_STEPS=64 MEDATTR_DEVICE=cuda``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from monai.deploy.conditions import CountCondition
from monai.deploy.core import AppContext, Application
from monai.deploy.operators.dicom_data_loader_operator import DICOMDataLoaderOperator
from monai.deploy.operators.dicom_series_selector_operator import DICOMSeriesSelectorOperator

from medattr.deploy import MedattrOperator, resolve_model, settings_from_env

#: Every CT or MR image series of each study, localizers (scouts) excluded.
SELECTION_RULES = json.dumps(
    {
        "selections": [
            {
                "name": "CT or MR image series",
                "conditions": {"Modality": "(?i)^(CT|MR)$", "ImageType": ["!LOCALIZER"]},
            }
        ]
    }
)


class MedattrExplainApp(Application):
    """Explain every selected CT/MR series of the input studies with one model."""

    def compose(self) -> None:
        app_context: AppContext = Application.init_app_context(self.argv)
        input_folder = Path(app_context.input_path)
        output_folder = Path(app_context.output_path)
        model = resolve_model(app_context.args.get("model"))
        logging.getLogger("medattr").info("model: %s", model)

        loader = DICOMDataLoaderOperator(
            self, CountCondition(self, 1), input_folder=input_folder, name="dicom_loader"
        )
        selector = DICOMSeriesSelectorOperator(
            self, rules=SELECTION_RULES, all_matched=True, name="series_selector"
        )
        explain = MedattrOperator(
            self,
            model=model,
            output_folder=output_folder,
            name="medattr",
            **settings_from_env(),
        )
        self.add_flow(loader, selector, {("dicom_study_list", "dicom_study_list")})
        self.add_flow(
            selector, explain, {("study_selected_series_list", "study_selected_series_list")}
        )


def main() -> None:
    MedattrExplainApp().run()


if __name__ == "__main__":
    main()
