"""Synthetic benchmark studies with exact ground truth: lesion, its mask and the healthy twin.

Two generators share one :class:`Study` result:

* :func:`make_phantom`: a procedural torso phantom in HU-like units, defined in world
  coordinates so that it renders on any grid;
* :func:`make_mni_study`: augmented copies of the MNI152 brain template shipped with nilearn
  (optional dependency, ``pip install medattr[data]``), intensities in ``[0, 1]``.
"""

from medattr.data.phantoms import Phantom, make_phantom
from medattr.data.study import Study, centred_affine

__all__ = ["Phantom", "Study", "centred_affine", "make_phantom"]
