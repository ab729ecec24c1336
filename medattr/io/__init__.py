"""Reading volumes and writing attribution outputs with their geometry intact."""

from medattr.io.atomic import atomic_path, atomic_write_bytes, atomic_write_text, staged_directory
from medattr.io.nifti import is_nifti_path, nifti_stem, read_nifti, write_nifti

__all__ = [
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "is_nifti_path",
    "nifti_stem",
    "read_nifti",
    "staged_directory",
    "write_nifti",
]
