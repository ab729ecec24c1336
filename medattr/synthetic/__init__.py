"""Synthetic benchmark studies with exact ground truth: lesion, its mask and the healthy twin.

Two generators share one :class:`Study` result:

* :func:`make_phantom`: a procedural torso phantom in HU-like units, defined in world
  coordinates so that it renders on any grid;
* :func:`make_mni_study`: augmented copies of the MNI152 brain template shipped with nilearn
  (optional dependency, ``pip install 'medattr[data]'``), intensities in ``[0, 1]``.

:func:`generate_dataset` writes seeded train/validation/test splits as NIfTI files with a MONAI
datalist; :class:`StudyDataset` generates the same studies in memory for training on the fly.
nilearn is imported only when an MNI study is made.
"""

from medattr.synthetic.datasets import SPLITS, StudyKind, generate_dataset, make_study, plan_dataset
from medattr.synthetic.mni import make_mni_study, mni_reference
from medattr.synthetic.phantoms import Phantom, make_phantom
from medattr.synthetic.study import Study, centred_affine
from medattr.synthetic.study_dataset import StudyDataset

__all__ = [
    "SPLITS",
    "Phantom",
    "Study",
    "StudyDataset",
    "StudyKind",
    "centred_affine",
    "generate_dataset",
    "make_mni_study",
    "make_phantom",
    "make_study",
    "mni_reference",
    "plan_dataset",
]
