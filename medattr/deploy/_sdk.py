"""Finding the MONAI Deploy App SDK without importing it (importing it starts Holoscan)."""

from __future__ import annotations

import importlib.util
from typing import Any, NoReturn

from medattr.errors import MedattrError

__all__ = ["INSTALL_HINT", "MissingSDKError", "sdk_available", "unavailable_operator"]

INSTALL_HINT = "pip install 'medattr[deploy]'"


class MissingSDKError(MedattrError, ImportError):
    """The MONAI Deploy App SDK (``monai-deploy-app-sdk``) is not installed or cannot load."""


def sdk_available() -> bool:
    """Whether ``monai.deploy`` and ``holoscan`` can be found (neither is imported)."""
    try:
        return (
            importlib.util.find_spec("monai.deploy") is not None
            and importlib.util.find_spec("holoscan") is not None
        )
    except (ImportError, ValueError):
        return False


def missing(reason: BaseException | None = None) -> NoReturn:
    detail = f" ({type(reason).__name__}: {reason})" if reason is not None else ""
    raise MissingSDKError(
        f"medattr's MONAI Deploy operator needs the MONAI Deploy App SDK{detail}; install it "
        f"with: {INSTALL_HINT}"
    ) from reason


def unavailable_operator(reason: BaseException) -> type:
    """A stand-in for ``MedattrOperator`` whose construction explains what to install."""

    class MedattrOperator:
        """Unavailable: the MONAI Deploy App SDK is not installed (``medattr[deploy]``)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            missing(reason)

    return MedattrOperator
